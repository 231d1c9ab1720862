import CKernels
import Numerics
import SafeTensors

/// A weight matrix in its stored encoding, read zero-copy from a tensor store, with a serial
/// tile decoder: the codec seam the engine's matmul and the converter call.
///
/// `dequantize(rows:cols:into:leadingDimension:)` writes the f32 value of every element of a
/// tile: (q − zp) × s (or / s) computed in f32 with the scale as stored, i.e. exactly what
/// DeepSeek's `weight_dequant` and compressed-tensors' `dequantize` compute before their final
/// cast. Plain BF16/F16/F32 weights are widened exactly. Nothing here is parallel; callers
/// split the work into tiles.
public struct StoredWeight: @unchecked Sendable {
    public let name: String
    public let rows: Int
    public let cols: Int
    public let encoding: WeightEncoding
    public let data: TensorView
    public let scale: TensorView?
    public let zeroPoint: TensorView?
    /// The scales (and zero points) widened to f32 once (they are small).
    private let scales: [Float]
    private let zeros: [Float]
    private let scaleCols: Int

    /// Opens `name` (a 2-D `X.weight`) from `store`. Quantized elements need their scale: DeepSeek's
    /// `X.weight_scale_inv` (block, `blockSize` edges, 128 × 128 by default) or compressed-tensors'
    /// `X.weight_scale` (tensor or channel by shape), and `X.weight_zero_point` when present.
    public init(_ name: String, in store: TensorStore, blockSize: (rows: Int, cols: Int) = (128, 128)) throws {
        guard let info = store.info(name) else {
            throw QuantizationError.badShape(tensor: name, shape: [], "is not in \(store.location)")
        }
        guard info.shape.count == 2 else {
            throw QuantizationError.badShape(tensor: name, shape: info.shape, "a weight matrix must be 2-D")
        }
        guard let element = WeightEncoding.Element(info.dtype) else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: info.dtype.rawValue, "is not a weight encoding dsconvert reads (BF16, F16, F32, F8_E4M3, F8_E5M2, I8)")
        }
        let rows = info.shape[0], cols = info.shape[1]
        self.name = name
        self.rows = rows
        self.cols = cols
        data = try store.view(name)
        guard element.isQuantized else {
            encoding = WeightEncoding(element: element)
            scale = nil
            zeroPoint = nil
            scales = []
            zeros = []
            scaleCols = 0
            return
        }
        let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
        let inv = store.info(module + ".weight_scale_inv"), direct = store.info(module + ".weight_scale")
        if inv != nil && direct != nil {
            throw QuantizationError.badShape(tensor: name, shape: info.shape, "has both \(module).weight_scale_inv and \(module).weight_scale; which one applies is ambiguous")
        }
        guard let s = inv ?? direct else {
            throw QuantizationError.missingScale(tensor: name, scale: module + (element == .int8 ? ".weight_scale" : ".weight_scale_inv or .weight_scale"))
        }
        guard [.f32, .bf16, .f16].contains(s.dtype) else {
            throw QuantizationError.unsupportedDType(tensor: s.name, dtype: s.dtype.rawValue, "is not a supported scale type (F32, BF16, F16)")
        }
        let layout: WeightEncoding.ScaleLayout
        let ss = s.shape
        if inv == nil && (ss == [1] || ss == []) {
            layout = .tensor
        } else if inv == nil && (ss == [rows, 1] || ss == [rows]) {
            layout = .channel
        } else if ss == [(rows + blockSize.rows - 1) / blockSize.rows, (cols + blockSize.cols - 1) / blockSize.cols] {
            layout = .block(rows: blockSize.rows, cols: blockSize.cols)
        } else {
            throw QuantizationError.badShape(tensor: s.name, shape: ss, "does not match weight \(info.shape) as a tensor, channel or \(blockSize.rows)x\(blockSize.cols) block scale")
        }
        if element == .int8, case .block = layout {
            throw QuantizationError.badShape(tensor: name, shape: info.shape, "INT8 with block scales is not supported")
        }
        let zpInfo = store.info(module + ".weight_zero_point")
        if let z = zpInfo, z.shape.reduce(1, *) != ss.reduce(1, *) {
            throw QuantizationError.badShape(tensor: z.name, shape: z.shape, "a zero point must have the scale's shape \(ss)")
        }
        encoding = WeightEncoding(element: element, scale: layout, scaleDType: s.dtype, hasZeroPoint: zpInfo != nil)
        let sv = try store.view(s.name)
        scale = sv
        scales = StoredWeight.widen(sv)
        if let z = zpInfo {
            let zv = try store.view(z.name)
            zeroPoint = zv
            zeros = try StoredWeight.widenZeroPoint(zv)
        } else {
            zeroPoint = nil
            zeros = []
        }
        if case let .block(_, bc) = layout { scaleCols = (cols + bc - 1) / bc } else { scaleCols = 1 }
    }

    /// The scales widened to f32 (row-major over the scale tensor) and that tensor's row length,
    /// for kernels that apply them while reading the codes; empty for an unscaled weight.
    public var scaleValues: [Float] { scales }
    public var scaleRowLength: Int { scaleCols }

    static func widen(_ v: TensorView) -> [Float] {
        let n = v.info.elementCount
        var out = [Float](repeating: 0, count: n)
        let f = v.dtype.floatFormat!
        out.withUnsafeMutableBytes { o in
            for i in 0..<n { o.storeBytes(of: FloatFormat.load(v.bytes.baseAddress!, f, i), toByteOffset: i * 4, as: Float.self) }
        }
        return out
    }

    static func widenZeroPoint(_ v: TensorView) throws -> [Float] {
        let n = v.info.elementCount
        let p = v.bytes.baseAddress!
        switch v.dtype {
        case .i8: return (0..<n).map { Float(p.load(fromByteOffset: $0, as: Int8.self)) }
        case .u8: return (0..<n).map { Float(p.load(fromByteOffset: $0, as: UInt8.self)) }
        case .i32: return (0..<n).map { Float(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
        default:
            guard let f = v.dtype.floatFormat else {
                throw QuantizationError.unsupportedDType(tensor: v.name, dtype: v.dtype.rawValue, "is not a zero-point type dsconvert reads")
            }
            return (0..<n).map { FloatFormat.load(p, f, $0) }
        }
    }

    /// The f32 scale and zero point that apply to element (r, c), as stored.
    @inline(__always) func scaleAt(_ r: Int, _ c: Int) -> (scale: Float, zero: Float) {
        let k: Int
        switch encoding.scale {
        case .none: return (1, 0)
        case .tensor: k = 0
        case .channel: k = r
        case let .block(br, bc): k = (r / br) * scaleCols + c / bc
        }
        return (scales[k], zeros.isEmpty ? 0 : zeros[k])
    }

    /// Writes the f32 values of the tile `rows × cols` to `dst`, row i of the tile at
    /// `dst + i × leadingDimension`. Serial.
    public func dequantize(rows rr: Range<Int>, cols cr: Range<Int>, into dst: UnsafeMutablePointer<Float>, leadingDimension ld: Int) {
        precondition(rr.lowerBound >= 0 && rr.upperBound <= rows && cr.lowerBound >= 0 && cr.upperBound <= cols && ld >= cr.count)
        let base = data.bytes.baseAddress!
        let width = data.dtype.byteSize!
        // Columns are cut at scale-block edges so each run has one scale.
        let edge: Int
        if case let .block(_, bc) = encoding.scale { edge = bc } else { edge = Int.max }
        for (i, r) in rr.enumerated() {
            let out = dst + i * ld
            var c = cr.lowerBound
            while c < cr.upperBound {
                let end = edge == Int.max ? cr.upperBound : min(cr.upperBound, (c / edge + 1) * edge)
                let n = end - c
                let src = base + (r * cols + c) * width
                let o = out + (c - cr.lowerBound)
                let (s, z) = scaleAt(r, c)
                let divide = encoding.convention == .divide
                // Decode with the scale folded in (multiply), or decode plainly and divide exactly.
                let ks: Float = divide ? 1 : s, kz: Float = divide ? 0 : z
                switch encoding.element {
                case .f32: o.update(from: src.assumingMemoryBound(to: Float.self), count: n)
                case .bf16: dsc_widen_bf16_f32(src.assumingMemoryBound(to: UInt16.self), n, o)
                case .f16: dsc_widen_f16_f32(src.assumingMemoryBound(to: UInt16.self), n, o)
                case .int8: dsc_decode_i8_f32(src.assumingMemoryBound(to: Int8.self), n, ks, kz, o)
                case .e4m3: dsc_decode_e4m3_f32(src.assumingMemoryBound(to: UInt8.self), n, ks, kz, o)
                case .e5m2:
                    dsc_decode_e5m2_f32(src.assumingMemoryBound(to: UInt8.self), n, z == 0 ? ks : 1, o)
                    if z != 0 && !divide { for k in 0..<n { o[k] = (o[k] - z) * s } }
                }
                if divide && encoding.element.isQuantized { for k in 0..<n { o[k] = (o[k] - z) / s } }
                c = end
            }
        }
    }
}
