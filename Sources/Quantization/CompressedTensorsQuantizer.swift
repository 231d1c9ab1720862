import Numerics

/// Per-tensor and per-channel symmetric quantization with compressed-tensors' (llm-compressor's)
/// arithmetic, so the bytes equal what its quantizer writes for the same scheme.
///
/// With D the model dtype (BF16, F16 or F32) and every step rounded to D as torch does it:
///
///     amax  = max |W|  over the tensor, or over each output row (channel)
///     scale = D(amax / (range / 2))      range / 2 = 448 for FP8 E4M3, 127.5 for INT8
///     scale = eps(D) where scale == 0    (torch.finfo(D).eps; BF16: 2^-7)
///     Q     = FP8: E4M3(clamp(D(W / scale) + 0, ±448))
///             INT8: int8(round_half_even(clamp(D(W / scale), -128, 127)))
///
/// The `+ 0` is compressed-tensors' zero point: its `_quantize` always does
/// `scaled += zero_point.to(x.dtype)` (llm-compressor registers a zero point, all zeros, even
/// for symmetric schemes, and passes it to the compressor), which turns a -0.0 quotient
/// (a -0.0 weight) into +0.0, so the package writes FP8 0x00 where a plain cast gives 0x80.
/// INT8 is unaffected (-0 and +0 are both integer 0). DeepSeek's block path has no zero point
/// and keeps 0x80 (see `BlockFP8`).
///
/// Scales are stored in D with shape [1] (tensor) or [rows, 1] (channel). Dequantization is
/// D(D(Q) × scale).
public enum CompressedTensorsQuantizer {
    public enum Target: Sendable { case fp8, int8 }

    public static func halfRange(_ t: Target) -> Float { t == .fp8 ? 448 : 127.5 }

    /// Machine epsilon of D (torch.finfo(D).eps).
    public static func eps(_ d: FloatFormat) -> Float {
        switch d {
        case .bf16: return 0x1p-7
        case .f16: return 0x1p-10
        default: return Float.ulpOfOne
        }
    }

