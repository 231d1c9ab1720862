import Numerics

/// SmoothQuant's fold of one tensor (Formats/calibration.md, "SmoothQuant"): the norm's weight
/// becomes w_j / s_j, every reader's column j becomes W[:, j] · s_j; each in f32 from the stored
/// values, rounded to the tensor's dtype (what folding in place on the model's weights gives, as
/// llm-compressor does), and a reader to quantize is then quantized as any weight of that dtype.
public struct SmoothingFold: Sendable {
    public enum Kind: String, Sendable {
        /// A norm weight [n]: element j ÷ s_j.
        case divide
        /// A reader's weight [rows, n]: column j × s_j.
        case scaleColumns
    }

    public var kind: Kind
    /// The norm whose output is smoothed (for messages and the digest).
    public var norm: String
    public var scales: [Float]

    public init(kind: Kind, norm: String, scales: [Float]) {
        self.kind = kind
        self.norm = norm
        self.scales = scales
    }

    /// `rows` × `scales.count` values of `format` at `src`, folded, into `out` as f32.
    public func apply(_ src: UnsafeRawPointer, _ format: FloatFormat, rows: Int, into out: UnsafeMutablePointer<Float>) {
        let n = scales.count
        FloatFormat.convert(src, from: format, to: UnsafeMutableRawPointer(out), .f32, count: rows * n)
        scales.withUnsafeBufferPointer { s in
            switch kind {
            case .divide:
                for r in 0..<rows { for j in 0..<n { out[r * n + j] /= s[j] } }
            case .scaleColumns:
                Parallel.forEachChunk(count: rows, minChunk: max(1, (1 << 16) / max(1, n))) { rr in
                    for r in rr { for j in 0..<n { out[r * n + j] *= s[j] } }
                }
            }
        }
    }
}

/// The smoothing a ranges.json carries (`calibrate --smooth`), by norm: s and the modules the
/// file says read the norm's output (checked against the checkpoint's own readers).
public struct SmoothingFactors: Sendable {
    public var alpha: Double
    public var entries: [(norm: String, consumers: [String], scales: [Float])]

    public init(alpha: Double, entries: [(norm: String, consumers: [String], scales: [Float])]) {
        self.alpha = alpha
        self.entries = entries
    }
}
