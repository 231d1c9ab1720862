import Foundation

/// SmoothQuant's per-channel factors (Xiao et al. 2022; Formats/calibration.md, "SmoothQuant"),
/// as mit-han-lab/smoothquant's `smooth_ln_fcs` defines them:
///
///     w_j = max(max over every reader W and row r of |W[r, j]|, 1e-5)
///     s_j = max(a_j^α / w_j^(1−α), 1e-5)          a_j = max over calibration tokens of |X_j|
///
/// computed in f64 and rounded to f32 (the reference computes in the weight dtype). The norm's
/// output X is then X / s (the norm weight divided by s) and every reader's column j is
/// multiplied by s_j, which leaves every product unchanged. (llm-compressor's SmoothQuantModifier
/// uses max − min of X_j and 2 · max|W_j| instead, with the same 1e-5 floor on s.)
public enum Smoothing {
    public static let floor = 1e-5

    /// s for one norm's output: `actMax` a_j, `weightMax` the column maxima over all readers.
    public static func scales(actMax: [Float], weightMax: [Float], alpha: Double) -> [Float] {
        precondition(actMax.count == weightMax.count)
        return zip(actMax, weightMax).map { a, w in
            let s = pow(Double(a), alpha) / pow(max(Double(w), floor), 1 - alpha)
            return Float(max(s, floor))
        }
    }
}

/// One smoothed norm output in ranges.json (Formats/calibration.md, "smoothing"): the readers
/// folded into, the maxima s was computed from, and s.
public struct SmoothingEntry: Sendable, Equatable {
    /// The norm module whose weight is divided by s.
    public var norm: String
    /// Every module reading the norm's output (column j × s_j), the MoE router included.
    public var consumers: [String]
    /// a_j: max |X_j| over the calibration tokens (unsmoothed).
    public var actMax: [Float]
    /// max |W_j| over every consumer's column j (before the 1e-5 floor).
    public var weightMax: [Float]
    public var scales: [Float]

    public init(norm: String, consumers: [String], actMax: [Float], weightMax: [Float], scales: [Float]) {
        self.norm = norm
        self.consumers = consumers
        self.actMax = actMax
        self.weightMax = weightMax
        self.scales = scales
    }
}