    /// Quantizes `src` [rows, cols] in D = `format`. `scalesOut` receives 1 (perChannel false) or
    /// `rows` scales as f32 values already rounded to D (the caller stores them in D).
    public static func quantize(
        name: String, src: UnsafeRawPointer, format: FloatFormat, rows: Int, cols: Int, perChannel: Bool,
        target: Target, q: UnsafeMutableRawPointer, scalesOut: UnsafeMutablePointer<Float>
    ) throws {
        guard format == .bf16 || format == .f16 || format == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: format.rawValue, "cannot be quantized (expected BF16, F16 or F32)")
        }
        // 1. amax per row (as |x| bits; NaN sorts above inf).
        var rowAmax = [UInt32](repeating: 0, count: rows)
        rowAmax.withUnsafeMutableBufferPointer { amax in
            Parallel.forEachChunk(count: rows, minChunk: Swift.max(1, (1 << 16) / Swift.max(cols, 1))) { range in
                for r in range {
                    let row = src + r * cols * format.size
                    var m = Vector.U(repeating: 0)
                    var c = 0
                    switch format {
                    case .bf16: while c + 8 <= cols { m = pointwiseMax(m, Vector.absBits(BF16Loader.load8(row, c))); c += 8 }
                    case .f16: while c + 8 <= cols { m = pointwiseMax(m, Vector.absBits(F16Loader.load8(row, c))); c += 8 }
                    default: while c + 8 <= cols { m = pointwiseMax(m, Vector.absBits(F32Loader.load8(row, c))); c += 8 }
                    }
                    var s = m.max()
                    while c < cols { s = Swift.max(s, FloatFormat.load(row, format, c).bitPattern & 0x7FFF_FFFF); c += 1 }
                    amax[r] = s
                }
            }
        }
        if let bad = rowAmax.firstIndex(where: { $0 >= 0x7F80_0000 }) {
            throw QuantizationError.nonFinite(tensor: name, row: bad, column: 0)
        }
        // 2. scales in D.
        let h = format.round(halfRange(target))
        func scale(_ amaxBits: UInt32) -> Float {
            let s = format.round(Float(bitPattern: amaxBits) / h)
            return s == 0 ? eps(format) : s
        }
        if perChannel {
            for r in 0..<rows { scalesOut[r] = scale(rowAmax[r]) }
        } else {
            scalesOut[0] = scale(rowAmax.max() ?? 0)
        }
        // 3. values.
        let scalePtr = UnsafePointer(scalesOut)
        Parallel.forEachChunk(count: rows, minChunk: Swift.max(1, (1 << 16) / Swift.max(cols, 1))) { range in
            for r in range {
                let s = perChannel ? scalePtr[r] : scalePtr[0]
                let row = src + r * cols * format.size
                let out = q + r * cols
                switch (format, target) {
                case (.bf16, .fp8): encodeFP8(BF16Loader.self, row, cols, s, out) { Vector.float(Vector.bits(Vector.F(truncatingBF16: $0))) }
                case (.f16, .fp8): encodeFP8(F16Loader.self, row, cols, s, out) { Vector.F(roundingToF16: $0) }
                case (_, .fp8): encodeFP8(F32Loader.self, row, cols, s, out) { $0 }
                case (.bf16, .int8): encodeInt8(BF16Loader.self, row, cols, s, out) { Vector.F(truncatingBF16: $0) }
                case (.f16, .int8): encodeInt8(F16Loader.self, row, cols, s, out) { Vector.F(roundingToF16: $0) }
                case (_, .int8): encodeInt8(F32Loader.self, row, cols, s, out) { $0 }
                }
            }
        }
    }

    @inline(__always)
    static func encodeFP8<L: FloatLoader>(_: L.Type, _ row: UnsafeRawPointer, _ cols: Int, _ s: Float, _ out: UnsafeMutableRawPointer, _ roundD: (Vector.F) -> Vector.F) {
        let sv = Vector.F(repeating: s)
        var c = 0
        while c + 8 <= cols {
            // `x + 0` as compressed-tensors adds its zero point: -0 becomes +0 (see the type's doc).
            let x = roundD(L.load8(row, c) / sv)
            let y = x.replacing(with: 0, where: x .== 0)
            out.storeBytes(of: Vector.toE4M3(y, saturate: true), toByteOffset: c, as: SIMD8<UInt8>.self)
            c += 8
        }
        while c < cols {
            let x = roundD(Vector.F(repeating: L.load1(row, c) / s))[0]
            out.storeBytes(of: FloatBits.f32ToE4M3Saturating(x == 0 ? 0 : x), toByteOffset: c, as: UInt8.self)
            c += 1
        }
    }

    @inline(__always)
    static func encodeInt8<L: FloatLoader>(_: L.Type, _ row: UnsafeRawPointer, _ cols: Int, _ s: Float, _ out: UnsafeMutableRawPointer, _ roundD: (Vector.F) -> Vector.F) {
        let sv = Vector.F(repeating: s)
        let lo = Vector.F(repeating: -128), hi = Vector.F(repeating: 127)
        var c = 0
        while c + 8 <= cols {
            let x = roundD(L.load8(row, c) / sv)
            let clamped = x.clamped(lowerBound: lo, upperBound: hi).rounded(.toNearestOrEven)
            out.storeBytes(of: SIMD8<Int8>(truncatingIfNeeded: SIMD8<Int32>(clamped)), toByteOffset: c, as: SIMD8<Int8>.self)
            c += 8
        }
        while c < cols {
            let x = roundD(Vector.F(repeating: L.load1(row, c) / s))[0]
            out.storeBytes(of: FloatBits.f32ToInt8(x), toByteOffset: c, as: Int8.self)
            c += 1
        }
    }

    /// Dequantizes FP8 E4M3 or INT8 `q` with per-tensor or per-row scales (f32 values of D
    /// scales) into `out` in `outFormat`: out = outFormat(D(f32(q) × scale)).
    public static func dequantize(
        q: UnsafeRawPointer, quantized: Target, scales: UnsafePointer<Float>, perChannel: Bool, rows: Int, cols: Int,
        modelFormat: FloatFormat, out: UnsafeMutableRawPointer, outFormat: FloatFormat
    ) {
        Parallel.forEachChunk(count: rows, minChunk: Swift.max(1, (1 << 16) / Swift.max(cols, 1))) { range in
            for r in range {
                let s = perChannel ? scales[r] : scales[0]
                for c in 0..<cols {
                    let v: Float = quantized == .fp8
                        ? FloatBits.e4m3ToF32(q.load(fromByteOffset: r * cols + c, as: UInt8.self))
                        : Float(q.load(fromByteOffset: r * cols + c, as: Int8.self))
                    FloatFormat.store(modelFormat.round(v * s), outFormat, out, r * cols + c)
                }
            }
        }
    }
}

extension SIMD8 where Scalar == Float {
    /// Rounds each lane to the nearest BF16 value (RNE), returned as f32.
    @inlinable @inline(__always) init(truncatingBF16 v: SIMD8<Float>) {
        self = Vector.float(SIMD8<UInt32>(truncatingIfNeeded: Vector.toBF16(v)) &<< 16)
    }
    /// Rounds each lane to the nearest F16 value (RNE), returned as f32.
    @inlinable @inline(__always) init(roundingToF16 v: SIMD8<Float>) {
        let h = Vector.toF16(v, payloadNaN: true)
        self = withUnsafeBytes(of: h) { Vector.loadF16($0.baseAddress!, 0) }
    }
}
