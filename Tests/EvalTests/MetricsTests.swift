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
}
