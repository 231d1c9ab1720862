import Foundation

/// Picking the clipping threshold (amax) from an |x| histogram, each method exactly as NVIDIA's
/// histogram calibrator computes it (Formats/calibration.md gives every step).
public enum AmaxSearch {
    /// `_compute_amax_entropy` (num_bits 8 → 128 levels, start bin 128, stride 1). Returns the
    /// chosen bin i (the largest i reaching the minimum KL) and amax = edges[i].
    public static func entropy(_ h: AbsHistogram, levels: Int = 128, startBin: Int = 128) -> (bin: Int, amax: Double)? {
        var bins = h.counts
        guard bins.count >= 2, bins.count >= startBin else { return nil }
        bins[0] = bins[1]
        let n = bins.count
        // suffix[i] = Σ bins[i...]
        var suffix = [Double](repeating: 0, count: n + 1)
        for j in stride(from: n - 1, through: 0, by: -1) { suffix[j] = suffix[j + 1] + bins[j] }
        var best = Double.infinity
        var bestBin = -1
        var levelSum = [Double](repeating: 0, count: levels)
        var levelNonZero = [Int](repeating: 0, count: levels)
        for i in startBin...n {
            for k in 0..<levels { levelSum[k] = 0; levelNonZero[k] = 0 }
            // Level of kept bin j: numpy digitize(range(i), linspace(0, i, levels + 1)) − 1, which is
            // floor(j · levels / i) exactly (the edges k · i / levels are exact binary fractions).
            for j in 0..<i where bins[j] != 0 {
                let k = (j * levels) / i
                levelSum[k] += bins[j]
                levelNonZero[k] += 1
            }
            var qTotal = 0.0
            for k in 0..<levels where levelNonZero[k] > 0 { qTotal += levelSum[k] }
            let pTotal = suffix[0]
            guard pTotal > 0, qTotal > 0 else { continue }
            var kl = 0.0
            for j in 0..<i {
                var p = bins[j]
                if j == i - 1 { p += suffix[i] }
                guard p > 0 else { continue }
                let pn = p / pTotal
                let q = bins[j] == 0 ? 0 : levelSum[(j * levels) / i] / Double(levelNonZero[(j * levels) / i])
                if q == 0 { kl = .infinity; break }
                kl += pn * log(pn / (q / qTotal))
            }
            if kl <= best { best = kl; bestBin = i }
        }
        guard bestBin >= 0 else { return nil }
        return (bestBin, h.edge(bestBin))
    }

    /// Percentile p (e.g. 99.99): cdf = cumsum / total, idx = searchsorted(cdf, p / 100) (left),
    /// amax = edges[idx].
    public static func percentile(_ h: AbsHistogram, _ p: Double) -> (bin: Int, amax: Double)? {
        let total = h.counts.reduce(0, +)
        guard total > 0 else { return nil }
        let target = p / 100
        var cum = 0.0
        for (i, c) in h.counts.enumerated() {
            cum += c
            if cum / total >= target { return (i, h.edge(i)) }
        }
        return (h.counts.count, h.edge(h.counts.count))
    }

    /// Min-max: the largest |x| seen.
    public static func minmax(_ h: AbsHistogram) -> Double { h.maxSeen }
}
