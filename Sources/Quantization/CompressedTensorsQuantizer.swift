import CKernels
import Numerics
import SafeTensors

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
    /// range / 2 of the code type: 448 for FP8 E4M3, 127.5 for INT8.
    public static func halfRange(_ t: WeightEncoding.Element) -> Float { t == .int8 ? 127.5 : 448 }

    /// Machine epsilon of D (torch.finfo(D).eps).
    public static func eps(_ d: FloatFormat) -> Float {
        switch d {
        case .bf16: return 0x1p-7
        case .f16: return 0x1p-10
        default: return Float.ulpOfOne
        }
    }

    /// Quantizes `src` [rows, cols] in D = `format` on all threads (`CodecDriver` over
    /// `CompressedTensorsCodec`). `scalesOut` receives 1 (perChannel false) or `rows` scales as
    /// f32 values already rounded to the stored scale dtype S = `scaleFormat` (D when nil; the
    /// caller stores them in S).
    ///
    /// When S differs from D (an F32 weight in a BF16 model, whose scales are stored in BF16),
    /// the scale is computed in D as above, then rounded to S (eps(S) if that gives 0), and Q is
    /// computed from that stored value — so that Q × the stored scale is what the quantizer meant.
    public static func quantize(
        name: String, src: UnsafeRawPointer, format: FloatFormat, rows: Int, cols: Int, perChannel: Bool,
        target: WeightEncoding.Element, q: UnsafeMutableRawPointer, scalesOut: UnsafeMutablePointer<Float>, scaleFormat: FloatFormat? = nil
    ) throws {
        let stored = scaleFormat ?? format
        guard stored == .bf16 || stored == .f16 || stored == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: stored.rawValue, "is not a scale dtype (expected BF16, F16 or F32)")
        }
        guard format == .bf16 || format == .f16 || format == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: format.rawValue, "cannot be quantized (expected BF16, F16 or F32)")
        }
        let codec = CompressedTensorsCodec(element: target, perChannel: perChannel, scaleFormat: stored)
        try CodecDriver.quantize(codec, PlainMatrix(base: src, format: format, rows: rows, cols: cols), tensor: name, q: q, scales: scalesOut)
    }
}

/// The codec of compressed-tensors' symmetric (and, when reading, asymmetric) FP8 / INT8 layouts,
/// per tensor or per channel, with `CompressedTensorsQuantizer`'s arithmetic.
public struct CompressedTensorsCodec: WeightCodec {
    /// `.e4m3` or `.int8`.
    public var element: WeightEncoding.Element
    public var perChannel: Bool
    /// S, the stored scale dtype (the model dtype D unless the weight's own dtype differs).
    public var scaleFormat: FloatFormat
    public var hasZeroPoint: Bool

    public init(element: WeightEncoding.Element, perChannel: Bool, scaleFormat: FloatFormat, hasZeroPoint: Bool = false) {
        precondition(element == .e4m3 || element == .int8)
        self.element = element
        self.perChannel = perChannel
        self.scaleFormat = scaleFormat
        self.hasZeroPoint = hasZeroPoint
    }

    public var encoding: WeightEncoding {
        WeightEncoding(element: element, scale: perChannel ? .channel : .tensor, scaleDType: scaleFormat.dtype, hasZeroPoint: hasZeroPoint)
    }
    public var bandRows: Int { 1 }
    public func amaxCount(rows: Int, cols: Int) -> Int { rows }
    public func scaleCount(rows: Int, cols: Int) -> Int { perChannel ? rows : 1 }
    public var scalesAreLocal: Bool { perChannel }
    public func scaleOffset(row: Int, cols: Int) -> Int { perChannel ? row : 0 }

    /// amax per row (the per-tensor maximum is taken over them in `scales`).
    public func measure(_ src: PlainMatrix, rows rr: Range<Int>, amax: UnsafeMutablePointer<UInt32>) {
        let out = amax + rr.lowerBound
        let at = src.row(rr.lowerBound), n = rr.count, ld = src.leadingDimension
        switch src.format {
        case .bf16: dsc_rows_absmax_bf16(at.assumingMemoryBound(to: UInt16.self), n, src.cols, ld, out)
        case .f16: dsc_rows_absmax_f16(at.assumingMemoryBound(to: UInt16.self), n, src.cols, ld, out)
        default: dsc_rows_absmax_f32(at.assumingMemoryBound(to: Float.self), n, src.cols, ld, out)
        }
    }

