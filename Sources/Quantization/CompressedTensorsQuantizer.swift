import CKernels
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
/// D(D(Q) × scale); with a zero point zp (asymmetric checkpoints, `weight_zero_point` of the
/// scale's shape) it is D(D(D(Q) − D(zp)) × scale), compressed-tensors' `_dequantize` step by step.
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
    /// `rows` scales as f32 values already rounded to the stored scale dtype S = `scaleFormat`
    /// (D when nil; the caller stores them in S).
    ///
    /// When S differs from D (an F32 weight in a BF16 model, whose scales are stored in BF16),
    /// the scale is computed in D as above, then rounded to S (eps(S) if that gives 0), and Q is
    /// computed from that stored value — so that Q × the stored scale is what the quantizer meant.
    public static func quantize(
        name: String, src: UnsafeRawPointer, format: FloatFormat, rows: Int, cols: Int, perChannel: Bool,
        target: Target, q: UnsafeMutableRawPointer, scalesOut: UnsafeMutablePointer<Float>, scaleFormat: FloatFormat? = nil
    ) throws {
        let stored = scaleFormat ?? format
        guard stored == .bf16 || stored == .f16 || stored == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: stored.rawValue, "is not a scale dtype (expected BF16, F16 or F32)")
        }
        guard format == .bf16 || format == .f16 || format == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: format.rawValue, "cannot be quantized (expected BF16, F16 or F32)")
        }
        // Serial C kernels (AVX-512 / AVX2 / baseline clones) over bands of rows; the bands run in parallel.
        let minRows = Swift.max(1, (1 << 16) / Swift.max(cols, 1))
        // 1. amax per row (as |x| bits; NaN sorts above inf).
        var rowAmax = [UInt32](repeating: 0, count: rows)
        rowAmax.withUnsafeMutableBufferPointer { amax in
            Parallel.forEachChunk(count: rows, minChunk: minRows) { range in
                let out = amax.baseAddress! + range.lowerBound
                let at = src + range.lowerBound * cols * format.size
                switch format {
                case .bf16: dsc_rows_absmax_bf16(at.assumingMemoryBound(to: UInt16.self), range.count, cols, cols, out)
                case .f16: dsc_rows_absmax_f16(at.assumingMemoryBound(to: UInt16.self), range.count, cols, cols, out)
                default: dsc_rows_absmax_f32(at.assumingMemoryBound(to: Float.self), range.count, cols, cols, out)
                }
            }
        }
        if let bad = rowAmax.firstIndex(where: { $0 >= 0x7F80_0000 }) {
            throw QuantizationError.nonFinite(tensor: name, row: bad, column: 0)
        }
        // 2. scales in D.
        let h = format.round(halfRange(target))
        func scale(_ amaxBits: UInt32) -> Float {
            var s = format.round(Float(bitPattern: amaxBits) / h)
            if s == 0 { s = eps(format) }
            if stored != format {
                s = stored.round(s)
                if s == 0 { s = eps(stored) }
            }
            return s
        }
        if perChannel {
            for r in 0..<rows { scalesOut[r] = scale(rowAmax[r]) }
        } else {
            scalesOut[0] = scale(rowAmax.max() ?? 0)
        }
        let count = perChannel ? rows : 1
        if let bad = (0..<count).first(where: { !scalesOut[$0].isFinite }) {
            throw QuantizationError.invalidValue(
                tensor: name, index: perChannel ? bad : 0,
                "the \(perChannel ? "row's " : "")scale amax / \(halfRange(target)) overflows the \(stored.rawValue.uppercased()) scale dtype of the model; the weight's values are too large for it",
                file: nil, offset: nil)
        }
        // 3. values.
        let scalePtr = UnsafePointer(scalesOut)
        let step = perChannel ? 1 : 0
        Parallel.forEachChunk(count: rows, minChunk: minRows) { range in
            let r0 = range.lowerBound, n = range.count
            let at = src + r0 * cols * format.size
            let s = scalePtr + r0 * step
            let u16 = at.assumingMemoryBound(to: UInt16.self), f32 = at.assumingMemoryBound(to: Float.self)
            switch target {
            case .fp8:
                let out = (q + r0 * cols).assumingMemoryBound(to: UInt8.self)
                switch format {
                case .bf16: dsc_ct_quantize_e4m3_bf16(u16, n, cols, cols, s, step, out, cols)
                case .f16: dsc_ct_quantize_e4m3_f16(u16, n, cols, cols, s, step, out, cols)
                default: dsc_ct_quantize_e4m3_f32(f32, n, cols, cols, s, step, out, cols)
                }
            case .int8:
                let out = (q + r0 * cols).assumingMemoryBound(to: Int8.self)
                switch format {
                case .bf16: dsc_ct_quantize_i8_bf16(u16, n, cols, cols, s, step, out, cols)
                case .f16: dsc_ct_quantize_i8_f16(u16, n, cols, cols, s, step, out, cols)
                default: dsc_ct_quantize_i8_f32(f32, n, cols, cols, s, step, out, cols)
                }
            }
        }
    }

    /// Asymmetric dequantization: out = outFormat(D(D(f32(q) − D(zp)) × scale)), as compressed-tensors'
    /// `_dequantize` computes it in the scale dtype D (`x_q.to(D) - zero_point.to(D)`, then `* scale`).
    /// `f32(q) − D(zp)` is exact in f32 for INT8 and FP8 codes and 8-bit zero points, so the one
    /// rounding to D equals torch's. Scalar (asymmetric checkpoints are rare); rows run in parallel.
    public static func dequantizeAsymmetric(
        q: UnsafeRawPointer, quantized: Target, scales: UnsafePointer<Float>, zeroPoints: [Float], perChannel: Bool, rows: Int, cols: Int,
        modelFormat: FloatFormat, out: UnsafeMutableRawPointer, outFormat: FloatFormat
    ) {
        precondition([.bf16, .f16, .f32].contains(modelFormat) && [.bf16, .f16, .f32].contains(outFormat))
        zeroPoints.withUnsafeBufferPointer { zp in
            Parallel.forEachChunk(count: rows, minChunk: Swift.max(1, (1 << 14) / Swift.max(cols, 1))) { range in
                for r in range {
                    let k = perChannel ? r : 0
                    let s = scales[k], z = modelFormat.round(zp[k])
                    for c in 0..<cols {
                        let i = r * cols + c
                        let code: Float = quantized == .int8
                            ? Float(q.load(fromByteOffset: i, as: Int8.self))
                            : FloatBits.e4m3ToF32(q.load(fromByteOffset: i, as: UInt8.self))
                        let v = modelFormat.round(modelFormat.round(code - z) * s)
                        FloatFormat.store(v, outFormat, out, i)
                    }
                }
            }
        }
    }

    /// Dequantizes FP8 E4M3 or INT8 `q` with per-tensor or per-row scales (f32 values of D
    /// scales) into `out` in `outFormat`: out = outFormat(D(f32(q) × scale)).
    public static func dequantize(
        q: UnsafeRawPointer, quantized: Target, scales: UnsafePointer<Float>, perChannel: Bool, rows: Int, cols: Int,
        modelFormat: FloatFormat, out: UnsafeMutableRawPointer, outFormat: FloatFormat
    ) {
        precondition([.bf16, .f16, .f32].contains(modelFormat) && [.bf16, .f16, .f32].contains(outFormat),
                      "dequantize with \(modelFormat) scales to \(outFormat) is not supported")
        let step = perChannel ? 1 : 0
        Parallel.forEachChunk(count: rows, minChunk: Swift.max(1, (1 << 16) / Swift.max(cols, 1))) { range in
            let r0 = range.lowerBound, n = range.count
            let s = scales + r0 * step
            let o16 = (out + r0 * cols * outFormat.size).assumingMemoryBound(to: UInt16.self)
            let o32 = (out + r0 * cols * outFormat.size).assumingMemoryBound(to: Float.self)
            switch quantized {
            case .fp8:
                let p = (q + r0 * cols).assumingMemoryBound(to: UInt8.self)
                switch (modelFormat, outFormat) {
                case (.bf16, .bf16): dsc_ct_dequantize_e4m3_bf16_bf16(p, n, cols, cols, s, step, o16, cols)
                case (.bf16, .f16): dsc_ct_dequantize_e4m3_bf16_f16(p, n, cols, cols, s, step, o16, cols)
                case (.bf16, _): dsc_ct_dequantize_e4m3_bf16_f32(p, n, cols, cols, s, step, o32, cols)
                case (.f16, .bf16): dsc_ct_dequantize_e4m3_f16_bf16(p, n, cols, cols, s, step, o16, cols)
                case (.f16, .f16): dsc_ct_dequantize_e4m3_f16_f16(p, n, cols, cols, s, step, o16, cols)
                case (.f16, _): dsc_ct_dequantize_e4m3_f16_f32(p, n, cols, cols, s, step, o32, cols)
                case (_, .bf16): dsc_ct_dequantize_e4m3_f32_bf16(p, n, cols, cols, s, step, o16, cols)
                case (_, .f16): dsc_ct_dequantize_e4m3_f32_f16(p, n, cols, cols, s, step, o16, cols)
                default: dsc_ct_dequantize_e4m3_f32_f32(p, n, cols, cols, s, step, o32, cols)
                }
            case .int8:
                let p = (q + r0 * cols).assumingMemoryBound(to: Int8.self)
                switch (modelFormat, outFormat) {
                case (.bf16, .bf16): dsc_ct_dequantize_i8_bf16_bf16(p, n, cols, cols, s, step, o16, cols)
                case (.bf16, .f16): dsc_ct_dequantize_i8_bf16_f16(p, n, cols, cols, s, step, o16, cols)
                case (.bf16, _): dsc_ct_dequantize_i8_bf16_f32(p, n, cols, cols, s, step, o32, cols)
                case (.f16, .bf16): dsc_ct_dequantize_i8_f16_bf16(p, n, cols, cols, s, step, o16, cols)
                case (.f16, .f16): dsc_ct_dequantize_i8_f16_f16(p, n, cols, cols, s, step, o16, cols)
                case (.f16, _): dsc_ct_dequantize_i8_f16_f32(p, n, cols, cols, s, step, o32, cols)
                case (_, .bf16): dsc_ct_dequantize_i8_f32_bf16(p, n, cols, cols, s, step, o16, cols)
                case (_, .f16): dsc_ct_dequantize_i8_f32_f16(p, n, cols, cols, s, step, o16, cols)
                default: dsc_ct_dequantize_i8_f32_f32(p, n, cols, cols, s, step, o32, cols)
                }
            }
        }
    }
}
