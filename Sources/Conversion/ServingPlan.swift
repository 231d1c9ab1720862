import Checkpoint
import Foundation
import JSON
import Sharding

/// `dsconvert shard --plan`: from headers alone, what each GPU of a TP × PP (× EP) plan holds —
/// weight bytes (the sharder's own per-rank plan), KV cache bytes per token — and how many
/// tokens of KV cache fit on a given GPU; the smallest plan that fits a requested context; the
/// launch command of an engine that serves it.
public struct ServingPlan: Sendable {
    public enum Engine: String, Sendable, CaseIterable { case vllm, sglang }

    public struct Options: Sendable {
        public var gpu: MemoryFit.GPU
        public var utilisation: Double = 0.9
        /// Held back from the usable memory for activations, CUDA graphs and the allocator.
        public var reserve: Int = 4 << 30
        /// `auto` (the model dtype), `bf16`, `fp16` or `fp8`.
        public var kvCacheDType: String = "auto"
        public var maxModelLen: Int
        public var maxSeqs: Int = 1
        /// Model this engine's pipeline split (nil: dsconvert's balanced one).
        public var engine: Engine?
        public var keepMTP: Bool = false
        public var placement: ExpertPlacement = .contiguous
        public init(gpu: MemoryFit.GPU, maxModelLen: Int) { self.gpu = gpu; self.maxModelLen = maxModelLen }
    }

    public struct Rank: Sendable {
        public var rank: Int
        public var ppStage: Int
        public var layers: Int
        public var budget: MemoryFit.Budget
    }

    public var parallel: ParallelPlan
    public var ranks: [Rank]
    public var options: Options
    /// Tokens of KV cache every GPU can hold (the tightest rank's).
    public var tokens: Int { ranks.map(\.budget.tokens).min() ?? 0 }
    public var requiredTokens: Int { options.maxModelLen * options.maxSeqs }
    public var fits: Bool { ranks.allSatisfy { $0.budget.kvBytes > 0 } && tokens >= requiredTokens }
    public var nodes: Int { (parallel.worldSize + 7) / 8 }

    /// The attention cache of `ckpt`'s architecture.
    static func attention(_ ckpt: Checkpoint) throws -> MemoryFit.Attention {
        let c = ckpt.config!
        if ckpt.architecture == .deepseekV3 {
            guard let r = c.int("kv_lora_rank"), let p = c.int("qk_rope_head_dim") else {
                throw ShardError(.input, code: "shard.config_missing", "config.json needs kv_lora_rank and qk_rope_head_dim for MLA's KV cache")
            }
            return .latent(kvLoraRank: r, ropeDim: p)
        }
        let heads = c.headCount ?? 1
        let headDim = c.int("head_dim") ?? (c.hiddenSize ?? 0) / heads
        return .grouped(kvHeads: c.kvHeadCount ?? heads, headDim: headDim)
    }

    static func kvElementBytes(_ ckpt: Checkpoint, _ kvDType: String) throws -> Int {
        switch kvDType {
        case "fp8": return 1
        case "bf16", "fp16": return 2
        case "auto": return ckpt.config?.dtype == .f32 ? 4 : 2
        default: throw ShardError(code: "shard.bad_kv_dtype", "--kv-cache-dtype must be auto, bf16, fp16 or fp8 (got \(kvDType))")
        }
    }

    public static func make(_ ckpt: Checkpoint, parallel: ParallelPlan, options o: Options, facts: ShardPlanner.Facts? = nil) throws -> ServingPlan {
        var so = ShardOptions(parallel: parallel, keepMTP: o.keepMTP, placement: o.placement)
        so.stageRule = o.engine.map { $0 == .vllm ? .vllm : .sglang } ?? .balanced
        let ranks = try ShardPlanner.rankSizes(ckpt, so, facts: facts)
        let att = try attention(ckpt)
        let eb = try kvElementBytes(ckpt, o.kvCacheDType)
        let layerCount = ckpt.config?.layerCount ?? 0
        let rows = ranks.map { r -> Rank in
            // Decoder layers cache KV; a kept MTP layer caches too.
            let n = r.layers.count
            let perToken = n * att.bytesPerToken(tp: parallel.tp, elementBytes: eb)
            return Rank(rank: r.rank, ppStage: r.ppStage, layers: r.layers.filter { $0 < layerCount }.count,
                        budget: MemoryFit.budget(gpuBytes: o.gpu.bytes, utilisation: o.utilisation, reserve: o.reserve,
                                                 weights: r.bytes, kvPerToken: perToken))
        }
        return ServingPlan(parallel: parallel, ranks: rows, options: o)
    }

