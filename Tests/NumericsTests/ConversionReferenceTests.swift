import Foundation
import XCTest
import TestSupport
@testable import Numerics

/// Bit-exact checks of every conversion in Numerics against numpy / ml_dtypes (`astype`), using the
/// data written by Tests/Reference/numerics_reference.py: the scalar `FloatBits` functions, the
/// scalar `FloatFormat.load`/`store` pair (the bulk converter's tail), and the bulk
/// `FloatFormat.convert` (SIMD `Vector` kernels, multithreaded for large buffers).
final class ConversionReferenceTests: XCTestCase {
    private var savedThreads = 1

    override func setUp() {
        super.setUp()
        // Fixed worker count, so large buffers are split into several chunks (whose starts are not
        // multiples of 8 for the unaligned ranges) however many cores the machine has.
        savedThreads = Parallel.threads
        Parallel.threads = 4
    }

    override func tearDown() {
        Parallel.threads = savedThreads
        super.tearDown()
    }

    override class func tearDown() {
        ConversionReference.discard()
        RandomInputs.cached = nil
        super.tearDown()
    }

    // MARK: exhaustive: every BF16 / F16 / FP8 bit pattern

    func testExhaustiveBF16() throws { try checkExhaustive(.bf16, [.f32, .f16, .e4m3, .e5m2, .bf16]) }
    func testExhaustiveF16() throws { try checkExhaustive(.f16, [.f32, .bf16, .e4m3, .e5m2, .f16]) }
    func testExhaustiveE4M3() throws { try checkExhaustive(.e4m3, [.f32, .bf16, .f16, .e5m2, .e4m3]) }
    func testExhaustiveE5M2() throws { try checkExhaustive(.e5m2, [.f32, .bf16, .f16, .e4m3, .e5m2]) }

    /// All bit patterns of `src` to each target (and, for FP8 targets, the saturating variant).
    /// `src` → `src` (astype to the same dtype: a copy, NaN payloads kept) is a property of the bulk
    /// converter only; the scalar functions are conversions from f32 and canonicalise NaNs.
    private func checkExhaustive(_ src: FloatFormat, _ targets: [FloatFormat]) throws {
        let n = src.size == 1 ? 256 : 65536
        let input = RawBuffer(format: src, bytes: try ConversionReference.load("exhaustive_\(src.refName).bin", as: UInt8.self, count: n * src.size))
        for i in 0..<n where input.element(i) != UInt32(i) {
            return XCTFail("exhaustive_\(src.refName).bin: element \(i) is \(hex(input.element(i)))")
        }
        // The bulk path runs on > 1<<16 elements, so it is multithreaded: the patterns repeated.
        let tiles = src.size == 1 ? 257 : 2
        let bigInput = input.tiled(tiles, extra: 5)
        var checked = 0
        for dst in targets {
            for saturate in (dst == .e4m3 || dst == .e5m2) ? [false, true] : [false] {
                let name = "exhaustive_\(src.refName)_to_\(dst.refName)\(saturate ? "_sat" : "").bin"
                let expected = RawBuffer(format: dst, bytes: try ConversionReference.load(name, as: UInt8.self, count: n * dst.size))
                let label = "\(src)→\(dst)\(saturate ? " (saturating)" : "")"
                let inputHex = { (i: Int) in hex(input.element(i)) }

                if dst == src && !saturate {
                    checkBulk(bigInput, expected.tiled(tiles, extra: 5), saturate: false, label)
                    checked += n
                    continue
                }

                // Scalar FloatBits, and FloatFormat.load/store.
                var scalar = RawBuffer(format: dst, count: n)
                var viaStore = RawBuffer(format: dst, count: n)
                input.bytes.withUnsafeBytes { inp in
                    viaStore.bytes.withUnsafeMutableBytes { out in
                        for i in 0..<n {
                            FloatFormat.store(FloatFormat.load(inp.baseAddress!, src, i), dst, out.baseAddress!, i,
                                              saturate: saturate, fromF32: src == .f32)
                        }
                    }
                }
                for i in 0..<n {
                    scalar.set(i, scalarEncode(scalarDecode(UInt32(i), src), dst, source: src, saturate: saturate))
                }
                assertRawEqual(scalar, expected, "\(label) [scalar FloatBits]", input: inputHex)
                assertRawEqual(viaStore, expected, "\(label) [FloatFormat.load/store]", input: inputHex)

                // Bulk.
                checkBulk(bigInput, expected.tiled(tiles, extra: 5), saturate: saturate, label)
                checked += n
            }
        }
        XCTAssertGreaterThan(checked, 0)
    }

    // MARK: random float32 → BF16 / F16 / E4M3 / E5M2

    func testRandomF32ToBF16() throws { try checkRandom(.bf16, saturate: false) }
    func testRandomF32ToF16() throws { try checkRandom(.f16, saturate: false) }
    func testRandomF32ToE4M3() throws { try checkRandom(.e4m3, saturate: false) }
    func testRandomF32ToE5M2() throws { try checkRandom(.e5m2, saturate: false) }
    func testRandomF32ToE4M3Saturating() throws { try checkRandom(.e4m3, saturate: true) }
    func testRandomF32ToE5M2Saturating() throws { try checkRandom(.e5m2, saturate: true) }

