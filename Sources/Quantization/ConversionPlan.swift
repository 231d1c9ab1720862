import Foundation
import JSON
import Numerics
import SafeTensors
import Checkpoint

/// What happens to one input tensor.
public struct TensorPlan: Sendable {
    public enum Action: Sendable {
        /// Written unchanged.
        case copy
        /// A plain weight quantized with the scheme.
        case quantize(QuantizationScheme)
        /// An already quantized weight turned back into a plain one of `DType`.
        case dequantize(QuantizedWeight, DType)
        /// An already quantized weight dequantized to the model dtype (the `DType`), then quantized again.
        case requantize(QuantizedWeight, QuantizationScheme, DType)
    }

    /// The input tensor (for quantized inputs, the `.weight`).
    public var source: String
    public var action: Action
    /// The tensors this produces, in output order.
    public var outputs: [TensorSpec]
    /// When set, only this region of the source is read (and of its scale grid, for a quantized
    /// source); the outputs have the region's shape. See `restricted(to:fullShape:)`.
    public var region: TensorRegion?
    /// Static activations: the `input_scale` value (already rounded to its stored dtype), written
    /// as the third output of a quantize or requantize plan.
    public var inputScale: Float?
    /// SmoothQuant: the source is folded (norm ÷ s, reader columns × s) in f32 before the action
    /// (`SmoothingFold`). Such a tensor is transformed whole, never cut into a region.
    public var fold: SmoothingFold?

    public init(source: String, action: Action, outputs: [TensorSpec], region: TensorRegion? = nil, inputScale: Float? = nil, fold: SmoothingFold? = nil) {
        self.source = source
        self.action = action
        self.outputs = outputs
        self.region = region
        self.inputScale = inputScale
        self.fold = fold
    }

    /// Writes the stored bytes of the `input_scale` output (static activations) at `out` (room for
    /// 8 bytes) and returns its spec; nil when the plan has none.
    public func storeInputScale(into out: UnsafeMutableRawPointer) -> TensorSpec? {
        guard let v = inputScale, outputs.count > 2, let f = outputs[2].dtype.floatFormat else { return nil }
        withUnsafeBytes(of: v) { FloatFormat.convert($0.baseAddress!, from: .f32, to: out, f, count: 1) }
        return outputs[2]
    }

    /// This plan reading only `region` of its source (of shape `fullShape`), the sharder's
    /// primitive: outputs take the region's shape (a quantize plan's scales are recomputed for
    /// it); a quantized source is cut together with its scale grid, which refuses a cut inside a
    /// scale block.
    public func restricted(to region: TensorRegion, fullShape: [Int]) throws -> TensorPlan {
        try region.validate(fullShape, tensor: source)
        if fold != nil { throw QuantizationError.invalidOption("\(source) is folded with SmoothQuant factors: a smoothed tensor is converted whole, not split into regions") }
        let shape = region.shape(of: fullShape)
        var out = self
        out.region = region
        func quantizedOutputs(_ scheme: QuantizationScheme, scaleDType: DType) throws -> [TensorSpec] {
            guard shape.count == 2 else { throw QuantizationError.badShape(tensor: source, shape: shape, "a linear weight must be 2-D") }
            return scheme.outputs(module: String(source.dropLast(".weight".count)), rows: shape[0], cols: shape[1], modelDType: scaleDType)
        }
        switch action {
        case .copy:
            out.outputs[0].shape = shape
        case .quantize(let scheme):
            out.outputs = try quantizedOutputs(scheme, scaleDType: outputs.count > 1 ? outputs[1].dtype : .f32)
        case let .dequantize(q, _):
            _ = try q.scaleRegion(for: region, tensor: source)
            out.outputs[0].shape = shape
        case let .requantize(q, scheme, _):
            _ = try q.scaleRegion(for: region, tensor: source)
            out.outputs = try quantizedOutputs(scheme, scaleDType: outputs[1].dtype)
        }
        return out
    }
}

/// One output file and the tensors that go into it.
public struct OutputShardPlan: Sendable {
    public var name: String
    /// Input shards (indices into the checkpoint's shards) this output reads from.
    public var inputShards: [Int]
    public var tensors: [TensorPlan]
    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.outputs.reduce(0) { $0 + $1.byteCount } } }
    public var inputBytes: Int
}

