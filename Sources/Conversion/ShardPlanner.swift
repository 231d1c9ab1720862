import Dispatch
import SystemIO
import Checkpoint
import DSPack
import Foundation
import JSON
import Numerics
import Quantization
import SafeTensors
import Sharding

/// What `dsconvert shard` is asked for.
public struct ShardOptions: Sendable {
    /// Where the rank files go and what they are called.
    public enum Layout: String, Sendable, CaseIterable {
        /// `OUT/rank-{r:05d}-of-{n:05d}/`: each a Hugging Face safetensors set with its own index,
        /// config.json, side files and `rank.json`; tensors keep their global names.
        case hf
        /// What DeepSeek-V3's `inference/convert.py --model-parallel T` writes:
        /// `OUT/model{i}-mp{T}.safetensors` with its tensor names (`DeepSeekLayout`).
        case deepseek
    }

    /// What each rank's files are (hf layout).
    public enum Format: String, Sendable, CaseIterable {
        /// A safetensors set per rank folder, with index, config.json, side files and rank.json.
        case safetensors
        /// One `rank-…/model.dspack` per rank, embedding config.json, the side files and
        /// rank.json, its metadata naming the plan and the rank (Formats/dspack.md §6).
        case dspack
    }

    public var parallel: ParallelPlan
    public var format: Format = .safetensors
    public var keepMTP: Bool
    public var placement: ExpertPlacement
    public var layout: Layout
    /// Rank files are cut at this many bytes (`model-00001-of-0000N.safetensors`), hf layout.
    public var shardSize: Int
    /// Whose pipeline split to use: dsconvert's byte-balanced one (what `shard` writes) or an
    /// engine's (what `--plan --emit` models).
    public var stageRule: MemoryFit.StageRule = .balanced
    /// Quantize on the way (`shard --fp8`): every linear weight `quantize` would quantize is cut
    /// and quantized to this scheme in the same pass (the DeepSeek block layout: each rank's
    /// slice and its `weight_scale_inv` grid equal the slice of `quantize` then `shard`).
    public var quantize: QuantizationScheme?

    public static let defaultShardSize = 5_000_000_000

    public init(parallel: ParallelPlan, keepMTP: Bool = false, placement: ExpertPlacement = .contiguous, layout: Layout = .hf, shardSize: Int = defaultShardSize) {
        self.parallel = parallel; self.keepMTP = keepMTP; self.placement = placement; self.layout = layout; self.shardSize = shardSize
    }
}

/// One rank of a sharded checkpoint: its coordinates and what it holds.
public struct RankContents: Sendable {
    public var rank: Int
    public var tpRank: Int
    public var ppStage: Int
    /// The expert-parallel rank (the TP rank when EP > 1, else 0).
    public var epRank: Int
    /// Decoder layers held (a contiguous range), then the MTP layers when kept on the last stage.
    public var layers: [Int]
    /// Routed experts of which this rank holds tensors (whole with EP > 1, a slice with EP = 1).
    public var experts: [Int]
    public var holdsEmbedding: Bool
    public var holdsHead: Bool
    /// Bytes of the tensors this rank holds.
    public var bytes: Int = 0
    /// Per tensor written: its name here, the global tensor, the split (nil: whole) and global shape.
    public var tensors: [Slice]
    /// The rank's folder ("" for the flat DeepSeek layout).
    public var folder: String

    public struct Slice: Sendable {
        public var name: String
        public var global: String
        public var dimension: Int?
        public var offset: Int
        public var length: Int
        public var globalShape: [Int]
    }

    public var json: JSONValue {
        .object([
            ("format", .string("dsconvert-rank")), ("version", .int(1)),
            ("rank", .int(rank)), ("tp_rank", .int(tpRank)), ("pp_stage", .int(ppStage)), ("ep_rank", .int(epRank)),
            ("layers", .array(layers.map { .int($0) })),
            ("experts", .array(experts.map { .int($0) })),
            ("embedding", .bool(holdsEmbedding)), ("lm_head", .bool(holdsHead)),
            ("tensors", .object(tensors.map { s in
                (s.name, .object([
                    ("global", .string(s.global)),
                    ("split_dim", s.dimension.map { .int($0) } ?? .null),
                    ("offset", s.dimension == nil ? .null : .int(s.offset)), ("length", s.dimension == nil ? .null : .int(s.length)),
                    ("global_shape", .array(s.globalShape.map { .int($0) })),
                ]))
            })),
        ])
    }
}

