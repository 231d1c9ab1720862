import Numerics

/// The per-tensor fake quantizers ModelOpt's histogram MSE search applies to bin centres, on a
/// CPU tensor, in f32 as torch computes them (Formats/calibration.md, "MSE"):
/// - INT8 is `_tensor_quant(x, amax, 8, unsigned=False, narrow_range=True)`:
///   scale = f32(127 / amax), q = clamp(round-half-even(f32(x × scale)), −127, 127), out = f32(q / scale);
///   an amax ≤ 2⁻²⁴ quantizes everything to 0.
/// - E4M3 is `_fp8_eager(x, amax)`: scale = f32(448 / amax) (amax ≤ 2⁻²⁴ counts as 1),
///   scale_inv = f32(1 / scale), out = f32(E4M3(clamp(f32(x × scale), ±448)) × scale_inv).
public struct FakeQuantizer: Sendable {
    public let target: CalibrationTarget
    public let amax: Float
    @usableFromInline let scale: Float
    @usableFromInline let scaleInv: Float
    @usableFromInline let zeroRange: Bool

    static let epsilon: Float = 1.0 / Float(1 << 24)

    public init(_ target: CalibrationTarget, amax: Float) {
        self.target = target
        self.amax = amax
        switch target {
        case .int8:
            zeroRange = amax <= Self.epsilon
            scale = zeroRange ? 0 : 127 / amax
            scaleInv = 0
        case .fp8:
            zeroRange = false
            scale = 448 / (amax <= Self.epsilon ? 1 : amax)
            scaleInv = 1 / scale
        }
    }

    @inlinable public func callAsFunction(_ x: Float) -> Float {
        switch target {
        case .int8:
            if zeroRange { return 0 }
            let q = min(max((x * scale).rounded(.toNearestOrEven), -127), 127)
            return q / scale
        case .fp8:
            let s = min(max(x * scale, -448), 448)
            return FloatBits.e4m3ToF32(FloatBits.f32ToE4M3(s)) * scaleInv
        }
    }
}
