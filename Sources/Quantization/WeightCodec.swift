import CKernels
import Numerics
import SafeTensors

/// A plain matrix a quantizer reads: row-major [rows, cols] of BF16, F16 or F32, row `r` at
/// `base + r × leadingDimension` elements.
public struct PlainMatrix {
    public var base: UnsafeRawPointer
    public var format: FloatFormat
    public var rows: Int
    public var cols: Int
    public var leadingDimension: Int

    public init(base: UnsafeRawPointer, format: FloatFormat, rows: Int, cols: Int, leadingDimension: Int? = nil) {
        self.base = base
        self.format = format
        self.rows = rows
        self.cols = cols
        self.leadingDimension = leadingDimension ?? cols
    }

    @inline(__always) func row(_ r: Int) -> UnsafeRawPointer { base + r * leadingDimension * format.size }
}

/// The codec seam: one implementation per stored encoding (`WeightEncoding`), with **serial**
/// entry points over explicit row ranges and buffers. Nothing in a codec is parallel: callers
/// (the converter's `TensorTransform`, the engine's matmul, benchmarks) split rows into bands
/// (`bandRows`) and run them on their threads. `CodecDriver` is the converter's driver.
///
/// Quantizing is three steps, so that a scale can depend on rows other threads measure (a
/// per-tensor scale): `measure` each band's |x| maxima into its own slots, `scales` once from all
/// of them, then `quantize` each band.
public protocol WeightCodec: Sendable {
    /// The encoding written (quantize) or read (dequantize).
    var encoding: WeightEncoding { get }
    /// Rows that share scale groups: bands handed to `measure` / `quantize` start at multiples.
    var bandRows: Int { get }
    /// How many maxima `measure` writes for a matrix of these sizes (slots are per scale group or
    /// per row, never shared between bands).
    func amaxCount(rows: Int, cols: Int) -> Int
    /// Number of scales of a matrix of these sizes.
    func scaleCount(rows: Int, cols: Int) -> Int
    /// Whether the scales of a band of rows depend on those rows only (block, channel), so a
    /// matrix can be quantized band by band in one pass; false for a per-tensor scale.
    var scalesAreLocal: Bool { get }
    /// Index of the first scale (and maximum) that applies to a band starting at `row` (a
    /// multiple of `bandRows`): the offset at which a band's scales sit in the whole matrix's.
    func scaleOffset(row: Int, cols: Int) -> Int
    /// Writes the |x| maxima (f32 bit patterns; NaN sorts above infinity) of `rows` of `src`.
    func measure(_ src: PlainMatrix, rows: Range<Int>, amax: UnsafeMutablePointer<UInt32>)
    /// Every scale, as the f32 value of the scale as stored (already rounded to the scale dtype),
    /// from all maxima. Throws when a value is not finite or a scale overflows its dtype; the
    /// error names `tensor` and the row and column.
    func scales(amax: UnsafePointer<UInt32>, rows: Int, cols: Int, source: FloatFormat, tensor: String, into scales: UnsafeMutablePointer<Float>) throws
    /// Encodes `rows` of `src` with `scales` into `q` (row-major, `cols` codes per row).
    func quantize(_ src: PlainMatrix, rows: Range<Int>, scales: UnsafePointer<Float>, into q: UnsafeMutableRawPointer)
    /// Decodes `rows` of `q` [*, cols] into `out` (row-major, `cols` per row) in `format`, with the
    /// arithmetic of the encoding's own dequantizer (rounding steps included), bit for bit.
    /// `scales` are f32 values of the stored scales; `zeroPoints` one per scale, or nil.
    func dequantize(_ q: UnsafeRawPointer, rows: Range<Int>, cols: Int, scales: UnsafePointer<Float>, zeroPoints: UnsafePointer<Float>?,
                    into out: UnsafeMutableRawPointer, format: FloatFormat)
}

extension WeightEncoding {
    /// The codec for this encoding; nil for plain floats and encodings dsconvert only decodes to
    /// f32 (E5M2: `StoredWeight`).
    public var codec: (any WeightCodec)? {
        switch (element, scale) {
        case let (.e4m3, .block(r, c)): return BlockFP8Codec(blockRows: r, blockCols: c, scaleDType: scaleDType ?? .f32)
        case (.e4m3, .tensor), (.e4m3, .channel), (.int8, .tensor), (.int8, .channel):
            guard let s = scaleDType?.floatFormat else { return nil }
            return CompressedTensorsCodec(element: element, perChannel: scale == .channel, scaleFormat: s, hasZeroPoint: hasZeroPoint)
        default: return nil
        }
    }
}