/// Plans `dsconvert shard`: which slice of every input tensor each rank of a TP × PP (× EP) split
/// holds, refused before anything is written when a split cannot be made (sizes that do not
/// divide, a cut inside a quantization block). Tensors are copied as they are (a block-FP8
/// weight with the matching cut of its `weight_scale_inv` grid); the runner streams each slice
/// from the input's mapping.
public enum ShardPlanner {

    public static func folder(rank: Int, of n: Int) -> String { String(format: "rank-%05d-of-%05d", rank, n) }

    public static func plan(_ ckpt: Checkpoint, _ o: ShardOptions) throws -> (plan: ConversionPlan, ranks: [RankContents]) {
        let f = try Facts(ckpt)
        PhaseTrace.mark("per-tensor split facts")
        let a = try assign(ckpt, o, sizesOnly: false, facts: f)
        PhaseTrace.mark("ranks and regions assigned")
        return try files(ckpt, o, a)
    }

    /// What each rank holds (coordinates, layers, experts, bytes) without the per-tensor plans and
    /// slices: the memory-fit plan's fast path (the 671B layout's 92k tensors in well under a second).
    public static func rankSizes(_ ckpt: Checkpoint, _ o: ShardOptions, facts: Facts? = nil) throws -> [RankContents] {
        try assign(ckpt, o, sizesOnly: true, facts: facts ?? Facts(ckpt)).ranks
    }

    /// What every plan of one checkpoint needs, checked and computed once (the memory-fit search
    /// plans many splits of the same headers): config and tensor validation, the classification.
    public struct Facts: @unchecked Sendable {
        let classes: TensorClassification
        /// Per tensor in store order: what every split decision reads from it.
        let entries: [Entry]

        /// A class: every plan of the memory-fit search walks all entries, and a reference is
        /// passed along with one retain where a struct of strings and arrays took a dozen.
        final class Entry {
            let name: String
            let info: TensorInfo
            let role: TensorRole
            /// The quantized weight this tensor is (or is a scale of).
            let q: QuantizedWeight?
            /// The weight whose split decides this tensor's.
            let governing: String
            let expertIndex: Int?
            /// `ShardRules.splitDim` of the governing weight with EP 1 and with EP > 1.
            let dimEP1: Int?
            let dimEP: Int?

            init(name: String, info: TensorInfo, role: TensorRole, q: QuantizedWeight?, governing: String, expertIndex: Int?, dimEP1: Int?, dimEP: Int?) {
                self.name = name; self.info = info; self.role = role; self.q = q; self.governing = governing
                self.expertIndex = expertIndex; self.dimEP1 = dimEP1; self.dimEP = dimEP
            }
        }

        /// Tensor data bytes of the entries `keepMTP` keeps: no rank of any plan holds less than
        /// this divided by the world size (every kept tensor is held whole or in slices that
        /// partition it).
        func keptBytes(layerCount: Int, keepMTP: Bool) -> Int {
            entries.reduce(0) { sum, e in
                keepMTP || (e.role.layer.map { $0 < layerCount } ?? true) ? sum + e.info.byteCount : sum
            }
        }