/// Everything a conversion will write, decided before a byte is written.
public struct ConversionPlan: Sendable {
    public var shards: [OutputShardPlan]
    /// The format every output file is written in.
    public var format: any TensorFileFormat
    /// The config.json to write (nil when the input has none).
    public var config: JSONValue?
    /// Whether to write model.safetensors.index.json.
    public var writesIndex: Bool
    /// Index `metadata` entries carried over from the input (total_size is recomputed).
    public var indexMetadata: [(String, JSONValue)]
    /// The settings in words (for logs and messages: "quantize; fp8 block 128x128 …").
    public var settings: String
    /// The `SettingsDigest` of everything that decides the output's bytes; outputs made with
    /// another digest are never reused, and jobs with another digest never share a folder.
    public var settingsDigest: UInt64 = 0
    public var settingsDigestHex: String { SettingsDigest.hex(settingsDigest) }
    /// How many weights are quantized, dequantized, copied.
    public var counts: [String: Int]
    /// JSON files the layout adds beside the tensors (output name → contents), written when the
    /// folder is completed, as config.json is: the sharder's `rank-…/rank.json`.
    /// Held as the files' bytes (pretty JSON), not as JSON values: a rank.json lists every tensor
    /// of its rank, and a tree of values per tensor was most of a large plan's memory.
    public var extraFiles: [(name: String, bytes: [UInt8])] = []
    /// What SmoothQuant folded (`quantize --ranges` with factors), for the report.
    public var smoothing: SmoothingReport?
}

/// The report of a SmoothQuant fold: α, the norms folded with their readers, and the quantized
/// inputs left unsmoothed because no norm precedes them.
public struct SmoothingReport: Sendable {
    public var alpha: Double
    public var folded: [(norm: String, readers: Int)]
    public var notSmoothed: [String]

    public var json: JSONValue {
        .object([
            ("alpha", .double(alpha)),
            ("folded", .array(folded.map { .object([("norm", .string($0.norm)), ("readers", .int($0.readers))]) })),
            ("not_smoothed", .array(notSmoothed.map { .string($0) })),
            ("not_smoothed_reason", .string("no norm before the input to fold s into (o_proj reads the attention heads, down_proj silu(gate) * up)")),
        ])
    }

    public var lines: [String] {
        let readers = folded.reduce(0) { $0 + $1.readers }
        return ["SmoothQuant α = \(alpha): s folded into \(folded.count) norm(s) and their \(readers) reader(s)",
                "not smoothed (no norm before their input): \(notSmoothed.count) module(s)"
                    + (notSmoothed.isEmpty ? "" : " (\(notSmoothed.prefix(3).joined(separator: ", "))\(notSmoothed.count > 3 ? ", …" : ""))")]
    }
}

/// Calibrated ranges for static activations (`quantize --act static --ranges FILE`): the amax of
/// the input of every linear module, by module name (`model.layers.0.mlp.gate_proj`).
public struct InputRanges: Sendable {
    /// The ranges file (for messages).
    public var file: String
    public var amax: [String: Double]
    /// SmoothQuant factors to fold before quantizing (ranges made with `calibrate --smooth`).
    public var smoothing: SmoothingFactors?

    public init(file: String, amax: [String: Double], smoothing: SmoothingFactors? = nil) {
        self.file = file
        self.amax = amax
        self.smoothing = smoothing
    }
}

/// Builds conversion plans from a checkpoint and the user's options.
public enum PlanBuilder {
    /// Plans `quantize`: every linear weight the layout quantizes by default and `ignore` does not
    /// match (Python `re.search` semantics against the module name) is quantized with `scheme`;
    /// already-quantized inputs are dequantized to the model dtype first.
    public static func quantize(_ ckpt: Checkpoint, scheme: QuantizationScheme, ignore: [String], shardSize: Int?) throws -> ConversionPlan {
        try quantize(ckpt, scheme: scheme, ignore: ignore, layout: OutputLayout(shardSize: shardSize))
    }

