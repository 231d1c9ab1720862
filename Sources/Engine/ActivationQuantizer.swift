import Numerics

/// Static per-tensor activation quantization, as a serving engine runs a W8A8 checkpoint whose
/// linear layers carry `X.input_scale` (compressed-tensors, `input_activations.dynamic: false`):
/// every input row is divided by the scale in f32, saturated and rounded to the activation type —
/// FP8 E4M3 (clamped to ±448, round to nearest even) or INT8 (round half to even, clamped to
/// −128…127) — and multiplied back. The product with the exactly dequantized weight is then the
/// value of the integer / FP8 product the kernel would dequantize (computed in f32 here).
public struct ActivationQuantizer: Sendable {
    public enum Format: String, Sendable { case fp8, int8 }
    public let scale: Float
    public let format: Format

    public init(scale: Float, format: Format) {
        self.scale = scale
        self.format = format
    }

    /// `rows` rows of `cols` values of `x` (row stride `ldx`) quantized and dequantized into `out`
    /// (row stride `cols`).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ldx: Int, into out: UnsafeMutablePointer<Float>) {
        let s = scale
        switch format {
        case .int8:
            for r in 0..<rows {
                let src = x + r * ldx, dst = out + r * cols
                for c in 0..<cols {
                    let q = (src[c] / s).rounded(.toNearestOrEven)
                    dst[c] = min(127, max(-128, q)) * s
                }
            }
        case .fp8:
            var codes = [UInt8](repeating: 0, count: cols)
            for r in 0..<rows {
                let src = x + r * ldx, dst = out + r * cols
                for c in 0..<cols { dst[c] = src[c] / s }
                codes.withUnsafeMutableBytes { q in
                    FloatFormat.convert(UnsafeRawPointer(dst), from: .f32, to: q.baseAddress!, .e4m3, count: cols, saturate: true)
                    FloatFormat.convert(UnsafeRawPointer(q.baseAddress!), from: .e4m3, to: UnsafeMutableRawPointer(dst), .f32, count: cols)
                }
                for c in 0..<cols { dst[c] *= s }
            }
        }
    }
}
