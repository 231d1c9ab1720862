/// Scalar conversions between F32 and the narrow float formats, bit-exact with `ml_dtypes` 0.6
/// and numpy 2 (`astype`), and the saturating variants quantizers use.
///
/// Formats (bit patterns are passed as unsigned integers):
/// - BF16: 1-8-7, f32's top half. f32→bf16 rounds to nearest, ties to even; NaN becomes the
///   quiet NaN 0x7FC0 with the input's sign.
/// - F16 (IEEE binary16): 1-5-10, bias 15, max 65504. f32→f16 rounds to nearest even, overflow
///   gives ±inf; NaN keeps the top 10 payload bits (numpy's rule: a payload that would vanish
///   becomes 1). From formats other than f32, NaN becomes 0x7E00 with the sign.
/// - F8_E4M3 (E4M3FN): 1-4-3, bias 7, max 448 (0x7E), no infinities, NaN 0x7F/0xFF, smallest
///   subnormal 2^-9. Rounds to nearest even; |x| > 464 (the tie above 448), ±inf and NaN give NaN.
/// - F8_E5M2: 1-5-2, bias 15, max 57344 (0x7B), ±inf 0x7C/0xFC, NaN 0x7E/0xFE (canonical),
///   smallest subnormal 2^-16. Rounds to nearest even; |x| ≥ 61440 gives ±inf.
public enum FloatBits {
    // MARK: BF16

