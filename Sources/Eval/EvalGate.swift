/// The bounds that make `dsconvert eval` a pipeline gate. A broken bound is a `Failure` naming
/// it, its limit and the measured value; the command exits with status 3 on any.
public struct EvalGate: Sendable {
    public enum Bound: String, Sendable {
        /// 100 × (ppl(cand) / ppl(ref) − 1) at most the limit.
        case perplexityIncrease = "max_ppl_increase"
        /// Mean KL(P_ref ‖ P_cand) in nats at most the limit.
        case klMean = "max_kl_mean"
        /// Same top-1 token in percent at least the limit.
        case top1 = "min_top1"
    }

    public struct Failure: Sendable, Equatable {
        public let bound: Bound
        public let limit: Double
        /// The measured value in the bound's unit (percent for the two percentages); nil when
        /// the run could not measure it (tokenizers differ: no per-token comparison).
        public let value: Double?
    }

    public var maxPerplexityIncreasePercent: Double?
    public var maxKLMean: Double?
    public var minTop1Percent: Double?

    public init(maxPerplexityIncreasePercent: Double? = nil, maxKLMean: Double? = nil, minTop1Percent: Double? = nil) {
        self.maxPerplexityIncreasePercent = maxPerplexityIncreasePercent
        self.maxKLMean = maxKLMean
        self.minTop1Percent = minTop1Percent
    }

    public var isEmpty: Bool { maxPerplexityIncreasePercent == nil && maxKLMean == nil && minTop1Percent == nil }

    /// Every bound that is set, with the value measured for it and whether it held.
    public func evaluate(_ r: EvalReport) -> [(bound: Bound, limit: Double, value: Double?, passed: Bool)] {
        var out: [(Bound, Double, Double?, Bool)] = []
        if let limit = maxPerplexityIncreasePercent {
            let v = r.perplexityRatio.map { 100 * ($0 - 1) }
            out.append((.perplexityIncrease, limit, v, v.map { $0 <= limit } ?? false))
        }
        if let limit = maxKLMean {
            let v = r.comparison != nil ? r.perplexity?.kl.mean : nil
            out.append((.klMean, limit, v, v.map { $0 <= limit } ?? false))
        }
        if let limit = minTop1Percent {
            let v = r.comparison != nil ? r.perplexity.map { 100 * $0.top1.fraction } : nil
            out.append((.top1, limit, v, v.map { $0 >= limit } ?? false))
        }
        return out
    }

    public func failures(_ r: EvalReport) -> [Failure] {
        evaluate(r).filter { !$0.passed }.map { Failure(bound: $0.bound, limit: $0.limit, value: $0.value) }
    }
}