    /// `quantize` into any output layout.
    public static func quantize(_ ckpt: Checkpoint, scheme: QuantizationScheme, ignore: [String], layout: OutputLayout, ranges: InputRanges? = nil) throws -> ConversionPlan {
        try ckpt.requireClassified()
        if scheme.staticActivations && ranges == nil {
            throw QuantizationError.invalidOption("--act static needs --ranges FILE (the ranges.json `dsconvert calibrate` writes)")
        }
        if !scheme.staticActivations && ranges != nil {
            throw QuantizationError.invalidOption("--ranges applies to --act static only")
        }
        var missingRanges: [String] = []
        // Python `re` semantics (ModulePattern): search, or match for `re:` entries.
        let patterns = try ignore.map { try ModulePattern($0) }
        func ignored(_ module: String) -> Bool { patterns.contains { $0.matches(module) } }
        let classes = try TensorClassification.classify(ckpt)
        let quantized = classes.quantized
        let consumed = classes.consumed
        let modelDType = ckpt.modelDType
        guard [.bf16, .f16, .f32].contains(modelDType) else {
            throw QuantizationError.unsupportedDType(tensor: "config.json torch_dtype", dtype: modelDType.rawValue, "is not a model dtype dsconvert can quantize from")
        }
        var counts: [String: Int] = [:]
        var plans: [String: TensorPlan] = [:]
        var ignoredLayers: [String] = []
        /// The input_scale of `module` from its calibrated range (nil for dynamic activations).
        func staticScale(_ module: String) -> Float? {
            guard let ranges else { return nil }
            guard let a = ranges.amax[module] else { missingRanges.append(module); return nil }
            return scheme.inputScale(amax: a, dtype: modelDType)
        }
        for name in ckpt.weights.tensorNames {
            if consumed.contains(name) { continue }
            let info = ckpt.weights.info(name)!
            let role = ckpt.roles[name]!
            let keptByUser = role.quantizedByDefault && ignored(role.module)
            if keptByUser { ignoredLayers.append(role.module) }
            let wanted = role.quantizedByDefault && !keptByUser
            if let q = quantized[name] {
                let rows = info.shape[0], cols = info.shape[1]
                if wanted {
                    plans[name] = TensorPlan(source: name, action: .requantize(q, scheme, modelDType), outputs: scheme.outputs(module: role.module, rows: rows, cols: cols, modelDType: modelDType),
                                             inputScale: staticScale(role.module))
                    counts["requantized", default: 0] += 1
                } else {
                    plans[name] = TensorPlan(source: name, action: .dequantize(q, modelDType), outputs: [TensorSpec(name: name, dtype: modelDType, shape: info.shape)])
                    counts["dequantized", default: 0] += 1
                }
                continue
            }
            if wanted {
                guard info.shape.count == 2 else {
                    throw QuantizationError.badShape(tensor: name, shape: info.shape, "a linear weight must be 2-D")
                }
                guard [.bf16, .f16, .f32].contains(info.dtype) else {
                    throw QuantizationError.unsupportedDType(tensor: name, dtype: info.dtype.rawValue, "cannot be quantized (expected BF16, F16 or F32)")
                }
                plans[name] = TensorPlan(source: name, action: .quantize(scheme), outputs: scheme.outputs(module: role.module, rows: info.shape[0], cols: info.shape[1], modelDType: modelDType),
                                         inputScale: staticScale(role.module))
                counts["quantized", default: 0] += 1
            } else {
                plans[name] = TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: name, dtype: info.dtype, shape: info.shape)])
                counts["kept", default: 0] += 1
            }
        }
        if let ranges {
            func some(_ names: [String]) -> String {
                names.prefix(4).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 4 ? " and \(names.count - 4) more" : "")
            }
            if !missingRanges.isEmpty {
                throw QuantizationError.rangesMismatch(file: ranges.file, "has no range for \(missingRanges.count) of the \(counts["quantized", default: 0] + counts["requantized", default: 0]) linear inputs this quantization needs (\(some(missingRanges.sorted()))): it was made for another model, or with inputs renamed; run `dsconvert calibrate` on this model")
            }
            let linear = Set(ckpt.roles.values.filter(\.quantizedByDefault).map(\.module))
            let extra = ranges.amax.keys.filter { !linear.contains($0) }.sorted()
            if !extra.isEmpty {
                throw QuantizationError.rangesMismatch(file: ranges.file, "names \(extra.count) input\(extra.count == 1 ? "" : "s") this model does not have (\(some(extra))): it was made for another model")
            }
        }
        var smoothingReport: SmoothingReport?
        if let ranges, let factors = ranges.smoothing {
            smoothingReport = try fold(factors, file: ranges.file, into: &plans, ckpt)
        }
        var ignoreList: [String] = []
        if !scheme.isDeepSeekNative {
            let kinds = Set(ckpt.roles.values.map(\.kind))
            if kinds.contains(.lmHead) { ignoreList.append("lm_head") }
            if kinds.contains(.router) { ignoreList.append("re:.*mlp\\.gate$") }
            if kinds.contains(.mtpProjection) { ignoreList += ["re:.*eh_proj$", "re:.*shared_head\\.head$"] }
            // compressed-tensors applies `re:X` with re.match: a search pattern P becomes
            // `re:.*(?:P)`; an `re:` entry is already in that form and is written as given.
            ignoreList += ignore.map { $0.hasPrefix("re:") ? $0 : "re:.*(?:\($0))" }
        }
        var config = ckpt.config!.json.setting("quantization_config", scheme.quantizationConfig(ignore: ignoreList, ignoredLayers: ignoredLayers.sorted()))
        if config["torch_dtype"] == nil && config["dtype"] == nil, let t = modelDType.torchName {
            config = config.setting("torch_dtype", .string(t))
        }
        let settings = "quantize \(scheme.summary); model dtype \(modelDType.rawValue); ignore \(ignore)"
        var plan = try assemble(ckpt, plans: plans, layout: layout, config: config, settings: settings + (smoothingReport.map { "; SmoothQuant α \($0.alpha)" } ?? ""), counts: counts)
        plan.smoothing = smoothingReport
        plan.settingsDigest = SettingsDigest.compute(command: "quantize", options: [
            ("format", .string(scheme.format.rawValue)), ("granularity", .string(scheme.granularity.rawValue)),
            ("block_size", .int(scheme.blockSize)), ("weight_only", .bool(scheme.weightOnly)),
            ("ignore", .array(ignore.map { .string($0) })), ("model_dtype", .string(modelDType.rawValue)),
            ("layout", .string(layout.summary)),
        ] + (scheme.staticActivations ? [("activations", .string("static"))] : []), inputConfig: ckpt.config?.json, plan: plan)
        return plan
    }

    /// Sets the SmoothQuant fold of every norm in `factors` and of every module reading its
    /// output (`SmoothingGroups`), refusing factors that do not fit the checkpoint: a norm it does
    /// not have, s of another length than the norm's, readers other than the model's (folding
    /// into fewer readers than read the norm would change the model's output).
    static func fold(_ factors: SmoothingFactors, file: String, into plans: inout [String: TensorPlan], _ ckpt: Checkpoint) throws -> SmoothingReport {
        let groups = Dictionary(ckpt.smoothingGroups.map { ($0.norm, $0) }, uniquingKeysWith: { a, _ in a })
        var folded: [(norm: String, readers: Int)] = []
        var smoothedReaders = Set<String>()
        for e in factors.entries {
            let normWeight = e.norm + ".weight"
            guard let g = groups[e.norm], let info = ckpt.weights.info(normWeight), plans[normWeight] != nil else {
                throw QuantizationError.smoothingMismatch(file: file, tensor: normWeight, "has SmoothQuant factors for the norm \(e.norm), which this model does not have (or whose output no linear layer reads): the ranges were made for another model, or with the norm renamed")
            }
            guard info.shape == [e.scales.count] else {
                throw QuantizationError.smoothingMismatch(file: file, tensor: normWeight, "has shape \(info.shapeText), but the ranges' s for \(e.norm) has \(e.scales.count) values: one per channel of the norm is needed")
            }
            let fileReaders = Set(e.consumers), modelReaders = Set(g.readers)
            guard fileReaders == modelReaders else {
                let missing = g.readers.filter { !fileReaders.contains($0) }, extra = e.consumers.filter { !modelReaders.contains($0) }
                throw QuantizationError.smoothingMismatch(file: file, tensor: normWeight, "the ranges fold s of \(e.norm) into other modules than read its output in this model"
                    + (missing.isEmpty ? "" : "; not listed: \(missing.prefix(4).joined(separator: ", "))\(missing.count > 4 ? " and \(missing.count - 4) more" : "")")
                    + (extra.isEmpty ? "" : "; not readers here: \(extra.prefix(4).joined(separator: ", "))\(extra.count > 4 ? " and \(extra.count - 4) more" : "")"))
            }
            plans[normWeight]!.fold = SmoothingFold(kind: .divide, norm: e.norm, scales: e.scales)
            for r in g.readers {
                let w = r + ".weight"
                guard let ri = ckpt.weights.info(w), ri.shape.count == 2, ri.shape[1] == e.scales.count, plans[w] != nil else {
                    throw QuantizationError.smoothingMismatch(file: file, tensor: w, "reads \(e.norm)'s output but is not a [rows, \(e.scales.count)] weight")
                }
                plans[w]!.fold = SmoothingFold(kind: .scaleColumns, norm: e.norm, scales: e.scales)
                smoothedReaders.insert(r)
            }
            folded.append((e.norm, g.readers.count))
        }
        let notSmoothed = plans.values.filter { p in
            guard case .quantize = p.action else {
                if case .requantize = p.action { return !smoothedReaders.contains(String(p.source.dropLast(".weight".count))) }
                return false
            }
            return !smoothedReaders.contains(String(p.source.dropLast(".weight".count)))
        }.map { String($0.source.dropLast(".weight".count)) }.sorted()
        return SmoothingReport(alpha: factors.alpha, folded: folded, notSmoothed: notSmoothed)
    }

    /// Plans a SmoothQuant fold and nothing else: the folded tensors (norms, readers) written as
    /// `dtype`, every other tensor copied. A check of the fold (the smoothed model computes the
    /// original's outputs); not a command.
    public static func smoothOnly(_ ckpt: Checkpoint, factors: SmoothingFactors, dtype: DType, layout: OutputLayout) throws -> ConversionPlan {
        try ckpt.requireClassified()
        let classes = try TensorClassification.classify(ckpt)
        var plans: [String: TensorPlan] = [:]
        for name in ckpt.weights.tensorNames where !classes.consumed.contains(name) {
            let info = ckpt.weights.info(name)!
            plans[name] = TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: name, dtype: info.dtype, shape: info.shape)])
        }
        let report = try fold(factors, file: "(factors)", into: &plans, ckpt)
        for (k, p) in plans where p.fold != nil { plans[k]!.outputs[0].dtype = dtype }
        var plan = try assemble(ckpt, plans: plans, layout: layout, config: ckpt.config?.json, settings: "smooth α \(factors.alpha)", counts: ["folded": plans.values.filter { $0.fold != nil }.count])
        plan.smoothing = report
        return plan
    }

    /// Plans `dequantize --to dtype`: every quantized weight becomes `dtype`, its scales are
    /// dropped, every other tensor is kept as it is; config.json loses `quantization_config`
    /// and names `dtype` in the dtype key(s) it has (`torch_dtype`, transformers 5's `dtype`, or
    /// both; `torch_dtype` when it has neither).
    public static func dequantize(_ ckpt: Checkpoint, to dtype: DType, shardSize: Int?) throws -> ConversionPlan {
        try dequantize(ckpt, to: dtype, layout: OutputLayout(shardSize: shardSize))
    }

    /// `dequantize` into any output layout.
    public static func dequantize(_ ckpt: Checkpoint, to dtype: DType, layout: OutputLayout) throws -> ConversionPlan {
        try ckpt.validateConfig()  // a config that contradicts the tensors is refused here too (no-op without one)
        let classes = try TensorClassification.classify(ckpt)
        let quantized = classes.quantized
        if quantized.isEmpty {
            throw QuantizationError.nothingQuantized("\(ckpt.directory): no quantized weights (F8_E4M3 or I8 with a weight_scale_inv / weight_scale) were found; nothing to dequantize")
        }
        let consumed = classes.consumed
        var plans: [String: TensorPlan] = [:]
        var counts: [String: Int] = [:]
        for name in ckpt.weights.tensorNames where !consumed.contains(name) {
            let info = ckpt.weights.info(name)!
            if let q = quantized[name] {
                plans[name] = TensorPlan(source: name, action: .dequantize(q, dtype), outputs: [TensorSpec(name: name, dtype: dtype, shape: info.shape)])
                counts["dequantized", default: 0] += 1
            } else {
                plans[name] = TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: name, dtype: info.dtype, shape: info.shape)])
                counts["kept", default: 0] += 1
            }
        }
        var config: JSONValue?
        if let c = ckpt.config?.json {
            // The dtype key(s) the input uses (transformers 4 writes torch_dtype, transformers 5
            // dtype); torch_dtype when it has neither. A key the input did not use is never added.
            let keys = ["torch_dtype", "dtype"].filter { c[$0] != nil }
            var n = c.removing("quantization_config")
            for k in keys.isEmpty ? ["torch_dtype"] : keys { n = n.setting(k, .string(dtype.torchName!)) }
            config = n
        }
        let settings = "dequantize to \(dtype.rawValue)"
        var plan = try assemble(ckpt, plans: plans, layout: layout, config: config, settings: settings, counts: counts)
        plan.settingsDigest = SettingsDigest.compute(command: "dequantize", options: [
            ("to", .string(dtype.rawValue)), ("layout", .string(layout.summary)),
        ], inputConfig: ckpt.config?.json, plan: plan)
        return plan
    }

    /// Places the tensor plans into output files as `layout` says.
    public static func assemble(_ ckpt: Checkpoint, plans: [String: TensorPlan], layout: OutputLayout, config: JSONValue?, settings: String, counts: [String: Int]) throws -> ConversionPlan {
        let w = ckpt.weights
        let ordered = w.tensorNames.compactMap { plans[$0] }
        let files = try layout.files(ordered, store: w).filter { !($0.tensors.isEmpty && layout.chunking == .mirror) }
        let writesIndex = layout.writesIndex(inputHasIndex: ckpt.hasIndex, files: files.map(\.name))
        return assemble(ckpt, files: files, format: layout.format, writesIndex: writesIndex, config: config,
                        settings: settings + "; " + layout.summary, counts: counts)
    }

    /// A plan of output files already placed (name and tensors, in write order).
    public static func assemble(_ ckpt: Checkpoint, files: [(name: String, tensors: [TensorPlan])], format: any TensorFileFormat,
                                writesIndex: Bool, config: JSONValue?, settings: String, counts: [String: Int]) -> ConversionPlan {
        let w = ckpt.weights
        // Every input file an output reads, the scales of quantized inputs included (they can sit
        // in another file than their weight), so that resume notices when any of them changes.
        func inputShards(_ ts: [TensorPlan]) -> [Int] {
            var files = Set<Int>()
            for t in ts {
                files.insert(w.fileIndex(of: t.source)!)
                switch t.action {
                case let .dequantize(q, _), let .requantize(q, _, _):
                    for p in q.parameterTensors { if let i = w.fileIndex(of: p.name) { files.insert(i) } }
                default: break
                }
            }
            return files.sorted()
        }
        func inputBytes(_ ts: [TensorPlan]) -> Int {
            ts.reduce(0) { total, t in
                let info = w.info(t.source)!
                // A region reads its share of the tensor.
                var b = t.region.map { info.byteCount / info.shape[$0.dimension] * $0.range.count } ?? info.byteCount
                switch t.action {
                case let .dequantize(q, _), let .requantize(q, _, _): b += q.parameterTensors.reduce(0) { $0 + $1.byteCount }
                default: break
                }
                return total + b
            }
        }
        let shards = files.map { OutputShardPlan(name: $0.name, inputShards: inputShards($0.tensors), tensors: $0.tensors, inputBytes: inputBytes($0.tensors)) }
        return ConversionPlan(shards: shards, format: format, config: config, writesIndex: writesIndex,
                              indexMetadata: ckpt.indexMetadata, settings: settings, counts: counts)
    }
}