        public init(_ ckpt: Checkpoint) throws {
            try ckpt.requireClassified()
            PhaseTrace.mark("config validated against the tensors")
            let classes = try TensorClassification.classify(ckpt)
            PhaseTrace.mark("tensors classified")
            self.classes = classes
            var owner: [String: QuantizedWeight] = [:]
            owner.reserveCapacity(classes.quantized.count * 2)
            for q in classes.quantized.values { for t in q.parameterTensors { owner[t.name] = q } }
            let store = ckpt.weights
            let names = store.tensorNames
            let owners = owner
            // Entries are independent of each other: made on every core, in slices of the names.
            let out = UnsafeMutableBufferPointer<Entry>.allocate(capacity: names.count)
            defer { out.deallocate() }
            Parallel.forEachChunk(count: names.count, minChunk: 4096) { range in
                for i in range {
                    let name = names[i]
                    let info = store.info(name)!, role = ckpt.roles[name]!
                    let q = owners[name] ?? classes.quantized[name]
                    let governing = q?.weight.name ?? name
                    // A routed expert's scale grid goes where the expert's weight goes.
                    let governingRole = governing == name ? role : ckpt.roles[governing] ?? role
                    let rank = (q?.weight.shape ?? info.shape).count
                    let split = ShardRules.role(of: governing)
                    (out.baseAddress! + i).initialize(to: Entry(
                        name: name, info: info, role: role, q: q, governing: governing,
                        expertIndex: governingRole.kind == .expert ? governingRole.expert : nil,
                        dimEP1: ShardRules.splitDim(role: split, name: governing, rank: rank, expertParallel: 1),
                        dimEP: ShardRules.splitDim(role: split, name: governing, rank: rank, expertParallel: 2)))
                }
            }
            entries = Array(out)
            out.baseAddress!.deinitialize(count: names.count)
        }
    }

    struct Assignment {
        var ranks: [RankContents]
        var perRank: [[TensorPlan]]
        var counts: [String: Int]
        var quantized: Bool
    }

