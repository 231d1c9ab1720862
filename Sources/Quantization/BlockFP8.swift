import CKernels
import Numerics
import SafeTensors

/// DeepSeek-V3's block FP8 weight quantization (the layout of the published FP8 checkpoints).
///
/// For a weight W [rows, cols] upcast to f32 and blocks of `blockRows × blockCols` (edge blocks
/// just smaller, as if zero-padded):
///
///     amax  = max |W[block]|                          (f32)
///     scale = max(amax, 1e-12) / 448                  (f32 division; stored as weight_scale_inv)
///     Q     = E4M3(clamp(W / scale, -448, 448))       (true f32 division, round to nearest even)
///
/// and dequantization is `round_to(dtype, f32(Q) × scale)`. Scales have shape
/// [ceil(rows / blockRows), ceil(cols / blockCols)], row-major.
public enum BlockFP8 {
    /// The E4M3FN largest finite value.
    public static let fp8Max: Float = 448
    /// The floor on amax that keeps an all-zero block's scale positive.
    public static let amaxFloor: Float = 1e-12

    public static func scaleShape(rows: Int, cols: Int, blockRows: Int, blockCols: Int) -> [Int] {
        [(rows + blockRows - 1) / blockRows, (cols + blockCols - 1) / blockCols]
    }

    /// Quantizes `src` (format `format`, row-major [rows, cols]) into `q` (rows × cols bytes) and
    /// `scales` (f32, `scaleShape` elements) on all threads (`CodecDriver` over `BlockFP8Codec`).
    /// Throws `QuantizationError.nonFinite` when a block holds NaN or ±inf.
    public static func quantize(
        name: String, src: UnsafeRawPointer, format: FloatFormat, rows: Int, cols: Int,
        blockRows: Int = 128, blockCols: Int = 128,
        q: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>
    ) throws {
        guard format == .bf16 || format == .f16 || format == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: format.rawValue, "cannot be block-quantized (expected BF16, F16 or F32)")
        }
        try CodecDriver.quantize(BlockFP8Codec(blockRows: blockRows, blockCols: blockCols), PlainMatrix(base: src, format: format, rows: rows, cols: cols),
                                 tensor: name, q: UnsafeMutableRawPointer(q), scales: scales)
    }

    /// Dequantizes E4M3 `q` with F32 block scales into `out` in `format` (RNE): out = f32(q) × scale.
    public static func dequantize(
        q: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, rows: Int, cols: Int,
        blockRows: Int = 128, blockCols: Int = 128, out: UnsafeMutableRawPointer, format: FloatFormat
    ) {
        precondition(format == .bf16 || format == .f16 || format == .f32, "dequantize to \(format) is not supported")
        CodecDriver.dequantize(BlockFP8Codec(blockRows: blockRows, blockCols: blockCols), UnsafeRawPointer(q), rows: rows, cols: cols,
                               scales: scales, zeroPoints: nil, into: out, format: format)
    }
}

/// The codec of DeepSeek's block FP8 (`BlockFP8` has the arithmetic): E4M3 codes, one F32
/// `weight_scale_inv` per `blockRows × blockCols` block (or a BF16 / F16 one in checkpoints that
/// store it so, read by dequantize: out = S(f32(q) × s) then the output dtype).
public struct BlockFP8Codec: WeightCodec {
    public var blockRows: Int
    public var blockCols: Int
    public var scaleDType: DType

    public init(blockRows: Int = 128, blockCols: Int = 128, scaleDType: DType = .f32) {
        self.blockRows = blockRows
        self.blockCols = blockCols
        self.scaleDType = scaleDType
    }

    public var encoding: WeightEncoding {
        WeightEncoding(element: .e4m3, scale: .block(rows: blockRows, cols: blockCols), scaleDType: scaleDType)
    }
    public var bandRows: Int { blockRows }
    func colBlocks(_ cols: Int) -> Int { (cols + blockCols - 1) / blockCols }
    public func amaxCount(rows: Int, cols: Int) -> Int { scaleCount(rows: rows, cols: cols) }
    public func scaleCount(rows: Int, cols: Int) -> Int { (rows + blockRows - 1) / blockRows * colBlocks(cols) }
    public var scalesAreLocal: Bool { true }
    public func scaleOffset(row: Int, cols: Int) -> Int { row / blockRows * colBlocks(cols) }

    public func measure(_ src: PlainMatrix, rows rr: Range<Int>, amax: UnsafeMutablePointer<UInt32>) {
        let cb = colBlocks(src.cols)
        var r0 = rr.lowerBound
        while r0 < rr.upperBound {
            let band = r0 / blockRows
            let r1 = min(rr.upperBound, (band + 1) * blockRows)
            let m = amax + band * cb
            if r0 == band * blockRows { m.initialize(repeating: 0, count: cb) }
            for r in r0..<r1 {
                let row = src.row(r)
                for b in 0..<cb {
                    let c0 = b * blockCols
                    let v = BlockFP8.absMax(src.format, row, c0, min(src.cols, c0 + blockCols) - c0)
                    if v > m[b] { m[b] = v }
                }
            }
            r0 = r1
        }
    }

