import Foundation
import Numerics

/// The KL (entropy) search over one histogram (Formats/calibration.md, "KL (entropy) threshold"
/// and "FP8-aware KL"), in two steps that give the reference loop's chosen bin:
///
/// 1. Every candidate i's KL from prefix sums: P's bins below i − 1 contribute
///    Σ p_j log p_j (a prefix sum of b log b) and each of Q's 128 levels Σ p_j · log q_k (its
///    bins' sum times one log), so a candidate costs 128 logs instead of i. The levels' bin
///    ranges come from integer arithmetic (INT8: level k starts at ceil(k·i / 128)) or, for the
///    E4M3 grid, from each code's least f32 value (`fp8Level` itself decides near a boundary).
/// 2. These values differ from the reference loop's in the last bits (another summation order),
///    so near-ties could be ordered differently. Each value comes with a bound on that
///    difference (16 ulps per term summed, times the magnitudes summed: the worst case of
///    recursive summation with room to spare); every candidate that could reach the minimum
///    within the bounds is computed again exactly as the reference loop computes it, and the
///    largest i reaching their minimum wins. Every candidate reaching the loop's minimum is among
///    them, so the choice is the loop's.
struct KLSearch {
    static let levels = 128
    let target: CalibrationTarget
    let n: Int
    /// The counts with bins[0] = bins[1] (the reference's first step).
    let bins: [Double]
    /// suffix[i] = Σ bins[i...], summed from the top as the reference loop does.
    let suffix: [Double]
    // Scratch of `exactKL`.
    private var levelSum = [Double](repeating: 0, count: KLSearch.levels)
    private var levelNonZero = [Int](repeating: 0, count: KLSearch.levels)
    private var level: [Int]