    /// The smallest plan that fits: world sizes 1, 2, 4, … 256, TP up to 8 within a node first
    /// (PP across nodes), then TP across nodes; EP = TP for MoE models when the experts divide.
    /// Plans the model cannot take (indivisible, a cut FP8 block) are skipped.
    public static func smallest(_ ckpt: Checkpoint, options: Options, facts given: ShardPlanner.Facts? = nil) -> ServingPlan? {
        guard let facts = try given ?? (try? ShardPlanner.Facts(ckpt)) else { return nil }
        let experts = ckpt.config?.routedExperts
        // A world too small for the weights alone is passed over without planning it: some rank
        // holds at least the kept bytes / n (see `keptBytes`), more than the usable memory.
        let usable = MemoryFit.budget(gpuBytes: options.gpu.bytes, utilisation: options.utilisation, reserve: options.reserve, weights: 0, kvPerToken: 0).usable
        let kept = facts.keptBytes(layerCount: ckpt.config?.layerCount ?? 0, keepMTP: options.keepMTP)
        var n = 1
        while n <= 256 {
            if kept / n >= usable {
                n *= 2
                continue
            }
            var candidates: [(Int, Int)] = [(min(n, 8), n / min(n, 8))]
            if n > 8 { candidates.append((n, 1)) }
            for (tp, pp) in candidates {
                let ep = experts.map { $0 % tp == 0 ? tp : 1 } ?? 1
                if let p = try? make(ckpt, parallel: ParallelPlan(tp: tp, pp: pp, ep: ep), options: options, facts: facts), p.fits { return p }
            }
            n *= 2
        }
        return nil
    }

    /// The engine's launch command for this plan, serving the unsharded Hugging Face folder
    /// `model` (vLLM and SGLang split it themselves). Flag names are the engines' own:
    /// vLLM's vllm/engine/arg_utils.py (EngineArgs), SGLang's python/sglang/srt/server_args.py.
    public func launchCommand(_ engine: Engine, model: String) -> [String] {
        let p = parallel, o = options
        switch engine {
        case .vllm:
            var a = ["vllm", "serve", model, "--tensor-parallel-size", String(p.tp)]
            if p.pp > 1 { a += ["--pipeline-parallel-size", String(p.pp)] }
            if p.ep > 1 { a += ["--enable-expert-parallel"] }
            a += ["--max-model-len", String(o.maxModelLen), "--max-num-seqs", String(o.maxSeqs),
                  "--gpu-memory-utilization", String(o.utilisation)]
            if o.kvCacheDType == "fp8" { a += ["--kv-cache-dtype", "fp8"] }
            a += ["--trust-remote-code"]
            return a
        case .sglang:
            var a = ["python3", "-m", "sglang.launch_server", "--model-path", model, "--tp-size", String(p.tp)]
            if p.pp > 1 { a += ["--pp-size", String(p.pp)] }
            if p.ep > 1 { a += ["--ep-size", String(p.ep)] }
            if nodes > 1 { a += ["--nnodes", String(nodes), "--node-rank", "0", "--dist-init-addr", "HEAD_NODE_IP:5000"] }
            a += ["--context-length", String(o.maxModelLen), "--max-running-requests", String(o.maxSeqs),
                  "--mem-fraction-static", String(o.utilisation)]
            if o.kvCacheDType == "fp8" { a += ["--kv-cache-dtype", "fp8_e4m3"] }
            a += ["--trust-remote-code"]
            return a
        }
    }

    public var json: JSONValue {
        .object([
            ("tp", .int(parallel.tp)), ("pp", .int(parallel.pp)), ("ep", .int(parallel.ep)),
            ("gpus", .int(parallel.worldSize)), ("nodes", .int(nodes)),
            ("gpu", .string(options.gpu.name)), ("gpu_bytes", .int(options.gpu.bytes)),
            ("mem_util", .double(options.utilisation)), ("reserve_bytes", .int(options.reserve)),
            ("kv_cache_dtype", .string(options.kvCacheDType)), ("stage_rule", .string(options.engine?.rawValue ?? "balanced")),
            ("max_model_len", .int(options.maxModelLen)), ("max_seqs", .int(options.maxSeqs)),
            ("required_tokens", .int(requiredTokens)), ("kv_tokens", .int(tokens)), ("fits", .bool(fits)),
            ("ranks", .array(ranks.map { r in
                .object([("rank", .int(r.rank)), ("pp_stage", .int(r.ppStage)), ("layers", .int(r.layers)),
                         ("weight_bytes", .int(r.budget.weights)), ("kv_bytes_per_token", .int(r.budget.kvPerToken)),
                         ("kv_bytes", .int(r.budget.kvBytes)), ("kv_tokens", .int(r.budget.tokens))])
            })),
        ])
    }
}
