import Eval
import Foundation
import TestSupport
import XCTest

/// Sources/Eval's per-token statistics and summaries against numpy (Tests/Reference/eval_metrics.py)
/// on logits with ordinary, shifted-by-10^4 and sharply peaked rows.
final class MetricsTests: XCTestCase {
    func testStatisticsMatchNumpy() throws {
        let n = 97, vocab = 512
        var rng = STRandom(seed: 15)
        func uniform() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53)) * 2 - 1 }
        var ref = [Float](), cand = [Float](), targets = [Int32]()
        for row in 0..<n {
            let scale: Float = row % 7 == 0 ? 40 : 4          // peaked rows: p near one-hot
            let shift: Float = row % 11 == 0 ? 10_000 : 0     // exp would overflow without the max shift
            let noise: Float = row % 5 == 0 ? 0 : 0.3         // some rows identical: KL exactly 0
            for _ in 0..<vocab {
                let r = uniform() * scale + shift
                ref.append(r)
                cand.append(r + uniform() * noise)
            }
            targets.append(Int32(rng.below(vocab)))
        }
        let dir = try STTemporaryDirectory("eval-metrics")
        func write<T>(_ a: [T], _ name: String) throws -> String {
            let path = dir.file(name)
            try a.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
            return path
        }
        let out = try PythonReference.run("eval_metrics.py", [try write(ref, "ref.f32"), try write(cand, "cand.f32"), try write(targets, "t.i32"), String(vocab)])
        let np = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        func d(_ k: String) -> Double { (np[k] as! NSNumber).doubleValue }
        func arr(_ k: String) -> [Double] { (np[k] as! [NSNumber]).map(\.doubleValue) }

        var kl = ScalarSample(), dp = ScalarSample(), top1 = Agreement()
        var refLP = [Double](), candLP = [Double]()
        for row in 0..<n {
            let s = ref.withUnsafeBufferPointer { r in
                cand.withUnsafeBufferPointer { c in
                    TokenScore.compare(ref: UnsafeBufferPointer(rebasing: r[row * vocab ..< (row + 1) * vocab]),
                                       cand: UnsafeBufferPointer(rebasing: c[row * vocab ..< (row + 1) * vocab]),
                                       target: Int(targets[row]))
                }
            }
            XCTAssertEqual(s.kl, arr("kl")[row], accuracy: 1e-9 + 1e-7 * arr("kl")[row], "row \(row)")
            XCTAssertEqual(s.refLogP, arr("ref_logp")[row], accuracy: 1e-9)
            XCTAssertEqual(s.candLogP, arr("cand_logp")[row], accuracy: 1e-9)
            XCTAssertEqual(s.sameTop1, (np["same_top1"] as! [Int])[row] == 1)
            kl.append(s.kl); top1.record(s.sameTop1)
            dp.append(exp(s.candLogP) - exp(s.refLogP))
            refLP.append(s.refLogP); candLP.append(s.candLogP)
        }
        let qs = [0.5, 0.9, 0.95, 0.99, 0.999]
        XCTAssertEqual(kl.mean, d("kl_mean"), accuracy: 1e-10)
        XCTAssertEqual(kl.meanError, d("kl_mean_error"), accuracy: 1e-10)
        XCTAssertEqual(kl.maximum, d("kl_max"), accuracy: 1e-10)
        for (a, b) in zip(kl.percentiles(qs), arr("kl_percentiles")) { XCTAssertEqual(a, b, accuracy: 1e-10) }
        XCTAssertEqual(top1.fraction, d("top1"), accuracy: 1e-12)
        XCTAssertEqual(top1.error, d("top1_error"), accuracy: 1e-12)
        XCTAssertEqual(dp.mean, d("dp_mean"), accuracy: 1e-10)
        XCTAssertEqual(dp.rms, d("dp_rms"), accuracy: 1e-10)
        for (a, b) in zip(dp.percentiles(qs), arr("dp_percentiles")) { XCTAssertEqual(a, b, accuracy: 1e-10) }
        let ppl = PerplexityComparison(ref: refLP, cand: candLP)
        XCTAssertEqual(ppl.refPerplexity, d("ref_ppl"), accuracy: 1e-8 * d("ref_ppl"))
        XCTAssertEqual(ppl.candPerplexity, d("cand_ppl"), accuracy: 1e-8 * d("cand_ppl"))
        XCTAssertEqual(ppl.ratio, d("ppl_ratio"), accuracy: 1e-10)
        XCTAssertEqual(ppl.ratioError, d("ppl_ratio_error"), accuracy: 1e-10)
        XCTAssertEqual(ppl.difference, d("ppl_difference"), accuracy: 1e-8 * d("ref_ppl"))
        XCTAssertEqual(ppl.correlation, d("correlation"), accuracy: 1e-10)
    }

    /// The vectorised log-sum-exp and KL (a 4-lane double exp) against the same sums in Float80
    /// with libm's expl / logl (64-bit significands, so the reference's own rounding is ~2000×
    /// below the tolerances): every length 1 ... 40 (the vector loop, its tail and rows shorter
    /// than one vector), rows spanning 0 to −800 below their maximum (terms under e^−708 flushed
    /// to zero, far below a sum's rounding) and a maximum that is not first.
    func testLogSumExpAndKLMatchLibm() {
        var rng = STRandom(seed: 7)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        for n in 1...40 {
            for spread in [1.0, 30.0, 800.0] {
                let r = (0..<n).map { _ in Float(uniform() * -spread + 3) }
                let c = r.map { $0 + Float(uniform() * 0.5 - 0.25) }
                func reference(_ x: [Float]) -> (Float80, Int) {
                    var m = x[0], arg = 0
                    for i in 1..<x.count where x[i] > m { m = x[i]; arg = i }
                    var s: Float80 = 0
                    for v in x { s += expl(Float80(v) - Float80(m)) }
                    return (Float80(m) + logl(s), arg)
                }
                let (lr, ar) = reference(r), (lc, ac) = reference(c)
                var kl: Float80 = 0
                for i in 0..<n { kl += expl(Float80(r[i]) - lr) * ((Float80(r[i]) - lr) - (Float80(c[i]) - lc)) }
                let got = r.withUnsafeBufferPointer { LogSoftmax.logSumExp($0) }
                XCTAssertEqual(got.0, Double(lr), accuracy: 1e-15 * max(1, abs(Double(lr))), "n \(n) spread \(spread)")
                XCTAssertEqual(got.1, ar)
                let s = r.withUnsafeBufferPointer { rp in c.withUnsafeBufferPointer { cp in TokenScore.compare(ref: rp, cand: cp, target: n - 1) } }
                // A few ulps of the operands (the subtraction rounds once more than Float80 does).
                let refLP = Double(Float80(r[n - 1]) - lr), candLP = Double(Float80(c[n - 1]) - lc)
                XCTAssertEqual(s.refLogP, refLP, accuracy: 1e-15 * (1 + abs(Double(lr)) + abs(refLP)))
                XCTAssertEqual(s.candLogP, candLP, accuracy: 1e-15 * (1 + abs(Double(lc)) + abs(candLP)))
                XCTAssertEqual(s.kl, max(Double(kl), 0), accuracy: 1e-15 + 1e-12 * Double(kl), "n \(n) spread \(spread)")
                XCTAssertEqual(s.sameTop1, ar == ac)
            }
        }
    }
}
