import Numerics
import Quantization
import XCTest

/// The codec seam's serial entry points: a codec called band by band, in any order, on a window
/// of a wider matrix (a leading dimension larger than the width), gives the reference bytes —
/// so callers are free to split and schedule the work as they like.
final class WeightCodecTests: XCTestCase {
    /// A deterministic matrix of f32 values with a few exact zeros and a large outlier.
    private func matrix(_ rows: Int, _ cols: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<rows * cols).map { i in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            if i % 97 == 0 { return 0 }
            if i == 1234 { return 37.5 }
            return Float(Int32(truncatingIfNeeded: state >> 32)) * 0x1p-31 * 0.08
        }
    }

    func testBlockCodecBandsInAnyOrderOnAWindow() throws {
        // The window is columns [40, 40 + 300) of a 400-wide F32 matrix: 3 column blocks, the
        // last one partial; 5 row bands of 64, the last one partial.
        let rows = 300, cols = 300, width = 400, c0 = 40
        let wide = matrix(rows, width, seed: 7)
        let window = (0..<rows).flatMap { r in wide[(r * width + c0)..<(r * width + c0 + cols)] }
        let (wantQ, wantS) = referenceBlockFP8(window, rows: rows, cols: cols, block: 64)

        let codec = BlockFP8Codec(blockRows: 64, blockCols: 64)
        XCTAssertEqual(codec.encoding, WeightEncoding(element: .e4m3, scale: .block(rows: 64, cols: 64), scaleDType: .f32))
        XCTAssertEqual(codec.scaleCount(rows: rows, cols: cols), 5 * 5)
        var q = [UInt8](repeating: 0xEE, count: rows * cols)
        var scales = [Float](repeating: .nan, count: codec.scaleCount(rows: rows, cols: cols))
        var amax = [UInt32](repeating: 0xDEAD, count: codec.amaxCount(rows: rows, cols: cols))
        let bands: [Range<Int>] = [256..<300, 0..<64, 128..<256, 64..<128]  // uneven, out of order
        try wide.withUnsafeBytes { w in
            let src = PlainMatrix(base: w.baseAddress! + c0 * 4, format: .f32, rows: rows, cols: cols, leadingDimension: width)
            for b in bands { codec.measure(src, rows: b, amax: &amax) }
            try codec.scales(amax: amax, rows: rows, cols: cols, source: .f32, tensor: "w", into: &scales)
            try q.withUnsafeMutableBytes { qp in
                for b in bands.reversed() { codec.quantize(src, rows: b, scales: scales, into: qp.baseAddress!) }
            }
        }
        XCTAssertEqual(scales.map(\.bitPattern), wantS.map(\.bitPattern))
        XCTAssertEqual(q, wantQ)

        // Dequantize by bands too: f32(q) × scale, exactly.
        var out = [Float](repeating: .nan, count: rows * cols)
        out.withUnsafeMutableBytes { o in
            for b in [200..<300, 0..<1, 1..<200] {
                codec.dequantize(q, rows: b, cols: cols, scales: scales, zeroPoints: nil, into: o.baseAddress!, format: .f32)
            }
        }
        for r in 0..<rows {
            for c in 0..<cols {
                let want = FloatBits.e4m3ToF32(q[r * cols + c]) * scales[(r / 64) * 5 + c / 64]
                if out[r * cols + c].bitPattern != want.bitPattern { return XCTFail("(\(r), \(c)): \(out[r * cols + c]) != \(want)") }
            }
        }
    }

    /// A non-finite value is reported with the block it is in, whichever band measured it.
    func testNonFiniteIsReportedWithItsBlock() throws {
        var w = matrix(130, 200, seed: 3)
        w[129 * 200 + 150] = .infinity
        let codec = BlockFP8Codec(blockRows: 128, blockCols: 128)
        var amax = [UInt32](repeating: 0, count: codec.amaxCount(rows: 130, cols: 200))
        var scales = [Float](repeating: 0, count: codec.scaleCount(rows: 130, cols: 200))
        try w.withUnsafeBytes { p in
            let src = PlainMatrix(base: p.baseAddress!, format: .f32, rows: 130, cols: 200)
            codec.measure(src, rows: 128..<130, amax: &amax)
            codec.measure(src, rows: 0..<128, amax: &amax)
            XCTAssertThrowsError(try codec.scales(amax: amax, rows: 130, cols: 200, source: .f32, tensor: "w", into: &scales)) { e in
                XCTAssertEqual("\(e)".contains("w"), true, "\(e)")
                guard case let QuantizationError.nonFinite(tensor, row, column)? = e as? QuantizationError else { return XCTFail("\(e)") }
                XCTAssertEqual([tensor, "\(row)", "\(column)"], ["w", "128", "128"])
            }
        }
    }

    /// Every encoding the converter writes has a codec, and it is the one the scheme names.
    func testSchemesPickTheirCodecs() throws {
        let block = try QuantizationScheme(format: .fp8).target(scaleDType: .f32)
        XCTAssertTrue(block.codec is BlockFP8Codec)
        for (format, g) in [(QuantizationScheme.Format.fp8, QuantizationScheme.Granularity.channel), (.fp8, .tensor), (.int8, .channel), (.int8, .tensor)] {
            let e = try QuantizationScheme(format: format, granularity: g).target(scaleDType: .bf16)
            let c = try XCTUnwrap(e.codec as? CompressedTensorsCodec, "\(e)")
            XCTAssertEqual(c.encoding, e)
        }
        XCTAssertNil(WeightEncoding(element: .bf16).codec)
    }
}
