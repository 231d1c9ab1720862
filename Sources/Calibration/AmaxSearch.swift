import Foundation
import Numerics

/// Picking the clipping threshold (amax) from an |x| histogram, each method exactly as NVIDIA's
/// histogram calibrator computes it, plus the FP8-aware KL (Formats/calibration.md gives every step).
public enum AmaxSearch {
    /// The KL (entropy) search. For `.int8` this is `_compute_amax_entropy` (num_bits 8 → 128
    /// levels, start bin 128, stride 1); for `.fp8` the candidate distribution Q is built on the
    /// E4M3 grid instead (Formats/calibration.md, "FP8-aware KL"). Returns the chosen bin i (the
    /// largest i reaching the minimum KL) and amax = edges[i]; nil for fewer than `startBin` bins.
    ///
    /// The same bin as `entropyExhaustive` (the reference's loop, O(bins²) with a log per bin),
    /// found in O(128 · bins): `KLSearch` gives every candidate's KL from prefix sums with 128
    /// logs, then the candidates within a rounding bound of the smallest are computed again
    /// exactly as the reference loop does, and the largest i reaching their minimum is chosen.
    public static func entropy(_ h: AbsHistogram, target: CalibrationTarget = .int8, startBin: Int = 128) -> (bin: Int, amax: Double)? {
        guard h.counts.count >= 2, h.counts.count >= startBin else { return nil }
        var search = KLSearch(h.counts, target: target)
        guard let bin = search.chosenBin(startBin: startBin) else { return nil }
        return (bin, h.edge(bin))
    }

    /// The reference's loop itself: every candidate i's P and Q built bin by bin and its KL summed
    /// bin by bin. The chosen bin of `entropy` is this one's (tests and the benchmark compare them).
    public static func entropyExhaustive(_ h: AbsHistogram, target: CalibrationTarget = .int8, startBin: Int = 128) -> (bin: Int, amax: Double)? {
        guard h.counts.count >= 2, h.counts.count >= startBin else { return nil }
        var search = KLSearch(h.counts, target: target)
        var best = Double.infinity
        var bestBin = -1
        for i in startBin...search.n {
            guard let kl = search.exactKL(i) else { continue }
            if kl <= best { best = kl; bestBin = i }
        }
        guard bestBin >= 0 else { return nil }
        return (bestBin, h.edge(bestBin))
    }

    /// The E4M3 level of bin j when bins 0 ..< i are kept (amax = i × width, scale = amax / 448):
    /// the E4M3 code of the bin's centre in scaled units, (2j + 1) · 224 / i, divided in f32
    /// (the numerator is an exact integer) and rounded to E4M3 to nearest-even.
    @inlinable public static func fp8Level(bin j: Int, of i: Int) -> UInt8 {
        FloatBits.f32ToE4M3(Float((2 * j + 1) * 224) / Float(i))
    }

    /// The histogram MSE search of ModelOpt (`_compute_amax_mse`, start bin 128, stride 1): edges
    /// and bin centres in f32 (centre = (e_k + e_{k+1}) / 2), each centre i in 128 ..< bins is a
    /// candidate amax; its error is mean((fakequant(centres, amax) − centres)² · counts), the
    /// products in f32 as torch computes them, their sum in f64; the first minimum wins. The fake
    /// quantizer is INT8 or E4M3 (`FakeQuantizer`). Returns the chosen bin and amax = centre[i].
    public static func mse(_ h: AbsHistogram, target: CalibrationTarget, startBin: Int = 128) -> (bin: Int, amax: Double)? {
        let n = h.counts.count
        guard n > startBin else { return nil }
        var edges = [Float](repeating: 0, count: n + 1)
        for k in 0...n { edges[k] = Float(h.edge(k)) }
        var centres = [Float](repeating: 0, count: n)
        for k in 0..<n { centres[k] = (edges[k] + edges[k + 1]) / 2 }
        let counts = h.counts.map { Float($0) }
        var best = Double.infinity
        var bestBin = -1
        centres.withUnsafeBufferPointer { c in
            counts.withUnsafeBufferPointer { w in
                for i in startBin..<n {
                    let fq = FakeQuantizer(target, amax: c[i])
                    var err = 0.0
                    for k in 0..<n where w[k] != 0 {
                        let d = fq(c[k]) - c[k]
                        err += Double(d * d * w[k])
                    }
                    err /= Double(n)
                    if err < best { best = err; bestBin = i }
                }
            }
        }
        guard bestBin >= 0 else { return nil }
        return (bestBin, Double(centres[bestBin]))
    }

    /// Percentile p (e.g. 99.99): cdf = cumsum(counts / total) (`_compute_amax_percentile`), idx = searchsorted(cdf, p / 100) (left),
    /// amax = edges[idx].
    public static func percentile(_ h: AbsHistogram, _ p: Double) -> (bin: Int, amax: Double)? {
        let total = h.counts.reduce(0, +)
        guard total > 0 else { return nil }
        let target = p / 100
        var cum = 0.0
        for (i, c) in h.counts.enumerated() {
            cum += c / total  // np.cumsum(hist / total): normalised first, as the reference
            if cum >= target { return (i, h.edge(i)) }
        }
        return (h.counts.count, h.edge(h.counts.count))
    }

    /// Min-max: the largest |x| seen.
    public static func minmax(_ h: AbsHistogram) -> Double { h.maxSeen }
}
