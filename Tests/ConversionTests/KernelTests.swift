import Foundation
import XCTest
import CKernels
import Numerics
import Quantization

/// The C kernels (AVX-512 / AVX2 / baseline clones, whichever this CPU picks) against the scalar
/// Swift reference, bit for bit, for every BF16 and F16 input.
final class KernelTests: XCTestCase {
    /// Scales as quantization produces them (amax / 448 over a range of magnitudes), the amax floor,
    /// and awkward ones (non-powers of two, subnormal, huge).
    static let scales: [Float] = [
        1, 448 / 448, 0.02 / 448, 0.1234567 / 448, 1.0 / 3, 3.7e-3, 65504 / 448, 3.0e38 / 448,
        1e-12 / 448, Float.leastNormalMagnitude, Float.leastNonzeroMagnitude * 3, 2.5e30, 7,
    ]

    func testQuantizeBF16AllInputs() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var out = [UInt8](repeating: 0, count: all.count)
        for s in Self.scales {
            dsc_quantize_e4m3_bf16(all, all.count, s, &out)
            var bad = 0
            for (i, x) in all.enumerated() {
                let expected = FloatBits.f32ToE4M3Saturating(FloatBits.bf16ToF32(x) / s)
                if out[i] != expected {
                    bad += 1
                    if bad <= 3 { XCTFail(String(format: "bf16 0x%04x / %a: kernel 0x%02x, reference 0x%02x", x, s, out[i], expected)) }
                }
            }
            XCTAssertEqual(bad, 0, "scale \(s)")
        }
    }

    func testQuantizeF16AllInputs() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var out = [UInt8](repeating: 0, count: all.count)
        for s in Self.scales {
            dsc_quantize_e4m3_f16(all, all.count, s, &out)
            var bad = 0
            for (i, x) in all.enumerated() {
                let expected = FloatBits.f32ToE4M3Saturating(FloatBits.f16ToF32(x) / s)
                if out[i] != expected {
                    bad += 1
                    if bad <= 3 { XCTFail(String(format: "f16 0x%04x / %a: kernel 0x%02x, reference 0x%02x", x, s, out[i], expected)) }
                }
            }
            XCTAssertEqual(bad, 0, "scale \(s)")
        }
    }

    func testQuantizeF32() {
        var rng = SplitMix64(seed: 7)
        var values: [Float] = [0, -0, .infinity, -.infinity, .nan, -.nan, 448, 464, 464.0001, -463.99, 0x1p-9, 0x1p-10, 0x1.8p-10,
                               .leastNonzeroMagnitude, .greatestFiniteMagnitude, 0x1p-6, 0x1.fp-7]
        values += (0..<200_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        var out = [UInt8](repeating: 0, count: values.count)
        for s in Self.scales {
            dsc_quantize_e4m3_f32(values, values.count, s, &out)
            var bad = 0
            for (i, x) in values.enumerated() where out[i] != FloatBits.f32ToE4M3Saturating(x / s) {
                bad += 1
                if bad <= 3 { XCTFail(String(format: "f32 %a / %a: kernel 0x%02x", x, s, out[i])) }
            }
            XCTAssertEqual(bad, 0, "scale \(s)")
        }
    }

    /// Lengths and offsets that leave vector tails, and the bytes around the output untouched.
    func testQuantizeTailsAndBounds() {
        var rng = SplitMix64(seed: 3)
        let src = (0..<600).map { _ in UInt16(truncatingIfNeeded: rng.next()) }
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 511] {
            for offset in [0, 1, 3, 5] {
                var out = [UInt8](repeating: 0xA5, count: n + 16)
                src.withUnsafeBufferPointer { p in
                    out.withUnsafeMutableBufferPointer { o in dsc_quantize_e4m3_bf16(p.baseAddress! + offset, n, 0.013, o.baseAddress! + 8) }
                }
                for i in 0..<n { XCTAssertEqual(out[8 + i], FloatBits.f32ToE4M3Saturating(FloatBits.bf16ToF32(src[offset + i]) / 0.013)) }
                XCTAssertEqual(Array(out[0..<8]), [UInt8](repeating: 0xA5, count: 8), "n \(n)")
                XCTAssertEqual(Array(out[(8 + n)...]), [UInt8](repeating: 0xA5, count: 8), "n \(n)")
            }
        }
    }

    /// amax as f32 bits: max of |x| bits, NaN above infinity, over any length and offset.
    func testAbsMax() {
        let all = (0...0xFFFF).map { UInt16($0) }
        func ref(_ xs: ArraySlice<UInt16>, _ f: (UInt16) -> Float) -> UInt32 { xs.reduce(0) { max($0, f($1).bitPattern & 0x7FFF_FFFF) } }
        XCTAssertEqual(dsc_absmax_bf16(all, all.count), ref(all[...], FloatBits.bf16ToF32))
        XCTAssertEqual(dsc_absmax_f16(all, all.count), ref(all[...], FloatBits.f16ToF32))
        XCTAssertEqual(dsc_absmax_bf16(all, 0), 0)
        // Finite-only windows (below the infinities) and random windows.
        XCTAssertEqual(dsc_absmax_bf16(all, 0x7F80), 0x7F7F_0000)
        XCTAssertEqual(dsc_absmax_f16(all, 0x7C00), FloatBits.f16ToF32(0x7BFF).bitPattern)
        var rng = SplitMix64(seed: 11)
        let shuffled = all.shuffled(using: &rng)
        for _ in 0..<400 {
            let lo = Int(rng.next() % 65_000), n = Int(rng.next() % 300)
            let w = shuffled[lo..<min(shuffled.count, lo + n)]
            w.withUnsafeBufferPointer { p in
                XCTAssertEqual(dsc_absmax_bf16(p.baseAddress!, p.count), ref(w, FloatBits.bf16ToF32))
                XCTAssertEqual(dsc_absmax_f16(p.baseAddress!, p.count), ref(w, FloatBits.f16ToF32))
            }
        }
        let floats = (0..<100_003).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0xBF7F_FFFF) }  // finite
        XCTAssertEqual(dsc_absmax_f32(floats, floats.count), floats.reduce(0) { max($0, $1.bitPattern & 0x7FFF_FFFF) })
        XCTAssertEqual(dsc_absmax_f32(floats + [.nan], floats.count + 1), Float.nan.bitPattern & 0x7FFF_FFFF)
    }

    /// BlockFP8 (banded, parallel, partial edge blocks) equals the plain-Swift reference on a
    /// matrix whose blocks span every magnitude.
    func testBlockFP8MatchesReference() throws {
        var rng = SplitMix64(seed: 5)
        let rows = 300, cols = 200
        var w = [UInt16](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let mag = Float(bitPattern: UInt32(90 + (r / 128) * 20 + (c / 128) * 10) << 23)  // per-block magnitude
                w[r * cols + c] = FloatBits.f32ToBF16(mag * (Float(rng.next() % 2001) / 1000 - 1))
            }
        }
        w[5] = 0  // and an all-zero block
        var zeroBlock = w
        for r in 256..<rows { for c in 128..<cols { zeroBlock[r * cols + c] = 0 } }
        for input in [w, zeroBlock] {
            var q = [UInt8](repeating: 0, count: rows * cols)
            var s = [Float](repeating: 0, count: 3 * 2)
            try input.withUnsafeBytes { src in
                try BlockFP8.quantize(name: "w", src: src.baseAddress!, format: .bf16, rows: rows, cols: cols, q: &q, scales: &s)
            }
            let ref = referenceBlockFP8(input.map(FloatBits.bf16ToF32), rows: rows, cols: cols)
            XCTAssertEqual(q, ref.q)
            XCTAssertEqual(s.map(\.bitPattern), ref.scales.map(\.bitPattern))
        }
        XCTAssertEqual(BlockFP8.scaleShape(rows: 576, cols: 7168, blockRows: 128, blockCols: 128), [5, 56])
    }
}

