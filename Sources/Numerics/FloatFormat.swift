/// The float formats dsconvert converts between, and bulk conversion of whole buffers.
public enum FloatFormat: String, CaseIterable, Sendable {
    case f32, f16, bf16, e4m3, e5m2

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .e4m3, .e5m2: return 1
        }
    }

    /// Converts `count` elements from `src` (format `from`) to `dst` (format `to`), with the exact
    /// results of `ml_dtypes`' `astype` (see `FloatBits`). `saturate` clamps to the target's
    /// largest finite value instead (FP8 targets only). Runs on all threads for large buffers.
    public static func convert(
        _ src: UnsafeRawPointer, from: FloatFormat, to dst: UnsafeMutableRawPointer, _ toFormat: FloatFormat,
        count: Int, saturate: Bool = false
    ) {
        if count <= 0 { return }
        // `astype` to the same dtype is a copy: every bit pattern, NaN payloads included, is kept
        // (the kernels would canonicalise NaNs: bf16 0x7F81 → 0x7FC0, f16 0x7C01 → 0x7E00, E5M2
        // 0x7D → 0x7E). Saturating E5M2 → E5M2 still runs the kernel (inf becomes ±57344);
        // saturating E4M3 → E4M3 is the identity anyway.
        if from == toFormat && !(saturate && toFormat == .e5m2) {
            if src != UnsafeRawPointer(dst) { dst.copyMemory(from: src, byteCount: count * from.size) }
            return
        }
        Parallel.forEachChunk(count: count, minChunk: 1 << 15) { r in
            // Keep chunk starts on vector boundaries except for the first element of the range.
            convertRange(src, from, dst, toFormat, r, saturate)
        }
    }

    static func convertRange(
        _ src: UnsafeRawPointer, _ from: FloatFormat, _ dst: UnsafeMutableRawPointer, _ to: FloatFormat,
        _ r: Range<Int>, _ saturate: Bool
    ) {
        var i = r.lowerBound
        let end = r.upperBound
        let w = Vector.width
        FloatBits.e4m3Table.withUnsafeBufferPointer { t4 in
        FloatBits.e5m2Table.withUnsafeBufferPointer { t5 in
            while i + w <= end {
                let v: Vector.F
                switch from {
                case .f32: v = Vector.loadF32(src, i)
                case .bf16: v = Vector.loadBF16(src, i)
                case .f16: v = Vector.loadF16(src, i)
                case .e4m3: v = Vector.loadTable(src, i, t4.baseAddress!)
                case .e5m2: v = Vector.loadTable(src, i, t5.baseAddress!)
                }
                switch to {
                case .f32: dst.storeBytes(of: v, toByteOffset: i * 4, as: Vector.F.self)
                case .bf16: dst.storeBytes(of: Vector.toBF16(v), toByteOffset: i * 2, as: SIMD8<UInt16>.self)
                case .f16: dst.storeBytes(of: Vector.toF16(v, payloadNaN: from == .f32), toByteOffset: i * 2, as: SIMD8<UInt16>.self)
                case .e4m3: dst.storeBytes(of: Vector.toE4M3(v, saturate: saturate), toByteOffset: i, as: SIMD8<UInt8>.self)
                case .e5m2: dst.storeBytes(of: Vector.toE5M2(v, saturate: saturate), toByteOffset: i, as: SIMD8<UInt8>.self)
                }
                i += w
            }
            while i < end {
                store(load(src, from, i), to, dst, i, saturate: saturate, fromF32: from == .f32)
                i += 1
            }
        }
        }
    }

    /// One element of `p` as f32 (exact for every format).
    @inlinable public static func load(_ p: UnsafeRawPointer, _ format: FloatFormat, _ i: Int) -> Float {
        switch format {
        case .f32: return p.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
        case .bf16: return FloatBits.bf16ToF32(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        case .f16: return FloatBits.f16ToF32(p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
        case .e4m3: return FloatBits.e4m3ToF32(p.load(fromByteOffset: i, as: UInt8.self))
        case .e5m2: return FloatBits.e5m2ToF32(p.load(fromByteOffset: i, as: UInt8.self))
        }
    }

    /// Stores f32 `v` as element `i` of `p` in `format`.
    @inlinable public static func store(_ v: Float, _ format: FloatFormat, _ p: UnsafeMutableRawPointer, _ i: Int, saturate: Bool = false, fromF32: Bool = true) {
        switch format {
        case .f32: p.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
        case .bf16: p.storeBytes(of: FloatBits.f32ToBF16(v), toByteOffset: i * 2, as: UInt16.self)
        case .f16:
            let h = v.isNaN && !fromF32 ? FloatBits.f16CanonicalNaN(negative: v.sign == .minus) : FloatBits.f32ToF16(v)
            p.storeBytes(of: h, toByteOffset: i * 2, as: UInt16.self)
        case .e4m3:
            p.storeBytes(of: saturate ? FloatBits.f32ToE4M3Saturating(v) : FloatBits.f32ToE4M3(v), toByteOffset: i, as: UInt8.self)
        case .e5m2:
            p.storeBytes(of: saturate ? FloatBits.f32ToE5M2Saturating(v) : FloatBits.f32ToE5M2(v), toByteOffset: i, as: UInt8.self)
        }
    }

    /// Rounds an f32 value to this format and back (the value a tensor of this dtype would hold).
    @inlinable public func round(_ v: Float) -> Float {
        switch self {
        case .f32: return v
        case .bf16: return FloatBits.bf16ToF32(FloatBits.f32ToBF16(v))
        case .f16: return FloatBits.f16ToF32(FloatBits.f32ToF16(v))
        case .e4m3: return FloatBits.e4m3ToF32(FloatBits.f32ToE4M3(v))
        case .e5m2: return FloatBits.e5m2ToF32(FloatBits.f32ToE5M2(v))
        }
    }
}
