import Foundation
import XCTest
import CKernels
import Numerics
import Quantization

/// The compressed-tensors C kernels (per-tensor / per-channel FP8 and INT8, whichever clone this CPU
/// picks) against the scalar Swift reference (FloatBits, itself checked exhaustively against
/// ml_dtypes), bit for bit: every BF16 and F16 input, every FP8 code and INT8 value, tiles with
/// leading dimensions wider than a row, and the bytes around each tile left untouched.
final class CompressedTensorsKernelTests: XCTestCase {
    /// Scales as the quantizer makes them (amax / 448 or / 127.5 rounded to D, eps(D)) and awkward ones.
    static let scales: [Float] = KernelTests.scales + [0x1p-7, 0x1p-10, Float.ulpOfOne, 0.02 / 127.5, 65504 / 127.5, -0.5]

    enum D { case bf16, f16, f32 }

    static func round(_ x: Float, _ d: D) -> Float {
        switch d {
        case .bf16: return FloatBits.bf16ToF32(FloatBits.f32ToBF16(x))
        case .f16: return FloatBits.f16ToF32(FloatBits.f32ToF16(x))
        case .f32: return x
        }
    }

    /// compressed-tensors FP8: E4M3(clamp(D(w / s) + 0, ±448)); -0 becomes +0 (its zero point).
    static func fp8(_ w: Float, _ s: Float, _ d: D) -> UInt8 {
        let x = round(w / s, d)
        return FloatBits.f32ToE4M3Saturating(x == 0 ? 0 : x)
    }

    /// compressed-tensors INT8: round_half_even(clamp(D(w / s), -128, 127)), NaN → 0.
    static func int8(_ w: Float, _ s: Float, _ d: D) -> Int8 { FloatBits.f32ToInt8(round(w / s, d)) }

    /// All 65,536 16-bit inputs as a 256 × 256 tile with leading dimension `ld` (padding 0xDEAD).
    static let rows = 256, cols = 256, ld = 259, ldOut = 261
    static let tile: [UInt16] = {
        var t = [UInt16](repeating: 0xDEAD, count: rows * ld)
        for r in 0..<rows { for c in 0..<cols { t[r * ld + c] = UInt16(r * cols + c) } }
        return t
    }()

    /// Runs `kernel(src, scales, step, dst)` over the tile for per-tensor (step 0) and per-row
    /// (step 1, scales rotating through the list) scales and compares every element.
    func check<T: Equatable>(_ label: String, fill: T, decode: (UInt16) -> Float, reference: (Float, Float) -> T,
                             kernel: (UnsafePointer<UInt16>, UnsafePointer<Float>, Int, UnsafeMutablePointer<T>) -> Void) {
        let R = Self.rows, C = Self.cols
        // Per-row scales rotate through the list, shifted on each run, so every input meets every
        // scale; per-tensor (one scale for the tile) with a few of them.
        for step in [0, 1] {
            for (si, s) in Self.scales.enumerated() where step == 1 || si < 3 {
                let rowScales = (0..<R).map { step == 0 ? s : Self.scales[($0 + si) % Self.scales.count] }
                var out = [T](repeating: fill, count: R * Self.ldOut)
                Self.tile.withUnsafeBufferPointer { src in
                    rowScales.withUnsafeBufferPointer { sc in
                        out.withUnsafeMutableBufferPointer { o in kernel(src.baseAddress!, sc.baseAddress!, step, o.baseAddress!) }
                    }
                }
                var bad = 0
                for r in 0..<R {
                    for c in 0..<Self.ldOut {
                        let got = out[r * Self.ldOut + c]
                        let want = c < C ? reference(decode(UInt16(r * C + c)), rowScales[r]) : fill
                        if got != want {
                            bad += 1
                            if bad <= 3 { XCTFail("\(label) input 0x\(String(r * C + c, radix: 16)) scale \(rowScales[r]) step \(step): kernel \(got), reference \(want)") }
                        }
                    }
                }
                XCTAssertEqual(bad, 0, "\(label) scale \(s) step \(step)")
            }
        }
    }

    func testQuantizeFP8AllBF16AndF16Inputs() {
        let (R, C, ld, ldo) = (Self.rows, Self.cols, Self.ld, Self.ldOut)
        check("fp8 bf16", fill: UInt8(0xA5), decode: FloatBits.bf16ToF32, reference: { Self.fp8($0, $1, .bf16) }) {
            dsc_ct_quantize_e4m3_bf16($0, R, C, ld, $1, $2, $3, ldo)
        }
        check("fp8 f16", fill: UInt8(0xA5), decode: FloatBits.f16ToF32, reference: { Self.fp8($0, $1, .f16) }) {
            dsc_ct_quantize_e4m3_f16($0, R, C, ld, $1, $2, $3, ldo)
        }
    }

