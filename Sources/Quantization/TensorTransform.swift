import CKernels
import Numerics
import SafeTensors

extension DType {
    /// The Numerics format of a float dtype dsconvert converts.
    public var floatFormat: FloatFormat? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .f8e4m3: return .e4m3
        case .f8e5m2: return .e5m2
        default: return nil
        }
    }
}

extension FloatFormat {
    /// The safetensors dtype of a Numerics format.
    public var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .e4m3: return .f8e4m3
        case .e5m2: return .f8e5m2
        }
    }
}

/// A reusable, growing, 64-byte aligned buffer (one per worker; never shrinks during a run).
public final class Scratch {
    public private(set) var pointer: UnsafeMutableRawPointer
    public private(set) var capacity: Int

    public init(capacity: Int = 1 << 20) {
        self.capacity = max(capacity, 64)
        pointer = .allocate(byteCount: self.capacity, alignment: 64)
    }

    deinit { pointer.deallocate() }

    /// A buffer of at least `bytes` (contents not preserved when it grows).
    public func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity {
            pointer.deallocate()
            capacity = max(bytes, capacity * 2)
            pointer = .allocate(byteCount: capacity, alignment: 64)
        }
        return pointer
    }
}

/// Executes one `TensorPlan`: reads the input tensor (and its scale), computes the outputs, and
/// hands each output's bytes to `emit` in plan order.
public struct TensorTransform {
    /// Scratch space: values, scales, and an intermediate for requantization.
    public let values = Scratch()
    public let scales = Scratch()
    public let intermediate = Scratch()
    /// A SmoothQuant-folded weight rounded to its dtype, before quantizing.
    public let folded = Scratch()

    public init() {}