    @inlinable public static func bf16ToF32(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    @inlinable public static func f32ToBF16(_ f: Float) -> UInt16 {
        let b = f.bitPattern
        if f.isNaN { return UInt16(truncatingIfNeeded: (b >> 16) & 0x8000) | 0x7FC0 }
        let r = b &+ 0x7FFF &+ ((b >> 16) & 1)
        return UInt16(truncatingIfNeeded: r >> 16)
    }

    // MARK: F16

    @inlinable public static func f16ToF32(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let em = UInt32(h & 0x7FFF)
        if em >= 0x7C00 { return Float(bitPattern: sign | 0x7F80_0000 | ((em & 0x3FF) << 13)) }
        // Normals and subnormals: shift into place and rescale by 2^112 (exact).
        let f = Float(bitPattern: em << 13) * Float(bitPattern: 0x7780_0000)
        return Float(bitPattern: f.bitPattern | sign)
    }

    @inlinable public static func f32ToF16(_ f: Float) -> UInt16 {
        let b = f.bitPattern
        let sign = UInt16(truncatingIfNeeded: (b >> 16) & 0x8000)
        let a = b & 0x7FFF_FFFF
        if a > 0x7F80_0000 {
            // numpy: keep the payload's top bits, but never turn a NaN into inf.
            var r = UInt16(truncatingIfNeeded: 0x7C00 + ((a & 0x7F_FFFF) >> 13))
            if r == 0x7C00 { r += 1 }
            return sign | r
        }
        return sign | f32AbsToF16Finite(a)
    }

    /// |x| (as bits, not NaN) → f16 bits, RNE, overflow to inf.
    @inlinable static func f32AbsToF16Finite(_ a: UInt32) -> UInt16 {
        if a >= 0x4780_0000 { return 0x7C00 }  // ≥ 65536 (and inf)
        if a < 0x3880_0000 {  // below 2^-14: subnormal or zero
            let f = Float(bitPattern: a) + Float(bitPattern: 0x3F00_0000)  // + 0.5: rounds to 2^-24 steps
            return UInt16(truncatingIfNeeded: f.bitPattern &- 0x3F00_0000)
        }
        let odd = (a >> 13) & 1
        let r = (a &+ 0xC800_0FFF &+ odd) >> 13  // rebias (15-127)<<23 and round
        return UInt16(truncatingIfNeeded: r)
    }

    /// f16 NaN with the sign, as produced from non-f32 sources.
    @inlinable public static func f16CanonicalNaN(negative: Bool) -> UInt16 { negative ? 0xFE00 : 0x7E00 }

    // MARK: E4M3FN

    /// Exact f32 values of all 256 E4M3FN codes (NaN codes give the quiet NaN with their sign).
    public static let e4m3Table: [Float] = (0..<256).map { e4m3ToF32Computed(UInt8($0)) }
    /// Exact f32 values of all 256 E5M2 codes.
    public static let e5m2Table: [Float] = (0..<256).map { e5m2ToF32Computed(UInt8($0)) }

    static func e4m3ToF32Computed(_ c: UInt8) -> Float {
        let sign: Float = c & 0x80 != 0 ? -1 : 1
        let e = Int((c >> 3) & 0xF)
        let m = Float(c & 7)
        if e == 15 && (c & 7) == 7 { return Float(bitPattern: (c & 0x80 != 0 ? 0xFFC0_0000 : 0x7FC0_0000)) }
        if e == 0 { return sign * m * 0x1p-9 }
        return sign * (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
    }

    static func e5m2ToF32Computed(_ c: UInt8) -> Float {
        let neg = c & 0x80 != 0
        let sign: Float = neg ? -1 : 1
        let e = Int((c >> 2) & 0x1F)
        let m = Float(c & 3)
        if e == 31 {
            if c & 3 == 0 { return sign * .infinity }
            return Float(bitPattern: neg ? 0xFFC0_0000 : 0x7FC0_0000)
        }
        if e == 0 { return sign * m * 0x1p-16 }
        return sign * (1 + m / 4) * Float(sign: .plus, exponent: e - 15, significand: 1)
    }

    @inlinable public static func e4m3ToF32(_ c: UInt8) -> Float { e4m3Table[Int(c)] }
    @inlinable public static func e5m2ToF32(_ c: UInt8) -> Float { e5m2Table[Int(c)] }

    /// f32 → E4M3FN exactly as ml_dtypes: RNE, NaN above 464.
    @inlinable public static func f32ToE4M3(_ f: Float) -> UInt8 {
        let b = f.bitPattern
        let sign = UInt8(truncatingIfNeeded: (b >> 24) & 0x80)
        let a = b & 0x7FFF_FFFF
        if a >= 0x43E8_0001 { return sign | 0x7F }  // > 464, inf, NaN
        return sign | e4m3AbsFinite(a)
    }

    /// f32 → E4M3FN for quantizers: clamps to ±448 first, so finite input never gives NaN.
    /// NaN input still gives NaN.
    @inlinable public static func f32ToE4M3Saturating(_ f: Float) -> UInt8 {
        let b = f.bitPattern
        let sign = UInt8(truncatingIfNeeded: (b >> 24) & 0x80)
        let a = b & 0x7FFF_FFFF
        if a > 0x7F80_0000 { return sign | 0x7F }
        return sign | e4m3AbsFinite(min(a, 0x43E0_0000))
    }

    /// |x| ≤ 464 as bits → code 0…0x7E.
    @inlinable static func e4m3AbsFinite(_ a: UInt32) -> UInt8 {
        if a < 0x3C80_0000 {  // below 2^-6: subnormal; adding 2^14 rounds to 2^-9 steps
            let f = Float(bitPattern: a) + 16384
            return UInt8(truncatingIfNeeded: f.bitPattern &- 0x4680_0000)
        }
        let r = (a &+ 0x7_FFFF &+ ((a >> 20) & 1)) >> 20
        return UInt8(truncatingIfNeeded: r &- 960)  // rebias: (127 - 7) << 3
    }

    /// f32 → E5M2 exactly as ml_dtypes: RNE, ±inf from 61440, NaN → 0x7E.
    @inlinable public static func f32ToE5M2(_ f: Float) -> UInt8 {
        let b = f.bitPattern
        let sign = UInt8(truncatingIfNeeded: (b >> 24) & 0x80)
        let a = b & 0x7FFF_FFFF
        if a > 0x7F80_0000 { return sign | 0x7E }
        if a >= 0x4770_0000 { return sign | 0x7C }  // ≥ 61440 → inf
        return sign | e5m2AbsFinite(a)
    }

    /// f32 → E5M2 clamped to ±57344 (finite input never gives inf).
    @inlinable public static func f32ToE5M2Saturating(_ f: Float) -> UInt8 {
        let b = f.bitPattern
        let sign = UInt8(truncatingIfNeeded: (b >> 24) & 0x80)
        let a = b & 0x7FFF_FFFF
        if a > 0x7F80_0000 { return sign | 0x7E }
        return sign | e5m2AbsFinite(min(a, 0x4760_0000))
    }

    @inlinable static func e5m2AbsFinite(_ a: UInt32) -> UInt8 {
        if a < 0x3880_0000 {  // below 2^-14: subnormal; adding 2^7 rounds to 2^-16 steps
            let f = Float(bitPattern: a) + 128
            return UInt8(truncatingIfNeeded: f.bitPattern &- 0x4300_0000)
        }
        let r = (a &+ 0xF_FFFF &+ ((a >> 21) & 1)) >> 21
        return UInt8(truncatingIfNeeded: r &- 448)  // rebias: (127 - 15) << 2
    }

    // MARK: INT8

    /// Round half to even, then clamp to [lo, hi] (NaN gives 0).
    @inlinable public static func f32ToInt8(_ f: Float, lo: Int8 = -128, hi: Int8 = 127) -> Int8 {
        if f.isNaN { return 0 }
        let r = f.rounded(.toNearestOrEven)
        return Int8(max(Float(lo), min(Float(hi), r)))
    }
}