    /// Decides every tensor's ranks and regions; with `sizesOnly` only the bytes are kept.
    static func assign(_ ckpt: Checkpoint, _ o: ShardOptions, sizesOnly: Bool, facts: Facts) throws -> Assignment {
        let cfg = ckpt.config!
        let p = o.parallel
        let store = ckpt.weights
        let layerCount = cfg.layerCount ?? 0
        let heads = cfg.headCount ?? 1
        let experts = cfg.routedExperts
        try p.validate(ParallelPlan.Dimensions(
            layers: layerCount, attentionHeads: heads, kvHeads: cfg.kvHeadCount ?? heads, vocab: cfg.vocabSize ?? 0,
            intermediate: cfg.intermediateSize ?? 0, moeIntermediate: cfg.moeIntermediateSize, routedExperts: experts))
        if o.layout == .deepseek { try DeepSeekLayout.check(ckpt, o) }
        if o.layout == .deepseek && o.format == .dspack {
            throw QuantizationError.invalidOption("--layout deepseek writes DeepSeek's safetensors files (model{i}-mp{T}.safetensors); --format dspack goes with --layout hf (one pack per rank folder)")
        }

        let classes = facts.classes

        // Layers and pipeline stages.
        func isMTP(_ layer: Int?) -> Bool { layer.map { $0 >= layerCount } ?? false }
        var layerBytes = Array(repeating: 0, count: layerCount)
        var firstExtra = 0, lastExtra = 0
        var kept: [Facts.Entry] = []
        for entry in facts.entries {
            let role = entry.role
            let bytes = entry.info.byteCount
            if isMTP(role.layer) {
                if !o.keepMTP || o.layout == .deepseek { continue }
                lastExtra += bytes
            } else if let l = role.layer {
                layerBytes[l] += bytes
            } else if role.kind == .embedding {
                firstExtra += bytes
            } else {
                lastExtra += bytes
            }
            kept.append(entry)
        }
        let stages = o.stageRule == .balanced
            ? ParallelPlan.stages(layerBytes: layerBytes, pp: p.pp, firstExtra: firstExtra, lastExtra: lastExtra)
            : MemoryFit.engineStages(layers: layerCount, pp: p.pp, rule: o.stageRule)
        func stage(of role: TensorRole) -> Int {
            if let l = role.layer, !isMTP(l) { return stages.firstIndex { $0.contains(l) }! }
            return role.kind == .embedding && role.layer == nil ? 0 : p.pp - 1
        }

        let n = p.worldSize
        var ranks: [RankContents] = (0..<n).map { r in
            let s = r / p.tp, t = r % p.tp
            return RankContents(rank: r, tpRank: t, ppStage: s, epRank: p.ep > 1 ? t : 0,
                                layers: Array(stages[s]), experts: [], holdsEmbedding: false, holdsHead: false, tensors: [],
                                folder: o.layout == .hf ? folder(rank: r, of: n) : "")
        }
        var perRank: [[TensorPlan]] = Array(repeating: [], count: n)
        // Per rank, the routed experts it holds tensors of (flags for the config's experts, a set
        // for any other index).
        let expertCount = max(0, experts ?? 0)
        var expertFlags: [[Bool]] = Array(repeating: Array(repeating: false, count: expertCount), count: n)
        var otherExperts: [Set<Int>] = Array(repeating: [], count: n)
        var mtpLayers: Set<Int> = []
        var counts: [String: Int] = [:]

        for entry in kept {
            let name = entry.name, info = entry.info, role = entry.role, q = entry.q, governing = entry.governing
            let expertIndex = entry.expertIndex
            let s = stage(of: role)
            if isMTP(role.layer) { mtpLayers.insert(role.layer!) }
            var holders = 0..<p.tp
            if let e = expertIndex, p.ep > 1 {
                let r = o.placement.rank(of: e, experts: experts ?? 0, ep: p.ep)
                holders = r..<(r + 1)
            }
            // The weight's split dimension; its quantization tensors are cut to match.
            // The governing weight's split dimension (a quantization tensor is cut to match).
            let dim: Int? = (expertIndex != nil && p.ep > 1) ? nil : p.ep > 1 ? entry.dimEP : entry.dimEP1
            for t in holders {
                let r = s * p.tp + t
                var region: TensorRegion?
                var slice: SliceRange?
                if let d = dim {
                    let weightShape = q?.weight.shape ?? info.shape
                    try ParallelPlan.checkDivisible(tensor: governing, dimension: d, size: weightShape[d], parts: p.tp)
                    let part = SliceRange.part(t, of: p.tp, size: weightShape[d])
                    let weightRegion = TensorRegion(dimension: d, range: part.offset..<(part.offset + part.length))
                    if let q, name != q.weight.name {
                        region = try parameterRegion(name, info: info, of: q, weightRegion: weightRegion, parts: p.tp)
                    } else {
                        if let q, case let .block(br, bc) = q.encoding.scale, p.tp > 1 {
                            try ParallelPlan.checkBlockAlignment(tensor: name, size: weightShape[d], parts: p.tp, block: d == 0 ? br : bc)
                        }
                        region = weightRegion
                    }
                    if let reg = region { slice = SliceRange(offset: reg.range.lowerBound, length: reg.range.count) }
                }
                if let e = expertIndex {
                    if e >= 0 && e < expertCount { expertFlags[r][e] = true } else { otherExperts[r].insert(e) }
                }
                if role.kind == .embedding && role.layer == nil { ranks[r].holdsEmbedding = true }
                if role.kind == .lmHead && role.layer == nil { ranks[r].holdsHead = true }
                if sizesOnly {
                    ranks[r].bytes += region.map { info.byteCount / info.shape[$0.dimension] * $0.range.count } ?? info.byteCount
                    continue
                }
                let outName = o.layout == .deepseek ? DeepSeekLayout.name(name) : name
                let quantizing = o.quantize.flatMap { scheme in quantizes(entry, with: scheme) ? scheme : nil }
                var plan: TensorPlan
                if let scheme = quantizing {
                    if let d = dim, case .block = scheme.target(scaleDType: .f32).scale, p.tp > 1 {
                        try ParallelPlan.checkBlockAlignment(tensor: name, size: info.shape[d], parts: p.tp, block: scheme.blockSize)
                    }
                    let module = String(name.dropLast(".weight".count))
                    plan = TensorPlan(source: name, action: .quantize(scheme),
                                      outputs: scheme.outputs(module: module, rows: info.shape[0], cols: info.shape[1], modelDType: ckpt.modelDType))
                    if let region { plan = try plan.restricted(to: region, fullShape: info.shape) }
                    if o.layout == .deepseek { for k in plan.outputs.indices { plan.outputs[k].name = DeepSeekLayout.name(plan.outputs[k].name) } }
                } else {
                    plan = TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: outName, dtype: info.dtype, shape: info.shape)])
                    if let region { plan = try plan.restricted(to: region, fullShape: info.shape) }
                }
                perRank[r].append(plan)
                ranks[r].bytes += plan.outputs.reduce(0) { $0 + $1.byteCount }
                ranks[r].tensors.append(RankContents.Slice(
                    name: plan.outputs[0].name, global: name, dimension: region?.dimension,
                    offset: slice?.offset ?? 0, length: slice?.length ?? (info.shape.first ?? 1), globalShape: info.shape))
                if let scheme = quantizing {
                    // The scale grid: its global tensor is the unsharded quantized model's, cut in
                    // whole blocks along the weight's split dimension.
                    let grid = scheme.outputs(module: String(name.dropLast(".weight".count)), rows: info.shape[0], cols: info.shape[1], modelDType: ckpt.modelDType)[1]
                    let b = scheme.blockSize
                    ranks[r].tensors.append(RankContents.Slice(
                        name: plan.outputs[1].name, global: grid.name, dimension: region?.dimension,
                        offset: (slice?.offset ?? 0) / b, length: region == nil ? (grid.shape.first ?? 1) : plan.outputs[1].shape[region!.dimension],
                        globalShape: grid.shape))
                    counts["quantized", default: 0] += 1
                }
                counts[region == nil ? (holders.count == 1 && p.tp > 1 ? "whole experts" : "replicated") : "sliced", default: 0] += 1
            }
        }
        for r in 0..<n {
            ranks[r].experts = (expertFlags[r].indices.filter { expertFlags[r][$0] } + otherExperts[r]).sorted()
            if ranks[r].ppStage == p.pp - 1 { ranks[r].layers += mtpLayers.sorted() }
        }

        return Assignment(ranks: ranks, perRank: perRank, counts: counts, quantized: !classes.quantized.isEmpty || o.quantize != nil)
    }

    /// Whether `shard --fp8` quantizes this tensor: a plain (BF16, F16, F32) 2-D weight that
    /// `quantize` quantizes by default.
    static func quantizes(_ entry: Facts.Entry, with scheme: QuantizationScheme) -> Bool {
        entry.q == nil && entry.role.quantizedByDefault && entry.info.shape.count == 2 && [.bf16, .f16, .f32].contains(entry.info.dtype)
    }

    static func files(_ ckpt: Checkpoint, _ o: ShardOptions, _ a: Assignment) throws -> (plan: ConversionPlan, ranks: [RankContents]) {
        let cfg = ckpt.config!, p = o.parallel, store = ckpt.weights, n = p.worldSize
        let ranks = a.ranks, perRank = a.perRank, counts = a.counts
        // Files: a safetensors set per rank folder, or DeepSeek's one file per rank.
        var files: [(name: String, tensors: [TensorPlan])] = []
        let config: JSONValue?
        var extras: [(name: String, bytes: [UInt8])] = []
        switch o.layout {
        case .hf:
            // Ranks are independent: each one's files and rank.json are made on every core.
            typealias RankFiles = (files: [(name: String, tensors: [TensorPlan])], manifest: (name: String, bytes: [UInt8])?)
            let made = UnsafeMutableBufferPointer<Result<RankFiles, Error>?>.allocate(capacity: n)
            made.initialize(repeating: nil)
            defer { made.deallocate() }
            DispatchQueue.concurrentPerform(iterations: n) { r in
                made[r] = Result {
                    let f = ranks[r].folder
                    if o.format == .dspack {
                        // One pack per rank folder; its rank.json is embedded (PackedOutput.prepareRanks).
                        let layout = OutputLayout(format: DSPackFormat(), chunking: .single, folderRule: "rank", folder: { _ in f })
                        return (try layout.files(perRank[r], store: store), nil)
                    }
                    let layout = OutputLayout(chunking: .maxFileSize(o.shardSize), folderRule: "rank", folder: { _ in f })
                    return (try layout.files(perRank[r], store: store), (OutputLayout.join(f, RankManifest.fileName), JSONWriter.prettyBytes(ranks[r].json)))
                }
            }
            for r in 0..<n {
                let m = try made[r]!.get()
                files += m.files
                if let manifest = m.manifest { extras.append(manifest) }
            }
            config = o.quantize.map { scheme in
                var c = cfg.json.setting("quantization_config", scheme.quantizationConfig(ignore: []))
                if c["torch_dtype"] == nil && c["dtype"] == nil, let t = ckpt.modelDType.torchName { c = c.setting("torch_dtype", .string(t)) }
                return c
            } ?? cfg.json
        case .deepseek:
            for r in 0..<n { files.append((DeepSeekLayout.fileName(rank: r, of: n), perRank[r])) }
            config = nil
            extras.append((DeepSeekLayout.modelArgsFileName, JSONWriter.prettyBytes(try DeepSeekLayout.modelArgs(ckpt, quantized: a.quantized))))
        }
        PhaseTrace.mark("rank files laid out, rank.json made")
        let settings = "shard tp \(p.tp) pp \(p.pp) ep \(p.ep) (\(o.placement.rawValue) experts)\(o.keepMTP ? " with MTP" : ""); layout \(o.layout.rawValue)" + (o.quantize.map { "; quantize \($0.summary)" } ?? "")
        let packs = o.format == .dspack
        var plan = PlanBuilder.assemble(ckpt, files: files, format: packs ? DSPackFormat() : SafeTensorsFormat(),
                                        writesIndex: o.layout == .hf && !packs, config: config, settings: settings + (packs ? "; one .dspack per rank" : ""),
                                        counts: counts)
        plan.extraFiles = extras
        PhaseTrace.mark("plan assembled")
        plan.settingsDigest = SettingsDigest.compute(command: "shard", options: [
            ("tp", .int(p.tp)), ("pp", .int(p.pp)), ("ep", .int(p.ep)), ("keep_mtp", .bool(o.keepMTP)),
            ("expert_placement", .string(o.placement.rawValue)), ("layout", .string(o.layout.rawValue)),
            ("shard_size", .int(o.shardSize)),
        ] + (o.quantize.map { [("quantize", .string($0.summary))] } ?? []) + (packs ? [("format", .string("dspack"))] : []),
            inputConfig: cfg.json, plan: plan)
        PhaseTrace.mark("settings digest")
        if packs { plan = try PackedOutput.prepareRanks(plan, checkpoint: ckpt, ranks: ranks, options: o) }
        return (plan, ranks)
    }

    /// The region of a quantization tensor (`name`) of `q` that goes with `weightRegion` of the
    /// weight: a block grid's matching cut (refusing a cut inside a block), a per-channel
    /// scale's rows when the weight is cut along its rows, nothing (whole) otherwise.
    static func parameterRegion(_ name: String, info: TensorInfo, of q: QuantizedWeight, weightRegion: TensorRegion, parts: Int) throws -> TensorRegion? {
        let isScaleLike = name == q.scale.name || name == q.zeroPoint?.name
        guard isScaleLike, info.elementCount > 1 else { return nil }
        switch q.encoding.scale {
        case let .block(br, bc):
            if parts > 1 {
                try ParallelPlan.checkBlockAlignment(tensor: q.weight.name, size: q.weight.shape[weightRegion.dimension], parts: parts,
                                                     block: weightRegion.dimension == 0 ? br : bc)
            }
            return try weightRegion.scaleGrid(weightShape: q.weight.shape, blocks: [br, bc], tensor: q.weight.name)
        case .channel:
            return weightRegion.dimension == 0 ? TensorRegion(dimension: 0, range: weightRegion.range) : nil
        case .tensor, .none:
            return nil
        }
    }
}
