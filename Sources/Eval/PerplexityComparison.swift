import Foundation

/// The perplexities of two models scored on the same tokens, with the uncertainties that
/// llama.cpp's perplexity.cpp prints (ln ratio from the per-token covariance), and the
/// correlation of their per-token log-likelihoods.
public struct PerplexityComparison: Sendable {
    public let count: Int
    public let refPerplexity: Double, refPerplexityError: Double
    public let candPerplexity: Double, candPerplexityError: Double
    public let logRatio: Double, logRatioError: Double
    public let ratio: Double, ratioError: Double
    public let difference: Double, differenceError: Double
    public let correlation: Double

    /// `ref` and `cand` are the per-token log-likelihoods (log p of the true token), same tokens.
    public init(ref: [Double], cand: [Double]) {
        precondition(ref.count == cand.count && ref.count > 1)
        let n = Double(ref.count)
        count = ref.count
        var sr = 0.0, sc = 0.0, srr = 0.0, scc = 0.0, src = 0.0
        for i in 0..<ref.count {
            let a = -ref[i], b = -cand[i]  // negative log-likelihoods
            sr += a; sc += b; srr += a * a; scc += b * b; src += a * b
        }
        let mr = sr / n, mc = sc / n
        let varR = max(srr / n - mr * mr, 0), varC = max(scc / n - mc * mc, 0)
        let cov = src / n - mr * mc
        let uR = (varR / (n - 1)).squareRoot(), uC = (varC / (n - 1)).squareRoot()
        let covMean = cov / (n - 1)
        refPerplexity = exp(mr); refPerplexityError = refPerplexity * uR
        candPerplexity = exp(mc); candPerplexityError = candPerplexity * uC
        logRatio = mc - mr
        logRatioError = max(uR * uR + uC * uC - 2 * covMean, 0).squareRoot()
        ratio = exp(logRatio); ratioError = ratio * logRatioError
        difference = candPerplexity - refPerplexity
        differenceError = max(candPerplexity * candPerplexity * uC * uC + refPerplexity * refPerplexity * uR * uR
                              - 2 * covMean * candPerplexity * refPerplexity, 0).squareRoot()
        correlation = cov / (varR * varC).squareRoot()
    }
}