    public func run(
        _ plan: TensorPlan, input: TensorView, tensor lookup: (String) throws -> TensorView,
        emit: (TensorSpec, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        if let fold = plan.fold { return try runFolded(plan, fold, input: input, tensor: lookup, emit: emit) }
        switch plan.action {
        case .copy:
            try emit(plan.outputs[0], input.bytes)
        case let .quantize(scheme):
            try quantize(plan, scheme: scheme, source: input.bytes.baseAddress!, format: input.dtype.floatFormat!, emit: emit)
        case let .dequantize(q, dtype):
            let out = values.reserve(plan.outputs[0].byteCount)
            try dequantize(q, input: input, scale: lookup(q.scale.name), zeroPoint: q.zeroPoint.map { try lookup($0.name) }, to: dtype, out: out)
            try emit(plan.outputs[0], UnsafeRawBufferPointer(start: out, count: plan.outputs[0].byteCount))
        case let .requantize(q, scheme, target):
            let tmp = intermediate.reserve(q.weight.elementCount * target.byteSize!)
            try dequantize(q, input: input, scale: lookup(q.scale.name), zeroPoint: q.zeroPoint.map { try lookup($0.name) }, to: target, out: tmp)
            try quantize(plan, scheme: scheme, source: UnsafeRawPointer(tmp), format: target.floatFormat!, emit: emit)
        }
    }

    /// A SmoothQuant-folded tensor: its values in f32 (decoded first when quantized), folded,
    /// then rounded to the output dtype (copy, dequantize) or to the weight's dtype and quantized
    /// (quantize, requantize).
    func runFolded(_ plan: TensorPlan, _ fold: SmoothingFold, input: TensorView, tensor lookup: (String) throws -> TensorView,
                   emit: (TensorSpec, UnsafeRawBufferPointer) throws -> Void) throws {
        let shape = input.shape
        let n = fold.scales.count
        guard shape.last == n, fold.kind == .divide ? shape.count == 1 : shape.count == 2 else {
            throw QuantizationError.badShape(tensor: plan.source, shape: shape, "SmoothQuant's \(n) factors of \(fold.norm) fold into a [\(n)] norm weight or a [rows, \(n)] reader")
        }
        let count = shape.reduce(1, *)
        let f32 = intermediate.reserve(count * 4).bindMemory(to: Float.self, capacity: count)
        switch plan.action {
        case .copy, .quantize:
            guard let f = input.dtype.floatFormat, [.bf16, .f16, .f32].contains(f) else {
                throw QuantizationError.unsupportedDType(tensor: plan.source, dtype: input.dtype.rawValue, "cannot be folded with SmoothQuant factors (expected BF16, F16 or F32)")
            }
            fold.apply(input.bytes.baseAddress!, f, rows: count / n, into: f32)
        case let .dequantize(q, _), let .requantize(q, _, _):
            try dequantize(q, input: input, scale: lookup(q.scale.name), zeroPoint: q.zeroPoint.map { try lookup($0.name) }, to: .f32, out: UnsafeMutableRawPointer(f32))
            fold.apply(UnsafeRawPointer(f32), .f32, rows: count / n, into: f32)
        }
        switch plan.action {
        case .copy, .dequantize:
            let o = plan.outputs[0]
            guard let f = o.dtype.floatFormat else {
                throw QuantizationError.unsupportedDType(tensor: plan.source, dtype: o.dtype.rawValue, "is not a dtype a folded tensor can be written in")
            }
            let out = values.reserve(o.byteCount)
            FloatFormat.convert(UnsafeRawPointer(f32), from: .f32, to: out, f, count: count)
            try emit(o, UnsafeRawBufferPointer(start: out, count: o.byteCount))
        case let .quantize(scheme), let .requantize(_, scheme, _):
            // The folded weight in its own dtype (a quantized source: the model dtype it is
            // decoded to), as a fold in place on the model's weights leaves it, then quantized
            // as any weight of that dtype.
            var d = input.dtype.floatFormat ?? .f32
            if case let .requantize(_, _, target) = plan.action { d = target.floatFormat ?? .f32 }
            let rounded = folded.reserve(count * d.size)
            FloatFormat.convert(UnsafeRawPointer(f32), from: .f32, to: rounded, d, count: count)
            try quantize(plan, scheme: scheme, source: UnsafeRawPointer(rounded), format: d, emit: emit)
        }
    }

    /// Quantizes through the codec of the scheme's target encoding (scales as the plan's
    /// outputs store them), on all threads.
    func quantize(_ plan: TensorPlan, scheme: QuantizationScheme, source: UnsafeRawPointer, format: FloatFormat,
                  emit: (TensorSpec, UnsafeRawBufferPointer) throws -> Void) throws {
        let w = plan.outputs[0], s = plan.outputs[1]
        let rows = w.shape[0], cols = w.shape[1]
        guard [.bf16, .f16, .f32].contains(format) else {
            throw QuantizationError.unsupportedDType(tensor: plan.source, dtype: format.rawValue, "cannot be quantized (expected BF16, F16 or F32)")
        }
        let codec = try plan.codec(scheme)
        let q = values.reserve(w.byteCount)
        // f32 scales, then the stored scales, then the input scale (static activations).
        let inputScaleAt = (s.elementCount * 4 + s.byteCount + 63) / 64 * 64
        let sc = scales.reserve(inputScaleAt + 64)
        let f32Scales = sc.bindMemory(to: Float.self, capacity: s.elementCount)
        try CodecDriver.quantize(codec, PlainMatrix(base: source, format: format, rows: rows, cols: cols), tensor: plan.source, q: q, scales: f32Scales)
        try emit(w, UnsafeRawBufferPointer(start: q, count: w.byteCount))
        if s.dtype == .f32 {
            try emit(s, UnsafeRawBufferPointer(start: sc, count: s.byteCount))
        } else {
            // Scales are already rounded to their stored dtype: converting is exact.
            let stored = sc + s.elementCount * 4
            FloatFormat.convert(UnsafeRawPointer(sc), from: .f32, to: stored, s.dtype.floatFormat!, count: s.elementCount)
            try emit(s, UnsafeRawBufferPointer(start: stored, count: s.byteCount))
        }
        if let spec = plan.storeInputScale(into: sc + inputScaleAt) { try emit(spec, UnsafeRawBufferPointer(start: sc + inputScaleAt, count: spec.byteCount)) }
    }

    /// Refuses what would make a dequantized value silently wrong, as `quantize` refuses NaN and
    /// infinite weights: a scale that is NaN, infinite, zero or negative, and an FP8 NaN code
    /// (E4M3FN has no infinities; 0x7F and 0xFF are its NaNs). The error names the tensor, the
    /// element and, where the store knows it, the file and byte offset.
    /// `codes` may be a band of the weight starting at element `firstCode` (messages count from the
    /// weight's first element).
    public static func validate(_ q: QuantizedWeight, codes: UnsafeRawPointer, count: Int, scales: UnsafePointer<Float>, scaleCount n: Int, firstCode: Int = 0) throws {
        let scaleSize = q.scale.dtype.byteSize ?? 4
        for i in 0..<n where !(scales[i] > 0 && scales[i].isFinite) {
            let v = scales[i]
            let what = v.isNaN ? "NaN" : v.isInfinite ? "infinite" : v == 0 ? "zero" : "negative (\(v))"
            throw QuantizationError.invalidValue(
                tensor: q.scale.name, index: i,
                "the scale is \(what); dequantizing with it would silently give NaN, infinite, zero or sign-flipped weights (the checkpoint is damaged)",
                file: q.scaleAt?.file, offset: q.scaleAt?.offset.map { $0 + i * scaleSize })
        }
        if q.weight.dtype == .f8e4m3 {
            let k = dsc_find_e4m3_nan(codes.assumingMemoryBound(to: UInt8.self), count)
            if k < count {
                let code = codes.load(fromByteOffset: k, as: UInt8.self)
                let i = firstCode + k
                throw QuantizationError.invalidValue(
                    tensor: q.weight.name, index: i,
                    "FP8 code 0x\(String(code, radix: 16, uppercase: true)) is NaN (row \(i / q.weight.shape[1]), column \(i % q.weight.shape[1])); a quantizer never writes it (the checkpoint is damaged)",
                    file: q.weightAt?.file, offset: q.weightAt?.offset.map { $0 + i })
            }
        }
    }

    /// The zero points of `q` as f32 values (one per scale element), refusing non-finite ones.
    public static func zeroPoints(_ q: QuantizedWeight, _ v: TensorView) throws -> [Float] {
        let n = v.info.elementCount
        let p = v.bytes.baseAddress!
        let values: [Float]
        switch v.dtype {
        case .i8: values = (0..<n).map { Float(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8: values = (0..<n).map { Float(p.load(fromByteOffset: $0, as: UInt8.self)) }
        case .i32: values = (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        default:
            guard let f = v.dtype.floatFormat else {
                throw QuantizationError.unsupportedDType(tensor: v.name, dtype: v.dtype.rawValue, "is not a zero-point type dsconvert reads")
            }
            values = (0..<n).map { FloatFormat.load(p, f, $0) }
        }
        if let i = values.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError.invalidValue(tensor: v.name, index: i, "the zero point is not finite (the checkpoint is damaged)",
                                                 file: q.zeroPointAt?.file, offset: q.zeroPointAt?.offset.map { $0 + i * (v.dtype.byteSize ?? 1) })
        }
        return values
    }

    /// out = dtype(scaleDType(f32(q) × scale)) for every element, through the codec of the
    /// weight's encoding (see `BlockFP8Codec` and `CompressedTensorsCodec` for each layout).
    public func dequantize(_ q: QuantizedWeight, input: TensorView, scale: TensorView, zeroPoint: TensorView? = nil, to dtype: DType, out: UnsafeMutableRawPointer) throws {
        let outFormat = try QuantizedSource.target(q, dtype)
        let source = try QuantizedSource(q, scale: scale, zeroPoint: zeroPoint)
        try source.dequantize(input.bytes.baseAddress!, firstRow: 0, rows: q.weight.shape[0], into: out, format: outFormat)
    }
}

/// A quantized weight ready to decode: its codec, and its scales (and zero points) as f32 values,
/// validated once. Both the whole-tensor and the band-by-band paths decode through it.
public struct QuantizedSource {
    public let weight: QuantizedWeight
    public let codec: any WeightCodec
    public let scales: [Float]
    public let zeroPoints: [Float]?

    /// The Numerics format of a dequantization target, refusing anything but BF16, F16 and F32.
    public static func target(_ q: QuantizedWeight, _ dtype: DType) throws -> FloatFormat {
        guard let f = dtype.floatFormat, [.bf16, .f16, .f32].contains(f) else {
            throw QuantizationError.unsupportedDType(tensor: q.weight.name, dtype: dtype.rawValue, "is not a dequantization target (bf16, f16, f32)")
        }
        return f
    }

    public init(_ q: QuantizedWeight, scale: TensorView, zeroPoint: TensorView?) throws {
        guard let codec = q.encoding.codec else {
            throw QuantizationError.unsupportedDType(tensor: q.weight.name, dtype: q.weight.dtype.rawValue, "in the encoding \(q.encoding) has no codec to dequantize it")
        }
        let n = scale.info.elementCount
        var f32 = [Float](repeating: 0, count: n)
        f32.withUnsafeMutableBytes { FloatFormat.convert(scale.bytes.baseAddress!, from: scale.dtype.floatFormat!, to: $0.baseAddress!, .f32, count: n) }
        try f32.withUnsafeBufferPointer { s in
            try TensorTransform.validate(q, codes: scale.bytes.baseAddress!, count: 0, scales: s.baseAddress!, scaleCount: n)
        }
        weight = q
        self.codec = codec
        scales = f32
        zeroPoints = try zeroPoint.map { try TensorTransform.zeroPoints(q, $0) }
    }

    /// Decodes `rows` rows of codes starting at weight row `firstRow` (a multiple of the codec's
    /// band rows) into `out` in `format`, on all threads; refuses NaN codes among them.
    public func dequantize(_ codes: UnsafeRawPointer, firstRow: Int, rows: Int, into out: UnsafeMutableRawPointer, format: FloatFormat) throws {
        let cols = weight.weight.shape[1]
        try TensorTransform.validate(weight, codes: codes, count: rows * cols, scales: scales, scaleCount: 0, firstCode: firstRow * cols)
        let at = codec.scaleOffset(row: firstRow, cols: cols)
        scales.withUnsafeBufferPointer { s in
            if let zeroPoints {
                zeroPoints.withUnsafeBufferPointer { z in
                    CodecDriver.dequantize(codec, codes, rows: rows, cols: cols, scales: s.baseAddress! + at, zeroPoints: z.baseAddress! + at, into: out, format: format)
                }
            } else {
                CodecDriver.dequantize(codec, codes, rows: rows, cols: cols, scales: s.baseAddress! + at, zeroPoints: nil, into: out, format: format)
            }
        }
    }
}

extension TensorPlan {
    /// The codec that writes this plan's outputs (the weight and its scale) with `scheme`.
    public func codec(_ scheme: QuantizationScheme) throws -> any WeightCodec {
        // The weight and its scales, then (static activations) the input scale.
        guard outputs.count == (scheme.staticActivations ? 3 : 2), let c = scheme.target(scaleDType: outputs[1].dtype).codec else {
            throw QuantizationError.invalidOption("no codec writes \(scheme.summary) with \(outputs.count >= 2 ? outputs[1].dtype.rawValue : "no") scales for \(source)")
        }
        return c
    }
}