/// Runs a codec over whole matrices on all threads (`Parallel`): the converter's driver.
public enum CodecDriver {
    /// Quantizes `src` into `q` and `scales` (f32 values as stored, `codec.scaleCount` of them).
    public static func quantize(_ codec: any WeightCodec, _ src: PlainMatrix, tensor: String,
                                q: UnsafeMutableRawPointer, scales: UnsafeMutablePointer<Float>) throws {
        let amax = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, codec.amaxCount(rows: src.rows, cols: src.cols)))
        defer { amax.deallocate() }
        guard codec.scalesAreLocal else {
            // A per-tensor scale needs every row's maximum first: two passes.
            measure(codec, src, amax: amax)
            try codec.scales(amax: amax, rows: src.rows, cols: src.cols, source: src.format, tensor: tensor, into: scales)
            encode(codec, src, scales: scales, into: q)
            return
        }
        // Scales of a band depend on that band only: measure, scale and encode each band while
        // its rows are still in cache (one pass over memory). Errors are kept per band and the
        // first one in row order is thrown.
        let band = codec.bandRows
        let count = (src.rows + band - 1) / band
        var failures = [Error?](repeating: nil, count: count)
        failures.withUnsafeMutableBufferPointer { fail in
            Parallel.forEachChunk(count: count, minChunk: max(1, (1 << 16) / max(1, band * src.cols))) { chunk in
                for b in chunk {
                    let rows = (b * band)..<min(src.rows, (b + 1) * band)
                    codec.measure(src, rows: rows, amax: amax)
                    let at = codec.scaleOffset(row: rows.lowerBound, cols: src.cols)
                    do {
                        try codec.scales(amax: amax + at, rows: rows.count, cols: src.cols, source: src.format, tensor: tensor, into: scales + at)
                    } catch let QuantizationError.nonFinite(t, row, column) {
                        fail[b] = QuantizationError.nonFinite(tensor: t, row: rows.lowerBound + row, column: column)
                        continue
                    } catch let QuantizationError.invalidValue(t, index, message, file, offset) {
                        fail[b] = QuantizationError.invalidValue(tensor: t, index: at + index, message, file: file, offset: offset)
                        continue
                    } catch {
                        fail[b] = error
                        continue
                    }
                    codec.quantize(src, rows: rows, scales: scales, into: q)
                }
            }
        }
        if let e = failures.first(where: { $0 != nil }) { throw e! }
    }

    static func bands(_ codec: any WeightCodec, _ src: PlainMatrix, _ body: (Range<Int>) -> Void) {
        let band = codec.bandRows
        let count = (src.rows + band - 1) / band
        Parallel.forEachChunk(count: count, minChunk: max(1, (1 << 16) / max(1, band * src.cols))) { r in
            body((r.lowerBound * band)..<min(src.rows, r.upperBound * band))
        }
    }

    /// The maxima of every row band of `src` (`codec.amaxCount` slots).
    public static func measure(_ codec: any WeightCodec, _ src: PlainMatrix, amax: UnsafeMutablePointer<UInt32>) {
        bands(codec, src) { codec.measure(src, rows: $0, amax: amax) }
    }

    /// Encodes every row of `src` with `scales` (already computed) into `q`.
    public static func encode(_ codec: any WeightCodec, _ src: PlainMatrix, scales: UnsafePointer<Float>, into q: UnsafeMutableRawPointer) {
        bands(codec, src) { codec.quantize(src, rows: $0, scales: scales, into: q) }
    }

    /// Dequantizes `q` [rows, cols] into `out` in `format`.
    public static func dequantize(_ codec: any WeightCodec, _ q: UnsafeRawPointer, rows: Int, cols: Int, scales: UnsafePointer<Float>,
                                  zeroPoints: UnsafePointer<Float>?, into out: UnsafeMutableRawPointer, format: FloatFormat) {
        Parallel.forEachChunk(count: rows, minChunk: max(1, (1 << 16) / max(cols, 1))) { r in
            codec.dequantize(q, rows: r, cols: cols, scales: scales, zeroPoints: zeroPoints, into: out, format: format)
        }
    }
}