    func testQuantizeInt8AllBF16AndF16Inputs() {
        let (R, C, ld, ldo) = (Self.rows, Self.cols, Self.ld, Self.ldOut)
        check("int8 bf16", fill: Int8(-91), decode: FloatBits.bf16ToF32, reference: { Self.int8($0, $1, .bf16) }) {
            dsc_ct_quantize_i8_bf16($0, R, C, ld, $1, $2, $3, ldo)
        }
        check("int8 f16", fill: Int8(-91), decode: FloatBits.f16ToF32, reference: { Self.int8($0, $1, .f16) }) {
            dsc_ct_quantize_i8_f16($0, R, C, ld, $1, $2, $3, ldo)
        }
    }

    /// F32 sources: every BF16 value widened, and random bit patterns (NaN, inf, subnormals).
    func testQuantizeF32() {
        var rng = SplitMix64(seed: 17)
        var values: [Float] = (0...0xFFFF).map { FloatBits.bf16ToF32(UInt16($0)) }
        values += [0, -0, 127.5, -127.5, 126.5, -128.5, 0.5, -0.5, 1.5, 2.5, 448, 464, -464.0001]
        values += (0..<40_000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        let n = values.count
        var q8 = [UInt8](repeating: 0, count: n), i8 = [Int8](repeating: 0, count: n)
        for s in Self.scales {
            var scale = s
            dsc_ct_quantize_e4m3_f32(values, 1, n, n, &scale, 0, &q8, n)
            dsc_ct_quantize_i8_f32(values, 1, n, n, &scale, 0, &i8, n)
            var bad = 0
            for (i, x) in values.enumerated() where q8[i] != Self.fp8(x, s, .f32) || i8[i] != Self.int8(x, s, .f32) {
                bad += 1
                if bad <= 3 { XCTFail(String(format: "f32 %a / %a: fp8 0x%02x, int8 %d", x, s, q8[i], i8[i])) }
            }
            XCTAssertEqual(bad, 0, "scale \(s)")
        }
    }

    /// Every FP8 code and INT8 value times each scale, rounded to D then to each target.
    func testDequantizeAllCodes() {
        typealias Kernel16 = (UnsafePointer<UInt8>, Int, Int, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<UInt16>, Int) -> Void
        typealias Kernel32 = (UnsafePointer<UInt8>, Int, Int, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int) -> Void
        let codes = (0...0xFF).map { UInt8($0) }
        let e4m3 = { (c: UInt8) in FloatBits.e4m3ToF32(c) }
        let int8 = { (c: UInt8) in Float(Int8(bitPattern: c)) }
        // (label, decode, D, kernel to bf16, to f16, to f32); the i8 kernels read the same bytes as Int8.
        func i8k16(_ f: @escaping (UnsafePointer<Int8>, Int, Int, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<UInt16>, Int) -> Void) -> Kernel16 {
            { q, r, c, l, s, st, o, lo in q.withMemoryRebound(to: Int8.self, capacity: r * l) { f($0, r, c, l, s, st, o, lo) } }
        }
        func i8k32(_ f: @escaping (UnsafePointer<Int8>, Int, Int, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int) -> Void) -> Kernel32 {
            { q, r, c, l, s, st, o, lo in q.withMemoryRebound(to: Int8.self, capacity: r * l) { f($0, r, c, l, s, st, o, lo) } }
        }
        let cases: [(String, (UInt8) -> Float, D, Kernel16, Kernel16, Kernel32)] = [
            ("e4m3 bf16", e4m3, .bf16, dsc_ct_dequantize_e4m3_bf16_bf16, dsc_ct_dequantize_e4m3_bf16_f16, dsc_ct_dequantize_e4m3_bf16_f32),
            ("e4m3 f16", e4m3, .f16, dsc_ct_dequantize_e4m3_f16_bf16, dsc_ct_dequantize_e4m3_f16_f16, dsc_ct_dequantize_e4m3_f16_f32),
            ("e4m3 f32", e4m3, .f32, dsc_ct_dequantize_e4m3_f32_bf16, dsc_ct_dequantize_e4m3_f32_f16, dsc_ct_dequantize_e4m3_f32_f32),
            ("i8 bf16", int8, .bf16, i8k16(dsc_ct_dequantize_i8_bf16_bf16), i8k16(dsc_ct_dequantize_i8_bf16_f16), i8k32(dsc_ct_dequantize_i8_bf16_f32)),
            ("i8 f16", int8, .f16, i8k16(dsc_ct_dequantize_i8_f16_bf16), i8k16(dsc_ct_dequantize_i8_f16_f16), i8k32(dsc_ct_dequantize_i8_f16_f32)),
            ("i8 f32", int8, .f32, i8k16(dsc_ct_dequantize_i8_f32_bf16), i8k16(dsc_ct_dequantize_i8_f32_f16), i8k32(dsc_ct_dequantize_i8_f32_f32)),
        ]
        // 16 rows of 16 codes, leading dimensions 19 (input) and 21 (output); per-row scales.
        let R = 16, C = 16, ld = 19, ldo = 21
        var q = [UInt8](repeating: 0, count: R * ld)
        for r in 0..<R { for c in 0..<C { q[r * ld + c] = UInt8(r * C + c) } }
        let scaleList = Self.scales + [1e30, 0x1p-130]
        for (label, decode, d, to16b, to16h, to32) in cases {
            for step in [0, 1] {
                for (si, s) in scaleList.enumerated() {
                    let rowScales = (0..<R).map { step == 0 ? s : scaleList[($0 + si) % scaleList.count] }
                    var b = [UInt16](repeating: 0xBEEF, count: R * ldo), h = b
                    var f = [Float](repeating: 7, count: R * ldo)
                    to16b(q, R, C, ld, rowScales, step, &b, ldo)
                    to16h(q, R, C, ld, rowScales, step, &h, ldo)
                    to32(q, R, C, ld, rowScales, step, &f, ldo)
                    for r in 0..<R {
                        for c in 0..<ldo {
                            let i = r * ldo + c
                            if c >= C {
                                XCTAssertTrue(b[i] == 0xBEEF && h[i] == 0xBEEF && f[i] == 7, "\(label): padding overwritten")
                                continue
                            }
                            let v = Self.round(decode(codes[r * C + c]) * rowScales[r], d)
                            let what = "\(label) code 0x\(String(r * C + c, radix: 16)) scale \(rowScales[r])"
                            XCTAssertEqual(b[i], FloatBits.f32ToBF16(v), "\(what) → bf16")
                            XCTAssertEqual(h[i], FloatBits.f32ToF16(v), "\(what) → f16")
                            XCTAssertEqual(f[i].bitPattern, v.bitPattern, "\(what) → f32")
                        }
                    }
                }
            }
        }
    }

    /// The whole quantizer (amax, scales in D, parallel bands over the kernels) against the scalar
    /// formulas on matrices whose rows span magnitudes, with an all-zero row and -0 entries.
    func testQuantizerMatchesScalarFormulas() throws {
        var rng = SplitMix64(seed: 23)
        let rows = 300, cols = 203
        for (format, d) in [(FloatFormat.bf16, D.bf16), (.f16, .f16), (.f32, .f32)] {
            var w = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows {
                let mag = Float(bitPattern: UInt32(110 + r % 30) << 23)
                for c in 0..<cols { w[r * cols + c] = Self.round(mag * (Float(rng.next() % 2001) / 1000 - 1), d) }
            }
            for c in 0..<cols { w[7 * cols + c] = 0 }
            for c in 0..<10 { w[9 * cols + c] = -0.0 }
            let bytes: [UInt8]
            switch format {
            case .bf16: bytes = w.flatMap { v -> [UInt8] in let b = FloatBits.f32ToBF16(v); return [UInt8(b & 0xFF), UInt8(b >> 8)] }
            case .f16: bytes = w.flatMap { v -> [UInt8] in let b = FloatBits.f32ToF16(v); return [UInt8(b & 0xFF), UInt8(b >> 8)] }
            default: bytes = w.f32Bytes
            }
            for target in [WeightEncoding.Element.e4m3, .int8] {
                for perChannel in [false, true] {
                    var q = [UInt8](repeating: 0, count: rows * cols)
                    var scales = [Float](repeating: 0, count: rows)
                    try bytes.withUnsafeBytes { src in
                        try q.withUnsafeMutableBytes { qp in
                            try CompressedTensorsQuantizer.quantize(name: "w", src: src.baseAddress!, format: format, rows: rows, cols: cols,
                                                                    perChannel: perChannel, target: target, q: qp.baseAddress!, scalesOut: &scales)
                        }
                    }
                    let half = Self.round(target == .e4m3 ? 448 : 127.5, d)
                    let eps: Float = d == .bf16 ? 0x1p-7 : d == .f16 ? 0x1p-10 : .ulpOfOne
                    func scale(_ amax: Float) -> Float { let s = Self.round(amax / half, d); return s == 0 ? eps : s }
                    let rowAmax = (0..<rows).map { r in w[r * cols..<(r + 1) * cols].reduce(Float(0)) { max($0, abs($1)) } }
                    let expectedScales = perChannel ? rowAmax.map(scale) : [scale(rowAmax.max()!)]
                    XCTAssertEqual(Array(scales.prefix(expectedScales.count)).map(\.bitPattern), expectedScales.map(\.bitPattern), "\(format) \(target) perChannel \(perChannel)")
                    var bad = 0
                    for r in 0..<rows {
                        let s = expectedScales[perChannel ? r : 0]
                        for c in 0..<cols {
                            let want = target == .e4m3 ? Self.fp8(w[r * cols + c], s, d) : UInt8(bitPattern: Self.int8(w[r * cols + c], s, d))
                            if q[r * cols + c] != want { bad += 1 }
                        }
                    }
                    XCTAssertEqual(bad, 0, "\(format) \(target) perChannel \(perChannel)")
                    if target == .e4m3 { XCTAssertEqual(q[9 * cols], 0x00, "-0 weight → FP8 +0") }
                }
            }
        }
    }
}
