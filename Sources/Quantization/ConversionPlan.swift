import Foundation
import JSON
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
    /// The config.json to write (nil when the input has none).
    public var config: JSONValue?
    /// Whether to write model.safetensors.index.json.
    public var writesIndex: Bool
    /// Index `metadata` entries carried over from the input (total_size is recomputed).
    public var indexMetadata: [(String, JSONValue)]
    /// A description of the settings; outputs made with other settings are never reused.
    public var settings: String
    /// How many weights are quantized, dequantized, copied.
    public var counts: [String: Int]
}

/// Builds conversion plans from a checkpoint and the user's options.
public enum PlanBuilder {
    /// Plans `quantize`: every linear weight the layout quantizes by default and `ignore` does not
    /// match (Python `re.search` semantics against the module name) is quantized with `scheme`;
    /// already-quantized inputs are dequantized to the model dtype first.
    public static func quantize(_ ckpt: Checkpoint, scheme: QuantizationScheme, ignore: [String], shardSize: Int?) throws -> ConversionPlan {
        try ckpt.requireClassified()
        let regexes = try ignore.map { pattern -> NSRegularExpression in
            do { return try NSRegularExpression(pattern: pattern) } catch {
                throw QuantizationError.invalidOption("--ignore '\(pattern)' is not a valid regular expression")
            }
        }
        func ignored(_ module: String) -> Bool {
            let range = NSRange(module.startIndex..., in: module)
            return regexes.contains { $0.firstMatch(in: module, range: range) != nil }
        }
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
                    plans[name] = TensorPlan(source: name, action: .requantize(q, scheme, modelDType), outputs: scheme.outputs(module: role.module, rows: rows, cols: cols, modelDType: modelDType))
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
                plans[name] = TensorPlan(source: name, action: .quantize(scheme), outputs: scheme.outputs(module: role.module, rows: info.shape[0], cols: info.shape[1], modelDType: modelDType))
                counts["quantized", default: 0] += 1
            } else {
                plans[name] = TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: name, dtype: info.dtype, shape: info.shape)])
                counts["kept", default: 0] += 1
            }
        }
        var ignoreList: [String] = []
        if !scheme.isDeepSeekNative {
            let kinds = Set(ckpt.roles.values.map(\.kind))
            if kinds.contains(.lmHead) { ignoreList.append("lm_head") }
            if kinds.contains(.router) { ignoreList.append("re:.*mlp\\.gate$") }
            if kinds.contains(.mtpProjection) { ignoreList += ["re:.*eh_proj$", "re:.*shared_head\\.head$"] }
            ignoreList += ignore.map { "re:.*(?:\($0))" }
        }
        var config = ckpt.config!.json.setting("quantization_config", scheme.quantizationConfig(ignore: ignoreList, ignoredLayers: ignoredLayers.sorted()))
        if config["torch_dtype"] == nil && config["dtype"] == nil, let t = modelDType.torchName {
            config = config.setting("torch_dtype", .string(t))
        }
        let settings = "quantize v1; scheme=\(scheme.summary); ignore=\(ignore); shard-size=\(shardSize.map(String.init) ?? "mirror")"
        return try assemble(ckpt, plans: plans, shardSize: shardSize, config: config, settings: settings, counts: counts)
    }

    /// Plans `dequantize --to dtype`: every quantized weight becomes `dtype`, its scales are
    /// dropped, every other tensor is kept as it is; config.json loses `quantization_config`
    /// and names `dtype` in `torch_dtype` (and `dtype` where present).
    public static func dequantize(_ ckpt: Checkpoint, to dtype: DType, shardSize: Int?) throws -> ConversionPlan {
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
            var n = c.removing("quantization_config").setting("torch_dtype", .string(dtype.torchName!))
            if c["dtype"] != nil { n = n.setting("dtype", .string(dtype.torchName!)) }
            config = n
        }
        let settings = "dequantize v1; to=\(dtype.rawValue); shard-size=\(shardSize.map(String.init) ?? "mirror")"
        return try assemble(ckpt, plans: plans, shardSize: shardSize, config: config, settings: settings, counts: counts)
    }

    /// Places the tensor plans into output files: one per input file with the input's name
    /// (default), or re-chunked into `model-{i:05d}-of-{n:05d}.safetensors` of at most `shardSize`
    /// bytes of tensor data each (a tensor larger than the limit gets a file of its own).
    static func assemble(_ ckpt: Checkpoint, plans: [String: TensorPlan], shardSize: Int?, config: JSONValue?, settings: String, counts: [String: Int]) throws -> ConversionPlan {
        let w = ckpt.weights
        var shards: [OutputShardPlan] = []
        // Every input file an output reads, the scales of quantized inputs included (they can sit
        // in another file than their weight), so that resume notices when any of them changes.
        func inputShards(_ ts: [TensorPlan]) -> [Int] {
            var files = Set<Int>()
            for t in ts {
                files.insert(w.location(t.source)!.shard)
                switch t.action {
                case let .dequantize(q, _), let .requantize(q, _, _):
                    for p in q.parameterTensors { if let l = w.location(p.name) { files.insert(l.shard) } }
                default: break
                }
            }
            return files.sorted()
        }
        func inputBytes(_ ts: [TensorPlan]) -> Int {
            ts.reduce(0) { total, t in
                var b = w.info(t.source)!.byteCount
                switch t.action {
                case let .dequantize(q, _), let .requantize(q, _, _): b += q.parameterTensors.reduce(0) { $0 + $1.byteCount }
                default: break
                }
                return total + b
            }
        }
        let ordered = w.tensorNames.compactMap { plans[$0] }
        if let limit = shardSize {
            guard limit > 0 else { throw QuantizationError.invalidOption("--shard-size must be positive") }
            // The limit is on whole files, header included (a file holding a single input tensor's
            // outputs, a weight and its scale, that are larger than the limit is the only exception). The header's size is computed exactly as
            // `SafeTensorsWriter` lays it out: 8-byte length, compact JSON object with
            // `__metadata__` {"format": "pt"} then one member per tensor, space padding to 8.
            func memberLength(_ key: String, _ value: JSONValue) -> Int {
                JSONWriter.compact(.object([(key, value)])).utf8.count - 2  // without the braces
            }
            let emptyJSON = 2 + memberLength("__metadata__", .object([("format", .string("pt"))]))
            func fileSize(json: Int, data: Int) -> Int { 8 + (json + 7) / 8 * 8 + data }
            /// JSON and data sizes after appending `t`'s outputs to a file with these sizes.
            func appending(_ t: TensorPlan, json: Int, data: Int) -> (json: Int, data: Int) {
                var j = json, d = data
                for s in t.outputs {
                    j += 1 + memberLength(s.name, .object([
                        ("dtype", .string(s.dtype.rawValue)),
                        ("shape", .array(s.shape.map { .int($0) })),
                        ("data_offsets", .array([.int(d), .int(d + s.byteCount)])),
                    ]))
                    d += s.byteCount
                }
                return (j, d)
            }
            var groups: [[TensorPlan]] = []
            var current: [TensorPlan] = []
            var size = (json: emptyJSON, data: 0)
            for t in ordered {
                var next = appending(t, json: size.json, data: size.data)
                if !current.isEmpty && fileSize(json: next.json, data: next.data) > limit {
                    groups.append(current)
                    current = []
                    next = appending(t, json: emptyJSON, data: 0)
                }
                current.append(t)
                size = next
            }
            if !current.isEmpty || groups.isEmpty { groups.append(current) }
            let n = groups.count
            for (i, g) in groups.enumerated() {
                let name = String(format: "model-%05d-of-%05d.safetensors", i + 1, n)
                shards.append(OutputShardPlan(name: name, inputShards: inputShards(g), tensors: g, inputBytes: inputBytes(g)))
            }
        } else {
            for s in w.shards {
                let g = s.header.tensors.compactMap { plans[$0.name] }
                if g.isEmpty { continue }
                shards.append(OutputShardPlan(name: s.name, inputShards: inputShards(g), tensors: g, inputBytes: inputBytes(g)))
            }
        }
        // Re-chunked files are named model-00001-of-0000N even when N is 1, a name loaders find
        // only through the index: write it whenever dsconvert chose the names.
        let writesIndex = w.index != nil || shards.count > 1 || shardSize != nil
        return ConversionPlan(shards: shards, config: config, writesIndex: writesIndex,
                              indexMetadata: w.index?.metadata ?? [], settings: settings, counts: counts)
    }
}
