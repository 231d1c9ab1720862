import Diagnostics

/// An error in a parallel split, found before anything is written.
public struct ShardError: DiagnosticError, Equatable {
    public var category: ErrorCategory
    public var code: String
    public var tensor: String?
    public var message: String
    public init(_ category: ErrorCategory = .usage, code: String, tensor: String? = nil, _ message: String) {
        self.category = category; self.code = code; self.tensor = tensor; self.message = message
    }
}

/// Where routed experts go when expert parallelism is above 1.
public enum ExpertPlacement: String, Sendable, CaseIterable {
    /// Experts `[r*E/EP, (r+1)*E/EP)` on rank r (DeepSeek-V3's convert.py, vLLM's default).
    case contiguous
    /// Expert e on rank `e % EP`.
    case roundRobin = "round-robin"

    /// The expert-parallel rank that holds expert `expert` of `experts`.
    public func rank(of expert: Int, experts: Int, ep: Int) -> Int {
        switch self {
        case .contiguous: return expert / (experts / ep)
        case .roundRobin: return expert % ep
        }
    }
}

/// The sizes of a split: tensor (TP), pipeline (PP) and expert (EP) parallelism.
/// Ranks are numbered `pp_stage * tp + tp_rank`; expert-parallel ranks coincide with the TP
/// ranks of a stage (EP is 1 or TP), as in DeepSeek-V3's convert.py.
public struct ParallelPlan: Equatable, Sendable {
    public var tp: Int
    public var pp: Int
    public var ep: Int
    public init(tp: Int, pp: Int = 1, ep: Int = 1) { self.tp = tp; self.pp = pp; self.ep = ep }

    public var worldSize: Int { tp * pp }

    /// The model dimensions a split must divide.
    public struct Dimensions: Equatable, Sendable {
        public var layers: Int
        public var attentionHeads: Int
        public var kvHeads: Int
        public var vocab: Int
        public var intermediate: Int
        public var moeIntermediate: Int?
        public var routedExperts: Int?
        public init(layers: Int, attentionHeads: Int, kvHeads: Int, vocab: Int, intermediate: Int, moeIntermediate: Int? = nil, routedExperts: Int? = nil) {
            self.layers = layers; self.attentionHeads = attentionHeads; self.kvHeads = kvHeads; self.vocab = vocab
            self.intermediate = intermediate; self.moeIntermediate = moeIntermediate; self.routedExperts = routedExperts
        }
    }

    /// Refuses a split the model cannot take, naming the dimension and the sizes that would work.
    /// KV heads are not replicated across ranks: TP must divide them (GQA), as it must divide the
    /// attention heads, the vocabulary and the MLP widths.
    public func validate(_ d: Dimensions) throws {
        guard tp >= 1, pp >= 1, ep >= 1 else { throw ShardError(code: "shard.bad_size", "tp, pp and ep must be at least 1 (got tp \(tp), pp \(pp), ep \(ep))") }
        guard pp <= d.layers else { throw ShardError(code: "shard.pp_exceeds_layers", "pp \(pp) is more than the model's \(d.layers) layers") }
        guard ep == 1 || ep == tp else { throw ShardError(code: "shard.ep_not_tp", "ep must be 1 or equal to tp (got ep \(ep), tp \(tp))") }
        var checks: [(String, Int, Int)] = [("attention heads", d.attentionHeads, tp), ("key/value heads", d.kvHeads, tp), ("vocabulary", d.vocab, tp), ("intermediate size", d.intermediate, tp)]
        if let m = d.moeIntermediate, ep == 1 { checks.append(("moe intermediate size", m, tp)) }
        if let e = d.routedExperts, ep > 1 { checks.append(("routed experts", e, ep)) }
        for (what, size, parts) in checks where size % parts != 0 {
            throw ShardError(code: "shard.indivisible", "\(parts) does not divide the model's \(what) (\(size)); sizes that do: \(ParallelPlan.divisors(of: size).map(String.init).joined(separator: ", "))")
        }
    }

    /// Refuses a split of dimension `size` into `parts` whose pieces would cut a quantization
    /// block of `block` elements (block FP8's 128), naming the tensor and the sizes that work.
    public static func checkBlockAlignment(tensor: String, size: Int, parts: Int, block: Int) throws {
        guard size % parts != 0 || (size / parts) % block != 0 else { return }
        let working = divisors(of: size).filter { (size / $0) % block == 0 }
        throw ShardError(code: "shard.block_misaligned", tensor: tensor, "a split of \(size) into \(parts) cuts its \(block)-element quantization blocks; tensor-parallel sizes that keep them whole: \(working.isEmpty ? "none" : working.map(String.init).joined(separator: ", "))")
    }

    /// Refuses a tensor whose dimension of `size` does not divide into `parts` equal pieces,
    /// naming the tensor and the sizes that do.
    public static func checkDivisible(tensor: String, dimension: Int, size: Int, parts: Int) throws {
        guard size % parts != 0 else { return }
        throw ShardError(code: "shard.indivisible", tensor: tensor, "dimension \(dimension) (\(size)) does not divide into \(parts) equal parts; sizes that do: \(divisors(of: size).map(String.init).joined(separator: ", "))")
    }

    static func divisors(of n: Int) -> [Int] { n <= 0 ? [] : (1...min(n, 1024)).filter { n % $0 == 0 } }

    /// Contiguous layer ranges, one per pipeline stage, balanced by bytes: the partition that
    /// minimises the largest stage's bytes, where `firstExtra` (the embedding) counts on stage 0
    /// and `lastExtra` (final norm, lm_head, kept MTP layers) on the last stage. Every stage
    /// gets at least one layer.
    public static func stages(layerBytes: [Int], pp: Int, firstExtra: Int = 0, lastExtra: Int = 0) -> [Range<Int>] {
        let n = layerBytes.count
        precondition(pp >= 1 && pp <= n)
        var prefix = [0]
        for b in layerBytes { prefix.append(prefix.last! + b) }
        func cost(_ lo: Int, _ hi: Int, _ stage: Int) -> Int {
            prefix[hi] - prefix[lo] + (stage == 0 ? firstExtra : 0) + (stage == pp - 1 ? lastExtra : 0)
        }
        // best[s][i]: the smallest maximum over stages 0..<s covering layers 0..<i.
        let inf = Int.max
        var best = Array(repeating: Array(repeating: inf, count: n + 1), count: pp + 1)
        var cut = Array(repeating: Array(repeating: 0, count: n + 1), count: pp + 1)
        best[0][0] = 0
        for s in 1...pp {
            for i in s...(n - (pp - s)) {
                for j in (s - 1)..<i where best[s - 1][j] != inf {
                    let v = max(best[s - 1][j], cost(j, i, s - 1))
                    if v < best[s][i] { best[s][i] = v; cut[s][i] = j }
                }
            }
        }
        var ranges: [Range<Int>] = []
        var i = n
        for s in stride(from: pp, to: 0, by: -1) {
            let j = cut[s][i]
            ranges.append(j..<i)
            i = j
        }
        return ranges.reversed()
    }
}