    /// thresholds[c]: the least non-negative f32 whose E4M3 code is ≥ c (c in 1 ... 127), as f64.
    static let thresholds: [Double] = (0..<levels).map { c in
        guard c > 0 else { return 0 }
        var lo: UInt32 = 0, hi: UInt32 = 0x43E8_0001  // code(hi) = 0x7F (above 464) ≥ every c
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if Int(FloatBits.f32ToE4M3(Float(bitPattern: mid))) >= c { hi = mid } else { lo = mid + 1 }
        }
        return Double(Float(bitPattern: lo))
    }

    init(_ counts: [Double], target: CalibrationTarget) {
        var b = counts
        b[0] = b[1]
        bins = b
        n = b.count
        self.target = target
        var s = [Double](repeating: 0, count: n + 1)
        for j in stride(from: n - 1, through: 0, by: -1) { s[j] = s[j + 1] + b[j] }
        suffix = s
        level = [Int](repeating: 0, count: n)
    }

    /// Candidate i's KL exactly as the reference loop computes it (the same operations in the
    /// same order); nil when the candidate is skipped (nothing in P or in Q).
    mutating func exactKL(_ i: Int) -> Double? {
        let levels = Self.levels
        for k in 0..<levels { levelSum[k] = 0; levelNonZero[k] = 0 }
        switch target {
        case .int8:
            // numpy digitize(range(i), linspace(0, i, 129)) − 1 is floor(j · 128 / i) exactly
            // (the edges k · i / 128 are exact binary fractions).
            for j in 0..<i { level[j] = (j * levels) / i }
        case .fp8:
            level.withUnsafeMutableBufferPointer { lv in
                for j in 0..<i { lv[j] = Int(AmaxSearch.fp8Level(bin: j, of: i)) }
            }
        }
        for j in 0..<i where bins[j] != 0 {
            levelSum[level[j]] += bins[j]
            levelNonZero[level[j]] += 1
        }
        var qTotal = 0.0
        for k in 0..<levels where levelNonZero[k] > 0 { qTotal += levelSum[k] }
        let pTotal = suffix[0]
        guard pTotal > 0, qTotal > 0 else { return nil }
        var kl = 0.0
        for j in 0..<i {
            var p = bins[j]
            if j == i - 1 { p += suffix[i] }
            guard p > 0 else { continue }
            let pn = p / pTotal
            let q = bins[j] == 0 ? 0 : levelSum[level[j]] / Double(levelNonZero[level[j]])
            if q == 0 { kl = .infinity; break }
            kl += pn * log(pn / (q / qTotal))
        }
        return kl
    }

    /// The reference loop's chosen bin (the largest i in startBin...n reaching the minimum KL),
    /// nil when every candidate is skipped.
    mutating func chosenBin(startBin: Int) -> Int? {
        let levels = Self.levels
        let pTotal = suffix[0]
        guard pTotal > 0, startBin <= n else { return nil }
        // Prefix sums over bins[..<j]: counts, non-zero bins, b log b and |b log b|.
        var prefix = [Double](repeating: 0, count: n + 1)
        var nonZero = [Int](repeating: 0, count: n + 1)
        var pLogP = [Double](repeating: 0, count: n + 1)
        var absPLogP = [Double](repeating: 0, count: n + 1)
        for j in 0..<n {
            let b = bins[j]
            let t = b > 0 ? b * log(b) : 0
            prefix[j + 1] = prefix[j] + b
            nonZero[j + 1] = nonZero[j] + (b != 0 ? 1 : 0)
            pLogP[j + 1] = pLogP[j] + t
            absPLogP[j + 1] = absPLogP[j] + abs(t)
        }
        var logCount = [Double](repeating: 0, count: n + 1)
        for k in 1...n { logCount[k] = log(Double(k)) }
        let logP = log(pTotal)
        var fast = [Double](repeating: .nan, count: n + 1)
        var bound = [Double](repeating: 0, count: n + 1)
        // Level k holds the bins starts[k] ..< starts[k + 1] (starts[levels] = i).
        var starts = [Int](repeating: 0, count: levels + 1)
        // Both sums (this one, the loop's) add at most n + 256 rounded terms, each within a few
        // ulps, whose magnitudes sum to at most `magnitude`; fractional counts add up to
        // 128 · n ulps through the level sums taken as prefix differences (the `+ 16`).
        let tolerance = 16 * Double.ulpOfOne * Double(n + 256)
        var best = Double.infinity, bestBound = 0.0
        var lastKept = -1
        for i in startBin...n {
            switch target {
            case .int8:
                for k in 0...levels { starts[k] = (k * i + levels - 1) / levels }
            case .fp8:
                // The first bin of code c is the smallest j whose scaled centre
                // f32((2j + 1) · 224) / f32(i) reaches T[c], the least f32 with code ≥ c: in real
                // arithmetic 2j + 1 ≥ T[c] · i / 224. The f32 division moves the boundary only
                // where the two sides are within 2^-23 of each other, so there (margin 1e-6) the
                // code itself decides.
                let f = Double(i) / 224
                for c in 1..<levels {
                    let y = Self.thresholds[c] * f
                    var j = min(i, max(0, Int(((y - 1) * 0.5).rounded(.up))))
                    let margin = 1e-6 * y
                    if Double(2 * j + 1) - y <= margin || y - Double(2 * j - 1) <= margin {
                        while j > 0 && Int(AmaxSearch.fp8Level(bin: j - 1, of: i)) >= c { j -= 1 }
                        while j < i && Int(AmaxSearch.fp8Level(bin: j, of: i)) < c { j += 1 }
                    }
                    starts[c] = j
                }
                starts[levels] = i
            }
            guard nonZero[i] > 0 else { continue }  // Q empty: skipped, as the loop skips it
            lastKept = i
            let qTotal = prefix[i], logQ = log(qTotal)
            let below = i - 1  // P's bins 0 ..< i − 1 (the last one takes the outliers too)
            var qTerm = 0.0, qMagnitude = 0.0
            var lastLevel = (sum: 0.0, count: 0)
            for k in 0..<levels {
                let a = starts[k], b = starts[k + 1]
                guard a < b else { continue }
                let nz = nonZero[b] - nonZero[a]
                guard nz > 0 else { continue }
                let sum = prefix[b] - prefix[a]
                if b == i { lastLevel = (sum, nz) }
                let pb = min(b, below)
                guard pb > a else { continue }
                let pSum = prefix[pb] - prefix[a]
                let lq = log(sum) - logCount[nz]
                qTerm += pSum * lq
                qMagnitude += pSum * abs(lq)
            }
            let pBelow = prefix[below]
            var kl = (pLogP[below] - logP * pBelow - qTerm + logQ * pBelow) / pTotal
            var magnitude = (absPLogP[below] + abs(logP) * pBelow + qMagnitude + abs(logQ) * pBelow) / pTotal
            let p = bins[below] + suffix[i]
            if p > 0 {
                if bins[below] == 0 {
                    kl = .infinity
                } else {
                    let pn = p / pTotal
                    let q = lastLevel.sum / Double(lastLevel.count) / qTotal
                    let t = pn * log(pn / q)
                    kl += t
                    magnitude += abs(t)
                }
            }
            fast[i] = kl
            bound[i] = tolerance * (magnitude + 16)
            if kl < best { best = kl; bestBound = bound[i] }
        }
        guard lastKept >= 0 else { return nil }
        // Every candidate is infinite (the loop's and these alike): the loop keeps the last.
        guard best.isFinite else { return lastKept }
        var exactBest = Double.infinity
        var chosen = -1
        for i in startBin...n where fast[i].isFinite && fast[i] - bound[i] <= best + bestBound {
            guard let kl = exactKL(i) else { continue }
            if kl <= exactBest { exactBest = kl; chosen = i }
        }
        return chosen >= 0 ? chosen : nil
    }
}
