/// SIMD forms of the `FloatBits` conversions, eight lanes at a time. Each one computes exactly
/// what its scalar twin computes; the exhaustive tests check both against ml_dtypes.
public enum Vector {
    // Note: every comparison and `replacing(with:where:)` takes splatted vectors, never scalars:
    // Swift's scalar-operand overloads compile to per-lane loops, the vector ones to SIMD
    // compares and blends (checked in the generated assembly).
    public typealias F = SIMD8<Float>
    public typealias U = SIMD8<UInt32>
    public static let width = 8

    @inlinable @inline(__always) public static func bits(_ v: F) -> U { unsafeBitCast(v, to: U.self) }
    @inlinable @inline(__always) public static func float(_ v: U) -> F { unsafeBitCast(v, to: F.self) }

    // MARK: loads (decode to f32)

    @inlinable @inline(__always)
    public static func loadBF16(_ p: UnsafeRawPointer, _ i: Int) -> F {
        let h = p.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self)
        return float(U(truncatingIfNeeded: h) &<< 16)
    }

    @inlinable @inline(__always)
    public static func loadF32(_ p: UnsafeRawPointer, _ i: Int) -> F {
        p.loadUnaligned(fromByteOffset: i &* 4, as: F.self)
    }

    @inlinable @inline(__always)
    public static func loadF16(_ p: UnsafeRawPointer, _ i: Int) -> F {
        let h = U(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self))
        let sign = (h & 0x8000) &<< 16
        let em = h & 0x7FFF
        let scaled = bits(float(em &<< 13) * F(repeating: Float(bitPattern: 0x7780_0000)))
        let special = 0x7F80_0000 | ((em & 0x3FF) &<< 13)
        return float(scaled.replacing(with: special, where: em .>= U(repeating: 0x7C00)) | sign)
    }

    @inlinable @inline(__always)
    public static func loadTable(_ p: UnsafeRawPointer, _ i: Int, _ table: UnsafePointer<Float>) -> F {
        let c = p.loadUnaligned(fromByteOffset: i, as: SIMD8<UInt8>.self)
        return F(table[Int(c[0])], table[Int(c[1])], table[Int(c[2])], table[Int(c[3])],
                 table[Int(c[4])], table[Int(c[5])], table[Int(c[6])], table[Int(c[7])])
    }

    // MARK: encodes

    @inlinable @inline(__always)
    public static func toBF16(_ x: F) -> SIMD8<UInt16> {
        let b = bits(x)
        let a = b & 0x7FFF_FFFF
        let r = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
        let nan = ((b &>> 16) & 0x8000) | 0x7FC0
        return SIMD8<UInt16>(truncatingIfNeeded: r.replacing(with: nan, where: a .> U(repeating: 0x7F80_0000)))
    }

    /// f32 → f16. `payloadNaN`: numpy's f32 rule (keep payload bits); otherwise NaN → 0x7E00.
    @inlinable @inline(__always)
    public static func toF16(_ x: F, payloadNaN: Bool) -> SIMD8<UInt16> {
        let b = bits(x)
        let sign = (b &>> 16) & 0x8000
        let a = b & 0x7FFF_FFFF
        let sub = bits(float(a) + F(repeating: 0.5)) &- 0x3F00_0000
        let norm = (a &+ 0xC800_0FFF &+ ((a &>> 13) & 1)) &>> 13
        var r = norm.replacing(with: sub, where: a .< U(repeating: 0x3880_0000))
        r = r.replacing(with: U(repeating: 0x7C00), where: a .>= U(repeating: 0x4780_0000))
        let nanMask = a .> U(repeating: 0x7F80_0000)
        if any(nanMask) {
            var n: U
            if payloadNaN {
                n = 0x7C00 &+ ((a & 0x7F_FFFF) &>> 13)
                n = n.replacing(with: U(repeating: 0x7C01), where: n .== U(repeating: 0x7C00))
            } else {
                n = U(repeating: 0x7E00)
            }
            r = r.replacing(with: n, where: nanMask)
        }
        return SIMD8<UInt16>(truncatingIfNeeded: r | sign)
    }

    /// f32 → E4M3FN codes. `saturate`: clamp to ±448 first (quantizers); otherwise ml_dtypes'
    /// rule (NaN above 464).
    @inlinable @inline(__always)
    public static func toE4M3(_ x: F, saturate: Bool) -> SIMD8<UInt8> {
        let b = bits(x)
        let sign = (b &>> 24) & 0x80
        var a = b & 0x7FFF_FFFF
        let nan = saturate ? (a .> U(repeating: 0x7F80_0000)) : (a .>= U(repeating: 0x43E8_0001))
        a = a.replacing(with: U(repeating: 0x43E0_0000), where: a .> U(repeating: 0x43E0_0000))
        let sub = bits(float(a) + F(repeating: 16384)) &- 0x4680_0000
        let norm = ((a &+ 0x7_FFFF &+ ((a &>> 20) & 1)) &>> 20) &- 960
        var code = norm.replacing(with: sub, where: a .< U(repeating: 0x3C80_0000))
        code = code.replacing(with: U(repeating: 0x7F), where: nan)
        return SIMD8<UInt8>(truncatingIfNeeded: code | sign)
    }

    /// f32 → E5M2 codes. `saturate`: clamp to ±57344 first; otherwise ml_dtypes' rule (inf from 61440).
    @inlinable @inline(__always)
    public static func toE5M2(_ x: F, saturate: Bool) -> SIMD8<UInt8> {
        let b = bits(x)
        let sign = (b &>> 24) & 0x80
        var a = b & 0x7FFF_FFFF
        let nan = a .> U(repeating: 0x7F80_0000)
        let inf = a .>= U(repeating: 0x4770_0000)
        a = a.replacing(with: U(repeating: 0x4760_0000), where: a .> U(repeating: 0x4760_0000))
        let sub = bits(float(a) + F(repeating: 128)) &- 0x4300_0000
        let norm = ((a &+ 0xF_FFFF &+ ((a &>> 21) & 1)) &>> 21) &- 448
        var code = norm.replacing(with: sub, where: a .< U(repeating: 0x3880_0000))
        if !saturate { code = code.replacing(with: U(repeating: 0x7C), where: inf) }
        code = code.replacing(with: U(repeating: 0x7E), where: nan)
        return SIMD8<UInt8>(truncatingIfNeeded: code | sign)
    }

    /// |x| as integer bits: for non-negative floats integer order is float order, and NaN sorts
    /// above +inf, so `max` over these finds amax and non-finite values in one pass.
    @inlinable @inline(__always)
    public static func absBits(_ x: F) -> U { bits(x) & 0x7FFF_FFFF }
}
