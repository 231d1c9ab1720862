import Eval
import Foundation
import XCTest

/// The gate's three bounds on a report with hand-set per-token values.
final class EvalGateTests: XCTestCase {
    /// 4 tokens: ref log p −1 each, cand −1.1 each → ppl ratio e^0.1 = 1.105171 (+10.517 %);
    /// KL 0.01, 0.03, 0.02, 0.02 → mean 0.02; top-1 agrees on 3 of 4 → 75 %.
    func report() -> EvalReport {
        var p = PerplexityResult(windows: 1, context: 4, scheme: .dsconvert)
        p.candidateLogP = [-1.1, -1.1, -1.1, -1.1]
        p.referenceLogP = [-1, -1, -1, -1]
        for k in [0.01, 0.03, 0.02, 0.02] { p.kl.append(k) }
        for s in [true, true, false, true] { p.top1.record(s) }
        var r = EvalReport(candidatePath: "c", referencePath: "r", options: Evaluation.Options())
        r.perplexity = p
        r.tokenizersCompared = true
        return r
    }

    func testBounds() {
        let r = report()
        XCTAssertEqual(r.perplexityRatio!, exp(0.1), accuracy: 1e-12)
        XCTAssertEqual(EvalGate(maxPerplexityIncreasePercent: 11, maxKLMean: 0.021, minTop1Percent: 75).failures(r), [])
        let f = EvalGate(maxPerplexityIncreasePercent: 10, maxKLMean: 0.019, minTop1Percent: 75.1).failures(r)
        XCTAssertEqual(f.map(\.bound), [.perplexityIncrease, .klMean, .top1])
        XCTAssertEqual(f[0].value!, 100 * (exp(0.1) - 1), accuracy: 1e-9)
        XCTAssertEqual(f[1].value!, 0.02, accuracy: 1e-15)
        XCTAssertEqual(f[2].value!, 75, accuracy: 1e-12)
        XCTAssertEqual(f[2].limit, 75.1)
    }

    /// Without a token-by-token comparison (tokenizers differ) KL and top-1 are not measured:
    /// their bounds fail with no value; the perplexity bound still holds on each model's own run.
    func testUnmeasuredBoundsFail() {
        var r = report()
        r.tokenizersCompared = false
        var own = PerplexityResult(windows: 1, context: 4, scheme: .dsconvert)
        own.candidateLogP = [-1, -1, -1, -1]
        r.perplexity!.referenceLogP = nil
        r.referencePerplexity = own
        let f = EvalGate(maxPerplexityIncreasePercent: 11, maxKLMean: 1, minTop1Percent: 0).failures(r)
        XCTAssertEqual(f.map(\.bound), [.klMean, .top1])
        XCTAssertNil(f[0].value)
    }
}
