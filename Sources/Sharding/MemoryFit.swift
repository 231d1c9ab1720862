/// How much of a GPU a parallel plan uses: the presets `shard --plan --gpu` knows, the KV cache
/// per token a rank holds, the serving engines' own pipeline splits, and the token budget that is
/// left. Pure arithmetic; the weight bytes per rank come from the sharder's plan.
public enum MemoryFit {
    /// A GPU and the memory CUDA (or ROCm) reports for it.
    public struct GPU: Equatable, Sendable {
        public var name: String
        public var bytes: Int
        public init(name: String, bytes: Int) { self.name = name; self.bytes = bytes }
    }

    static let mib = 1 << 20
    /// `nvidia-smi --query-gpu=memory.total` of each board (MiB) where known; H20 and MI300X at
    /// their nominal 96 GiB and 192 GiB.
    public static let presets: [GPU] = [
        GPU(name: "H100-80G", bytes: 81_559 * mib),
        GPU(name: "H200-141G", bytes: 143_771 * mib),
        GPU(name: "H20-96G", bytes: 96 * 1024 * mib),
        GPU(name: "A100-40G", bytes: 40_960 * mib),
        GPU(name: "A100-80G", bytes: 81_920 * mib),
        GPU(name: "MI300X-192G", bytes: 192 * 1024 * mib),
    ]

    /// The preset named `name` (`H100`, `h100-80g`, `A100-40G`; a bare `A100` is the 80 GB board).
    public static func preset(_ name: String) -> GPU? {
        let n = name.uppercased()
        return presets.first { $0.name == n } ?? presets.first { $0.name.hasPrefix(n + "-") && !(n == "A100" && $0.name == "A100-40G") }
    }

    /// What one layer caches per token.
    public enum Attention: Equatable, Sendable {
        /// DeepSeek's MLA: the compressed latent (`kv_lora_rank`) and the shared rope key
        /// (`qk_rope_head_dim`), the same on every TP rank (vLLM and SGLang replicate it).
        case latent(kvLoraRank: Int, ropeDim: Int)
        /// Grouped-query attention: K and V of the rank's `kvHeads / tp` heads.
        case grouped(kvHeads: Int, headDim: Int)

        /// Bytes per token per layer on one tensor-parallel rank.
        public func bytesPerToken(tp: Int, elementBytes: Int) -> Int {
            switch self {
            case let .latent(r, p): return (r + p) * elementBytes
            case let .grouped(h, d): return 2 * (h / tp) * d * elementBytes
            }
        }
    }

    /// Whose pipeline split of the decoder layers to model.
    public enum StageRule: String, Sendable {
        /// dsconvert's: contiguous ranges balanced by bytes.
        case balanced
        /// vLLM's `get_pp_indices` (vllm/distributed/utils.py): ⌊L/P⌋ layers each, the L mod P
        /// extra layers to partitions[-2], [-3], … (never the last).
        case vllm
        /// SGLang's `get_pp_indices` (python/sglang/srt/distributed/utils.py): ⌊L/P⌋ each, the
        /// last L mod P partitions one more.
        case sglang
    }

    /// Layer counts per stage under an engine's rule (not `.balanced`, which needs bytes).
    public static func engineStages(layers: Int, pp: Int, rule: StageRule) -> [Range<Int>] {
        var counts = Array(repeating: layers / pp, count: pp)
        let extra = layers % pp
        switch rule {
        case .vllm: for i in stride(from: 2, to: extra + 2, by: 1) { counts[pp - i] += 1 }
        case .sglang: for i in 0..<extra { counts[pp - 1 - i] += 1 }
        case .balanced: preconditionFailure("balanced stages come from ParallelPlan.stages")
        }
        var out: [Range<Int>] = []
        var start = 0
        for c in counts { out.append(start..<(start + c)); start += c }
        return out
    }

    /// The memory a GPU gives a plan: `gpu × utilisation − reserve` (activations, CUDA graphs,
    /// the allocator), what is left after `weights` for the KV cache, and how many tokens fit.
    public struct Budget: Equatable, Sendable {
        public var usable: Int
        public var weights: Int
        public var kvBytes: Int
        public var kvPerToken: Int
        public var tokens: Int
    }

    public static func budget(gpuBytes: Int, utilisation: Double, reserve: Int, weights: Int, kvPerToken: Int) -> Budget {
        let usable = Int(Double(gpuBytes) * utilisation) - reserve
        let kv = usable - weights
        return Budget(usable: usable, weights: weights, kvBytes: kv, kvPerToken: kvPerToken,
                      tokens: kv > 0 && kvPerToken > 0 ? kv / kvPerToken : 0)
    }
}
