import Foundation

/// What one scored position says about a pair of models: the log-probabilities of the true next
/// token under each, KL(P_ref ‖ P_cand) in nats over the whole vocabulary, and whether both put
/// their largest probability on the same token. Computed from one row of logits of each model
/// through log-softmax in Double (max-shifted), so no probability is formed from an overflowing
/// exponential and KL never takes the log of an underflowed zero.
public struct TokenScore: Equatable, Sendable {
    public var refLogP: Double
    public var candLogP: Double
    public var kl: Double
    public var sameTop1: Bool

    public init(refLogP: Double, candLogP: Double, kl: Double, sameTop1: Bool) {
        self.refLogP = refLogP; self.candLogP = candLogP; self.kl = kl; self.sameTop1 = sameTop1
    }

    /// Scores the position whose logits are `ref` and `cand` (equal lengths, the vocabulary)
    /// against the true next token `target`.
    public static func compare(ref: UnsafeBufferPointer<Float>, cand: UnsafeBufferPointer<Float>, target: Int) -> TokenScore {
        precondition(ref.count == cand.count && target >= 0 && target < ref.count)
        let (lseR, argR) = LogSoftmax.logSumExp(ref)
        let (lseC, argC) = LogSoftmax.logSumExp(cand)
        var kl = 0.0
        for i in 0..<ref.count {
            let lr = Double(ref[i]) - lseR
            let lc = Double(cand[i]) - lseC
            kl += exp(lr) * (lr - lc)
        }
        return TokenScore(refLogP: Double(ref[target]) - lseR, candLogP: Double(cand[target]) - lseC,
                          kl: max(kl, 0), sameTop1: argR == argC)
    }
}

/// log Σ exp(x) computed as max + log Σ exp(x − max), and the first index of the maximum.
public enum LogSoftmax {
    public static func logSumExp(_ x: UnsafeBufferPointer<Float>) -> (Double, Int) {
        precondition(!x.isEmpty)
        var m = x[0], arg = 0
        for i in 1..<x.count where x[i] > m { m = x[i]; arg = i }
        let md = Double(m)
        var s = 0.0
        for v in x { s += exp(Double(v) - md) }
        return (md + log(s), arg)
    }

    /// log p of `target` under the softmax of `x`.
    public static func logProbability(_ x: UnsafeBufferPointer<Float>, target: Int) -> Double {
        Double(x[target]) - logSumExp(x).0
    }
}
