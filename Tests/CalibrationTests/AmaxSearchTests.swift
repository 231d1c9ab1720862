import Foundation
import XCTest
import Calibration
import TestSupport

/// The chosen KL / percentile bins against Tests/Reference/calib_reference.py (numpy, written
/// from the reference algorithm), on Gaussian, heavy-tailed, outlier and sparse histograms.
final class AmaxSearchTests: XCTestCase {
    func testEntropyAndPercentileMatchReference() throws {
        for seed in [1, 2] {
            let out = try PythonReference.run("calib_reference.py", [String(seed)])
            for line in out.split(separator: "\n") {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                let counts = (obj["counts"] as! [NSNumber]).map { $0.doubleValue }
                let width = (obj["width"] as! NSNumber).doubleValue
                let h = AbsHistogram(binWidth: width, counts: counts, maxSeen: width * Double(counts.count))
                let kl = try XCTUnwrap(AmaxSearch.entropy(h))
                XCTAssertEqual(kl.bin, (obj["kl_bin"] as! NSNumber).intValue, "seed \(seed), \(counts.count) bins")
                XCTAssertEqual(kl.amax, Double(kl.bin) * width, accuracy: 1e-12)
                let p = try XCTUnwrap(AmaxSearch.percentile(h, 99.9))
                XCTAssertEqual(p.bin, (obj["pct_bin"] as! NSNumber).intValue)
            }
        }
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
}