    public func scales(amax: UnsafePointer<UInt32>, rows: Int, cols: Int, source: FloatFormat, tensor: String, into scales: UnsafeMutablePointer<Float>) throws {
        let cb = colBlocks(cols)
        let n = scaleCount(rows: rows, cols: cols)
        for i in 0..<n where amax[i] >= 0x7F80_0000 {
            throw QuantizationError.nonFinite(tensor: tensor, row: i / cb * blockRows, column: i % cb * blockCols)
        }
        for i in 0..<n { scales[i] = Swift.max(Float(bitPattern: amax[i]), BlockFP8.amaxFloor) / BlockFP8.fp8Max }
    }

    public func quantize(_ src: PlainMatrix, rows rr: Range<Int>, scales: UnsafePointer<Float>, into q: UnsafeMutableRawPointer) {
        let cb = colBlocks(src.cols)
        for r in rr {
            let row = src.row(r)
            let out = (q + r * src.cols).assumingMemoryBound(to: UInt8.self)
            let scaleRow = scales + (r / blockRows) * cb
            for b in 0..<cb {
                let c0 = b * blockCols
                BlockFP8.encode(src.format, row, c0, min(src.cols, c0 + blockCols) - c0, scaleRow[b], out + c0)
            }
        }
    }

    public func dequantize(_ q: UnsafeRawPointer, rows rr: Range<Int>, cols: Int, scales: UnsafePointer<Float>, zeroPoints: UnsafePointer<Float>?,
                           into out: UnsafeMutableRawPointer, format: FloatFormat) {
        let cb = colBlocks(cols)
        let codes = q.assumingMemoryBound(to: UInt8.self)
        let scaleFormat = scaleDType.floatFormat ?? .f32
        for r in rr {
            let scaleRow = scales + (r / blockRows) * cb
            for b in 0..<cb {
                let c0 = b * blockCols
                let n = Swift.min(cols, c0 + blockCols) - c0
                let at = r * cols + c0
                if scaleFormat != .f32 {
                    // A scale stored in BF16 / F16: the product is rounded to that dtype first.
                    for k in 0..<n {
                        FloatFormat.store(scaleFormat.round(FloatBits.e4m3ToF32(codes[at + k]) * scaleRow[b]), format, out, at + k)
                    }
                    continue
                }
                // C kernels (vectorised, run-time CPU dispatch); same arithmetic as FloatBits.
                switch format {
                case .bf16: dsc_dequantize_e4m3_bf16(codes + at, n, scaleRow[b], out.assumingMemoryBound(to: UInt16.self) + at)
                case .f16: dsc_dequantize_e4m3_f16(codes + at, n, scaleRow[b], out.assumingMemoryBound(to: UInt16.self) + at)
                default: dsc_dequantize_e4m3_f32(codes + at, n, scaleRow[b], out.assumingMemoryBound(to: Float.self) + at)
                }
            }
        }
    }
}

extension BlockFP8 {
    /// max |x| (as f32 bits) of `n` elements of `row` from column `c0` (C kernel, vectorised).
    @inline(__always) static func absMax(_ f: FloatFormat, _ row: UnsafeRawPointer, _ c0: Int, _ n: Int) -> UInt32 {
        switch f {
        case .bf16: return dsc_absmax_bf16(row.assumingMemoryBound(to: UInt16.self) + c0, n)
        case .f16: return dsc_absmax_f16(row.assumingMemoryBound(to: UInt16.self) + c0, n)
        default: return dsc_absmax_f32(row.assumingMemoryBound(to: Float.self) + c0, n)
        }
    }

    /// E4M3(clamp(x / scale, ±448)) of `n` elements of `row` from column `c0` into `out`.
    @inline(__always) static func encode(_ f: FloatFormat, _ row: UnsafeRawPointer, _ c0: Int, _ n: Int, _ scale: Float, _ out: UnsafeMutablePointer<UInt8>) {
        switch f {
        case .bf16: dsc_quantize_e4m3_bf16(row.assumingMemoryBound(to: UInt16.self) + c0, n, scale, out)
        case .f16: dsc_quantize_e4m3_f16(row.assumingMemoryBound(to: UInt16.self) + c0, n, scale, out)
        default: dsc_quantize_e4m3_f32(row.assumingMemoryBound(to: Float.self) + c0, n, scale, out)
        }
    }

}