    public func scales(amax: UnsafePointer<UInt32>, rows: Int, cols: Int, source format: FloatFormat, tensor: String, into scalesOut: UnsafeMutablePointer<Float>) throws {
        if let bad = (0..<rows).first(where: { amax[$0] >= 0x7F80_0000 }) {
            throw QuantizationError.nonFinite(tensor: tensor, row: bad, column: 0)
        }
        let stored = scaleFormat
        let h = format.round(CompressedTensorsQuantizer.halfRange(element))
        func scale(_ amaxBits: UInt32) -> Float {
            var s = format.round(Float(bitPattern: amaxBits) / h)
            if s == 0 { s = CompressedTensorsQuantizer.eps(format) }
            if stored != format {
                s = stored.round(s)
                if s == 0 { s = CompressedTensorsQuantizer.eps(stored) }
            }
            return s
        }
        if perChannel {
            for r in 0..<rows { scalesOut[r] = scale(amax[r]) }
        } else {
            var m: UInt32 = 0
            for r in 0..<rows where amax[r] > m { m = amax[r] }
            scalesOut[0] = scale(m)
        }
        let count = perChannel ? rows : 1
        if let bad = (0..<count).first(where: { !scalesOut[$0].isFinite }) {
            throw QuantizationError.invalidValue(
                tensor: tensor, index: perChannel ? bad : 0,
                "the \(perChannel ? "row's " : "")scale amax / \(CompressedTensorsQuantizer.halfRange(element)) overflows the \(stored.rawValue.uppercased()) scale dtype of the model; the weight's values are too large for it",
                file: nil, offset: nil)
        }
    }

    public func quantize(_ src: PlainMatrix, rows rr: Range<Int>, scales: UnsafePointer<Float>, into q: UnsafeMutableRawPointer) {
        let r0 = rr.lowerBound, n = rr.count, cols = src.cols, ld = src.leadingDimension
        let at = src.row(r0)
        let step = perChannel ? 1 : 0
        let s = scales + r0 * step
        let u16 = at.assumingMemoryBound(to: UInt16.self), f32 = at.assumingMemoryBound(to: Float.self)
        if element == .e4m3 {
            let out = (q + r0 * cols).assumingMemoryBound(to: UInt8.self)
            switch src.format {
            case .bf16: dsc_ct_quantize_e4m3_bf16(u16, n, cols, ld, s, step, out, cols)
            case .f16: dsc_ct_quantize_e4m3_f16(u16, n, cols, ld, s, step, out, cols)
            default: dsc_ct_quantize_e4m3_f32(f32, n, cols, ld, s, step, out, cols)
            }
        } else {
            let out = (q + r0 * cols).assumingMemoryBound(to: Int8.self)
            switch src.format {
            case .bf16: dsc_ct_quantize_i8_bf16(u16, n, cols, ld, s, step, out, cols)
            case .f16: dsc_ct_quantize_i8_f16(u16, n, cols, ld, s, step, out, cols)
            default: dsc_ct_quantize_i8_f32(f32, n, cols, ld, s, step, out, cols)
            }
        }
    }

    /// out = OUT(D(f32(q) × scale)); with zero points, out = OUT(D(D(f32(q) − D(zp)) × scale)), as
    /// compressed-tensors' `_dequantize` computes it in the scale dtype D (`x_q.to(D) -
    /// zero_point.to(D)`, then `* scale`). `f32(q) − D(zp)` is exact in f32 for INT8 and FP8 codes
    /// and 8-bit zero points, so the one rounding to D equals torch's.
    public func dequantize(_ q: UnsafeRawPointer, rows rr: Range<Int>, cols: Int, scales: UnsafePointer<Float>, zeroPoints: UnsafePointer<Float>?,
                           into out: UnsafeMutableRawPointer, format outFormat: FloatFormat) {
        let modelFormat = scaleFormat
        precondition([.bf16, .f16, .f32].contains(modelFormat) && [.bf16, .f16, .f32].contains(outFormat),
                      "dequantize with \(modelFormat) scales to \(outFormat) is not supported")
        if let zp = zeroPoints {
            // Scalar (asymmetric checkpoints are rare).
            for r in rr {
                let k = perChannel ? r : 0
                let s = scales[k], z = modelFormat.round(zp[k])
                for c in 0..<cols {
                    let i = r * cols + c
                    let code: Float = element == .int8
                        ? Float(q.load(fromByteOffset: i, as: Int8.self))
                        : FloatBits.e4m3ToF32(q.load(fromByteOffset: i, as: UInt8.self))
                    FloatFormat.store(modelFormat.round(modelFormat.round(code - z) * s), outFormat, out, i)
                }
            }
            return
        }
        let step = perChannel ? 1 : 0
        let r0 = rr.lowerBound, n = rr.count
        let s = scales + r0 * step
        let o16 = (out + r0 * cols * outFormat.size).assumingMemoryBound(to: UInt16.self)
        let o32 = (out + r0 * cols * outFormat.size).assumingMemoryBound(to: Float.self)
        if element == .e4m3 {
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
        } else {
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
