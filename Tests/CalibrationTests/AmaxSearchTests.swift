import Foundation
import XCTest
import Calibration
import Numerics
import TestSupport

/// Every search against Tests/Reference/calib_reference.py (numpy + ml_dtypes, written from the
/// reference algorithms and Formats/calibration.md) on Gaussian, heavy-tailed, outlier and sparse
/// histograms of 128–528 bins and on 2048-bin histograms (one per seed grown past 2048 bins).
final class AmaxSearchTests: XCTestCase {
    func testSearchesMatchReference() throws {
        var checked = 0
        for seed in [1, 2] {
            let out = try PythonReference.run("calib_reference.py", [String(seed)])
            for line in out.split(separator: "\n") {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                let counts = (obj["counts"] as! [NSNumber]).map { $0.doubleValue }
                let width = try XCTUnwrap(Double(obj["width"] as! String))  // hex: exact
                let h = AbsHistogram(binWidth: width, counts: counts, maxSeen: width * Double(counts.count))
                let what = "seed \(seed), \(counts.count) bins"
                if let ref = obj["kl_bin"] as? NSNumber {
                    let kl = try XCTUnwrap(AmaxSearch.entropy(h))
                    XCTAssertEqual(kl.bin, ref.intValue, "INT8 KL, \(what)")
                    XCTAssertEqual(kl.amax, Double(kl.bin) * width, accuracy: 1e-12)
                }
                let fp8 = try XCTUnwrap(AmaxSearch.entropy(h, target: .fp8))
                XCTAssertEqual(fp8.bin, (obj["kl_fp8_bin"] as! NSNumber).intValue, "FP8 KL, \(what)")
                XCTAssertEqual(try XCTUnwrap(AmaxSearch.percentile(h, 99.9)).bin, (obj["pct_bin"] as! NSNumber).intValue, what)
                XCTAssertEqual(try XCTUnwrap(AmaxSearch.percentile(h, 99.99)).bin, (obj["pct9999_bin"] as! NSNumber).intValue, what)
                for t in CalibrationTarget.allCases {
                    let m = AmaxSearch.mse(h, target: t)
                    if let refBin = obj["mse_\(t.rawValue)_bin"] as? NSNumber {
                        let m = try XCTUnwrap(m, "MSE \(t), \(what)")
                        XCTAssertEqual(m.bin, refBin.intValue, "MSE \(t), \(what)")
                        XCTAssertEqual(m.amax, Double(obj["mse_\(t.rawValue)_amax"] as! String), "MSE \(t) amax, \(what)")
                    } else {
                        XCTAssertNil(m, "MSE \(t) needs a bin above 128, \(what)")
                    }
                }
                checked += 1
            }
        }
        XCTAssertEqual(checked, 28)
    }

    /// The fast KL search (prefix sums, then an exact recomputation of the near-minimal
    /// candidates) chooses the reference loop's bin on 240 histograms built to be hard for it:
    /// integer and fractional counts, sparse ones (mostly empty bins, where many candidates share
    /// P and Q), flat ones, periodic ones (candidates whose KL ties exactly in the loop, which a last-bit
    /// difference would reorder: choosing by the fast values alone fails here), heavy tails with an
    /// empty top, and one-bin spikes; INT8 and the E4M3 grid.
    func testFastEntropyChoosesTheExhaustiveLoopsBin() throws {
        var rng = STRandom(seed: 42)
        for k in 0..<240 {
            let n = 128 + rng.below(400)
            var c = [Double](repeating: 0, count: n)
            switch k % 6 {
            case 0: for j in 0..<n { c[j] = (1e5 * exp(-Double(j * j) / Double(2 * (n / 5) * (n / 5)))).rounded() }
            case 1: for _ in 0..<(1 + rng.below(12)) { c[rng.below(n)] += Double(1 + rng.below(50)) }
            case 2: for j in 0..<n { c[j] = 7 }
            case 3: for j in 0..<n { c[j] = Double([5, 0, 3, 0][j % 4]) }
            case 4: for j in 0..<(n * 2 / 3) { c[j] = (1e4 / (1 + Double(j))).rounded(.up) }
            default: for j in 0..<n { c[j] = Double.random(in: 0...3, using: &rng) * (rng.chance(0.3) ? 0 : 1) }
            }
            if k % 5 == 0 { c[n - 1] += 1 }  // an outlier at the top
            let h = AbsHistogram(binWidth: 0.01, counts: c, maxSeen: 0.01 * Double(n))
            for t in CalibrationTarget.allCases {
                let fast = AmaxSearch.entropy(h, target: t), loop = AmaxSearch.entropyExhaustive(h, target: t)
                XCTAssertEqual(fast?.bin, loop?.bin, "histogram \(k) (\(n) bins, kind \(k % 6)), \(t)")
                XCTAssertEqual(fast?.amax, loop?.amax)
            }
        }
    }

