import EngineKernels
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
    /// against the true next token `target`. One pass over both rows (ek_compare_rows: a 4-lane
    /// double exp, two exponentials per entry, KL = Σ p_ref·(lr − lc) from the same sums).
    public static func compare(ref: UnsafeBufferPointer<Float>, cand: UnsafeBufferPointer<Float>, target: Int) -> TokenScore {
        precondition(ref.count == cand.count && target >= 0 && target < ref.count)
        var lseR = 0.0, lseC = 0.0, kl = 0.0
        var argR: Int32 = 0, argC: Int32 = 0
        ek_compare_rows(ref.baseAddress!, cand.baseAddress!, Int32(ref.count), &lseR, &lseC, &kl, &argR, &argC)
        return TokenScore(refLogP: Double(ref[target]) - lseR, candLogP: Double(cand[target]) - lseC,
                          kl: max(kl, 0), sameTop1: argR == argC)
    }
}

/// log Σ exp(x) computed as max + log Σ exp(x − max), and the first index of the maximum.
public enum LogSoftmax {
    public static func logSumExp(_ x: UnsafeBufferPointer<Float>) -> (Double, Int) {
        precondition(!x.isEmpty)
        var arg: Int32 = 0
        let lse = ek_log_sum_exp(x.baseAddress!, Int32(x.count), &arg)
        return (lse, Int(arg))
    }

    /// log p of `target` under the softmax of `x`.
    public static func logProbability(_ x: UnsafeBufferPointer<Float>, target: Int) -> Double {
        Double(x[target]) - logSumExp(x).0
    }
}
