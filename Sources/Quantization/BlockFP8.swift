import CKernels
import Numerics

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
    /// `scales` (f32, `scaleShape` elements). Runs over row bands in parallel.
    /// Throws `QuantizationError.nonFinite` when a block holds NaN or ±inf.
    public static func quantize(
        name: String, src: UnsafeRawPointer, format: FloatFormat, rows: Int, cols: Int,
        blockRows: Int = 128, blockCols: Int = 128,
        q: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>
    ) throws {
        guard format == .bf16 || format == .f16 || format == .f32 else {
            throw QuantizationError.unsupportedDType(tensor: name, dtype: format.rawValue, "cannot be block-quantized (expected BF16, F16 or F32)")
        }
        let bandCount = (rows + blockRows - 1) / blockRows
        let colBlocks = (cols + blockCols - 1) / blockCols
        var bad = [Int](repeating: -1, count: bandCount)  // per band: first bad column block
        bad.withUnsafeMutableBufferPointer { badPtr in
            Parallel.forEach(bandCount) { band in
                let r0 = band * blockRows
                let r1 = min(rows, r0 + blockRows)
                let amax = UnsafeMutablePointer<UInt32>.allocate(capacity: colBlocks)
                defer { amax.deallocate() }
                amax.initialize(repeating: 0, count: colBlocks)
                for r in r0..<r1 {
                    let row = src + r * cols * format.size
                    for cb in 0..<colBlocks {
                        let c0 = cb * blockCols
                        let c1 = min(cols, c0 + blockCols)
                        let s = absMax(format, row, c0, c1 - c0)
                        if s > amax[cb] { amax[cb] = s }
                    }
                }
                let scaleRow = scales + band * colBlocks
                for cb in 0..<colBlocks {
                    if amax[cb] >= 0x7F80_0000 && badPtr[band] < 0 { badPtr[band] = cb }
                    scaleRow[cb] = Swift.max(Float(bitPattern: amax[cb]), amaxFloor) / fp8Max
                }
                if badPtr[band] >= 0 { return }
                for r in r0..<r1 {
                    let row = src + r * cols * format.size
                    let out = UnsafeMutableRawPointer(q + r * cols)
                    for cb in 0..<colBlocks {
                        let c0 = cb * blockCols
                        let c1 = min(cols, c0 + blockCols)
                        encode(format, row, c0, c1 - c0, scaleRow[cb], out.assumingMemoryBound(to: UInt8.self) + c0)
                    }
                }
            }
        }
        if let band = bad.firstIndex(where: { $0 >= 0 }) {
            throw QuantizationError.nonFinite(tensor: name, row: band * blockRows, column: bad[band] * blockCols)
        }
    }

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

    /// Dequantizes E4M3 `q` with block scales into `out` in `format` (RNE): out = f32(q) × scale.
    public static func dequantize(
        q: UnsafePointer<UInt8>, scales: UnsafePointer<Float>, rows: Int, cols: Int,
        blockRows: Int = 128, blockCols: Int = 128, out: UnsafeMutableRawPointer, format: FloatFormat
    ) {
        precondition(format == .bf16 || format == .f16 || format == .f32, "dequantize to \(format) is not supported")
        let colBlocks = (cols + blockCols - 1) / blockCols
        Parallel.forEachChunk(count: rows, minChunk: Swift.max(1, (1 << 16) / Swift.max(cols, 1))) { range in
            for r in range {
                let scaleRow = scales + (r / blockRows) * colBlocks
                for cb in 0..<colBlocks {
                    let c0 = cb * blockCols
                    let n = Swift.min(cols, c0 + blockCols) - c0
                    let at = r * cols + c0
                    // C kernels (vectorised, run-time CPU dispatch); same arithmetic as FloatBits.
                    switch format {
                    case .bf16: dsc_dequantize_e4m3_bf16(q + at, n, scaleRow[cb], out.assumingMemoryBound(to: UInt16.self) + at)
                    case .f16: dsc_dequantize_e4m3_f16(q + at, n, scaleRow[cb], out.assumingMemoryBound(to: UInt16.self) + at)
                    default: dsc_dequantize_e4m3_f32(q + at, n, scaleRow[cb], out.assumingMemoryBound(to: Float.self) + at)
                    }
                }
            }
        }
    }
}