    /// The random inputs, loaded once per class run.
    enum RandomInputs {
        nonisolated(unsafe) static var cached: RawBuffer?
        static func get() throws -> RawBuffer {
            if let c = cached { return c }
            let r = RawBuffer(format: .f32, bytes: try ConversionReference.load("random_f32.bin", as: UInt8.self))
            cached = r
            return r
        }
    }

    private func checkRandom(_ dst: FloatFormat, saturate: Bool) throws {
        let input = try RandomInputs.get()
        let n = input.count
        XCTAssertGreaterThanOrEqual(n, min(ConversionReference.randomCount, 1_000_000))
        let name = "random_to_\(dst.refName)\(saturate ? "_sat" : "").bin"
        let expected = RawBuffer(format: dst, bytes: try ConversionReference.load(name, as: UInt8.self, count: n * dst.size))
        let label = "f32→\(dst)\(saturate ? " (saturating)" : "")"
        let inputHex = { (i: Int) in hex(input.element(i)) }

        var scalar = RawBuffer(format: dst, count: n)
        var viaStore = RawBuffer(format: dst, count: n)
        var roundBad = 0
        var roundFirst = ""
        input.bytes.withUnsafeBytes { inpRaw in
            let inp = inpRaw.bindMemory(to: UInt32.self)
            scalar.bytes.withUnsafeMutableBytes { out in
                switch dst {
                case .bf16:
                    let o = out.bindMemory(to: UInt16.self)
                    for i in 0..<n { o[i] = FloatBits.f32ToBF16(Float(bitPattern: inp[i])) }
                case .f16:
                    let o = out.bindMemory(to: UInt16.self)
                    for i in 0..<n { o[i] = FloatBits.f32ToF16(Float(bitPattern: inp[i])) }
                case .e4m3:
                    let o = out.bindMemory(to: UInt8.self)
                    if saturate {
                        for i in 0..<n { o[i] = FloatBits.f32ToE4M3Saturating(Float(bitPattern: inp[i])) }
                    } else {
                        for i in 0..<n { o[i] = FloatBits.f32ToE4M3(Float(bitPattern: inp[i])) }
                    }
                case .e5m2:
                    let o = out.bindMemory(to: UInt8.self)
                    if saturate {
                        for i in 0..<n { o[i] = FloatBits.f32ToE5M2Saturating(Float(bitPattern: inp[i])) }
                    } else {
                        for i in 0..<n { o[i] = FloatBits.f32ToE5M2(Float(bitPattern: inp[i])) }
                    }
                case .f32:
                    XCTFail("not a narrowing target")
                }
            }
            viaStore.bytes.withUnsafeMutableBytes { out in
                for i in 0..<n {
                    FloatFormat.store(FloatFormat.load(inpRaw.baseAddress!, .f32, i), dst, out.baseAddress!, i, saturate: saturate)
                }
            }
            // FloatFormat.round(x) is the decoded value of the (expected) encoding of x.
            if !saturate { expected.bytes.withUnsafeBytes { exp in
                for i in 0..<n {
                    let e: UInt32 = dst.size == 1 ? UInt32(exp[i]) : UInt32(exp.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
                    let want = scalarDecode(e, dst).bitPattern
                    let got = dst.round(Float(bitPattern: inp[i])).bitPattern
                    if want != got {
                        roundBad += 1
                        if roundFirst.isEmpty { roundFirst = "input \(hex(inp[i])): expected \(hex(want)), got \(hex(got))" }
                    }
                }
            } }
        }
        XCTAssertEqual(roundBad, 0, "\(dst).round: \(roundBad) of \(n) differ; first \(roundFirst)")
        assertRawEqual(scalar, expected, "\(label) [scalar FloatBits]", input: inputHex)
        assertRawEqual(viaStore, expected, "\(label) [FloatFormat.load/store]", input: inputHex)
        checkBulk(input, expected, saturate: saturate, label)
    }

    /// f32 → f32 through the bulk path copies every bit pattern (NaN payloads included).
    func testRandomF32Identity() throws {
        let input = try RandomInputs.get()
        checkBulk(input, input, saturate: false, "f32→f32")
    }

    // MARK: INT8

    func testInt8RoundHalfEvenClamp() throws {
        let x = try ConversionReference.load("int8_f32.bin", as: UInt32.self)
        let n = x.count
        let full = try ConversionReference.load("int8_full.bin", as: Int8.self, count: n)
        let sym = try ConversionReference.load("int8_sym.bin", as: Int8.self, count: n)
        var gotFull = [Int8](repeating: 0, count: n)
        var gotDefault = [Int8](repeating: 0, count: n)
        var gotSym = [Int8](repeating: 0, count: n)
        for i in 0..<n {
            let f = Float(bitPattern: x[i])
            gotFull[i] = FloatBits.f32ToInt8(f, lo: -128, hi: 127)
            gotDefault[i] = FloatBits.f32ToInt8(f)
            gotSym[i] = FloatBits.f32ToInt8(f, lo: -127, hi: 127)
        }
        let inputHex = { (i: Int) in "\(hex(x[i])) (\(Float(bitPattern: x[i])))" }
        assertBitsEqual(gotFull, full, "f32→int8 [-128,127]", input: inputHex)
        assertBitsEqual(gotDefault, full, "f32→int8 default bounds", input: inputHex)
        assertBitsEqual(gotSym, sym, "f32→int8 [-127,127]", input: inputHex)
        XCTAssertGreaterThan(n, 200_000)
    }
}