extension KernelTests {
    /// Dequantization: every E4M3 code times each scale, rounded to BF16 / F16 / F32, against
    /// FloatBits (whose conversions are checked exhaustively against ml_dtypes in NumericsTests).
    func testDequantizeAllCodes() {
        let codes = (0...0xFF).map { UInt8($0) }
        var b16 = [UInt16](repeating: 0, count: 256), h16 = [UInt16](repeating: 0, count: 256), f32 = [Float](repeating: 0, count: 256)
        for s in KernelTests.scales + [-1, 0x1p-130, 1e30] {
            dsc_dequantize_e4m3_bf16(codes, 256, s, &b16)
            dsc_dequantize_e4m3_f16(codes, 256, s, &h16)
            dsc_dequantize_e4m3_f32(codes, 256, s, &f32)
            for c in codes {
                let v = FloatBits.e4m3ToF32(c) * s
                XCTAssertEqual(b16[Int(c)], FloatBits.f32ToBF16(v), String(format: "bf16 code 0x%02x scale %a", c, s))
                XCTAssertEqual(h16[Int(c)], FloatBits.f32ToF16(v), String(format: "f16 code 0x%02x scale %a", c, s))
                XCTAssertEqual(f32[Int(c)].bitPattern, v.bitPattern, String(format: "f32 code 0x%02x scale %a", c, s))
            }
        }
    }
}