    /// The fake quantizers on hand-computed values.
    func testFakeQuantizers() {
        // INT8, amax 127: scale 1, round half to even, narrow range ±127.
        let i8 = FakeQuantizer(.int8, amax: 127)
        XCTAssertEqual(i8(2.5), 2)
        XCTAssertEqual(i8(3.5), 4)
        XCTAssertEqual(i8(-200), -127)
        XCTAssertEqual(FakeQuantizer(.int8, amax: 0)(5), 0)
        // E4M3, amax 448: scale 1; 17 lies between the E4M3 values 16 and 18 (tie → 16, even
        // mantissa), 500 saturates at 448, 0.0009765625 = 2^-10 ties to 0 (subnormal step 2^-9).
        let e = FakeQuantizer(.fp8, amax: 448)
        XCTAssertEqual(e(17), 16)
        XCTAssertEqual(e(19), 20)
        XCTAssertEqual(e(500), 448)
        XCTAssertEqual(e(0x1p-10), 0)
        XCTAssertEqual(e(0x1p-9), 0x1p-9)
        // amax 896: scale 0.5, values twice as coarse.
        XCTAssertEqual(FakeQuantizer(.fp8, amax: 896)(34), 32)
    }

    /// The E4M3 level map on hand-computed points: with i = 448 kept bins, bin j's scaled centre
    /// is j + 0.5, so bins 0 … 15 map to the E4M3 codes of 0.5 … 15.5 and the top bins merge into
    /// the 32-wide steps of the last binade.
    func testFP8LevelMap() {
        XCTAssertEqual(AmaxSearch.fp8Level(bin: 0, of: 448), FloatBits.f32ToE4M3(0.5))
        XCTAssertEqual(AmaxSearch.fp8Level(bin: 447, of: 448), 0x7E)        // 447.5 → 448
        XCTAssertEqual(AmaxSearch.fp8Level(bin: 431, of: 448), 0x7D)        // 431.5 → 416 (above 432 ties)
        XCTAssertEqual(AmaxSearch.fp8Level(bin: 432, of: 448), 0x7E)        // 432.5 → 448
        XCTAssertEqual(FloatBits.e4m3ToF32(0x7D), 416)
    }

    /// Growth: a later batch with a larger max keeps the width and appends bins (hand-computed).
    func testGrowthKeepsWidthAndCounts() {
        var h = AbsHistogram(initialBins: 4)
        h.add(batch: [0.5, -1.0, 2.0, 4.0])   // width 1: bins [0,1,1,1]+... 4.0 into last bin
        XCTAssertEqual(h.binWidth, 1)
        XCTAssertEqual(h.counts, [1, 1, 1, 1])
        h.add(batch: [-6.5, 0.2])             // ceil(6.5 / 1) = 7 bins, width kept
        XCTAssertEqual(h.counts, [2, 1, 1, 1, 0, 0, 1])
        XCTAssertEqual(h.maxSeen, 6.5)
        XCTAssertEqual(AmaxSearch.minmax(h), 6.5)
    }

    /// absMax: the largest |x| (hand-checked), nil for a NaN or an infinity anywhere.
    func testAbsMaxAndNonFinite() {
        func m(_ v: [Float]) -> Float? { v.withUnsafeBufferPointer { AbsHistogram.absMax($0) } }
        XCTAssertEqual(m([1, -3, 2.5]), 3)
        XCTAssertEqual(m([-0.0, 0]), 0)
        XCTAssertEqual(m([]), 0)
        XCTAssertEqual(m([Float.greatestFiniteMagnitude, -1]), Float.greatestFiniteMagnitude)
        XCTAssertEqual(m([1e-45, 0]), 1e-45)
        XCTAssertNil(m([1, .nan, 2]))
        XCTAssertNil(m([1, 2, -.nan]))
        XCTAssertNil(m([-.infinity]))
        XCTAssertNil(m(Array(repeating: 0.5, count: 1000) + [.infinity]))
    }
}
