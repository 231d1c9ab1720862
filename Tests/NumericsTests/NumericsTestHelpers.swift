import Foundation
import XCTest
import TestSupport
@testable import Numerics

/// The reference data written by `Tests/Reference/numerics_reference.py conversions`, generated
/// once per test process (the script takes about a second) and removed when the process ends.
enum ConversionReference {
    /// Random float32 inputs; override with DSCONVERT_NUMERICS_RANDOM_COUNT for a longer soak.
    static let randomCount: Int = {
        if let s = ProcessInfo.processInfo.environment["DSCONVERT_NUMERICS_RANDOM_COUNT"], let n = Int(s), n > 0 { return n }
        return 4_000_000
    }()
    static let seed = 20240531

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: Result<PythonReference.TemporaryDirectory, Error>?

    /// The directory with the reference files; throws (failing the calling test) when the script fails.
    static func directory() throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        if cached == nil {
            cached = Result {
                let dir = try PythonReference.TemporaryDirectory(prefix: "numerics-reference")
                try PythonReference.run(
                    "numerics_reference.py",
                    ["conversions", dir.path, "--count", String(randomCount), "--seed", String(seed)])
                return dir
            }
        }
        return try cached!.get().url
    }

    static func load<T>(_ name: String, as type: T.Type, count: Int? = nil) throws -> [T] {
        try PythonReference.load(try directory(), name, as: type, count: count)
    }

    /// Deletes the generated files (the test classes call this from `class func tearDown`; a later
    /// class regenerates them).
    static func discard() {
        lock.lock()
        defer { lock.unlock() }
        if case .success(let dir)? = cached { dir.remove() }
        cached = nil
    }
}

extension FloatFormat {
    /// File-name spelling used by the reference script.
    var refName: String { rawValue }
}

/// Bit patterns of any width as UInt32 for messages and the scalar reference loops.
@inline(__always) func hex<T: FixedWidthInteger>(_ v: T) -> String {
    let s = String(UInt64(truncatingIfNeeded: v) & (T.bitWidth == 64 ? ~0 : (1 << T.bitWidth) - 1), radix: 16, uppercase: true)
    return "0x" + String(repeating: "0", count: max(0, T.bitWidth / 4 - s.count)) + s
}

/// Compares `actual` with `expected` bit for bit. On mismatch fails once with the number of
/// differing elements and the first few, each with its index, input bits, expected and actual.
@discardableResult
func assertBitsEqual<T: FixedWidthInteger>(
    _ actual: UnsafeBufferPointer<T>, _ expected: UnsafeBufferPointer<T>, _ label: @autoclosure () -> String,
    input: (Int) -> String, maxReported: Int = 8, file: StaticString = #filePath, line: UInt = #line
) -> Bool {
    guard actual.count == expected.count else {
        XCTFail("\(label()): \(actual.count) results, expected \(expected.count)", file: file, line: line)
        return false
    }
    let n = actual.count
    if n == 0 || memcmp(actual.baseAddress!, expected.baseAddress!, n * MemoryLayout<T>.stride) == 0 { return true }
    var bad = 0
    var lines: [String] = []
    for i in 0..<n where actual[i] != expected[i] {
        bad += 1
        if lines.count < maxReported {
            lines.append("  [\(i)] input \(input(i)): expected \(hex(expected[i])), got \(hex(actual[i]))")
        }
    }
    XCTFail("\(label()): \(bad) of \(n) results differ; first:\n" + lines.joined(separator: "\n"), file: file, line: line)
    return false
}

func assertBitsEqual<T: FixedWidthInteger>(
    _ actual: [T], _ expected: [T], _ label: @autoclosure () -> String,
    input: (Int) -> String, file: StaticString = #filePath, line: UInt = #line
) {
    actual.withUnsafeBufferPointer { a in
        expected.withUnsafeBufferPointer { e in
            _ = assertBitsEqual(a, e, label(), input: input, file: file, line: line)
        }
    }
}

/// Scalar (FloatBits) decode of one element of `format`, given as its bit pattern.
func scalarDecode(_ bits: UInt32, _ format: FloatFormat) -> Float {
    switch format {
    case .f32: return Float(bitPattern: bits)
    case .bf16: return FloatBits.bf16ToF32(UInt16(truncatingIfNeeded: bits))
    case .f16: return FloatBits.f16ToF32(UInt16(truncatingIfNeeded: bits))
    case .e4m3: return FloatBits.e4m3ToF32(UInt8(truncatingIfNeeded: bits))
    case .e5m2: return FloatBits.e5m2ToF32(UInt8(truncatingIfNeeded: bits))
    }
}

/// Scalar (FloatBits) encode of f32 `v` to `format`, as ml_dtypes' `astype` from a source of
/// format `source`: for f16 targets a NaN from anything but f32 is the canonical 0x7E00 | sign.
func scalarEncode(_ v: Float, _ format: FloatFormat, source: FloatFormat, saturate: Bool = false) -> UInt32 {
    switch format {
    case .f32: return v.bitPattern
    case .bf16: return UInt32(FloatBits.f32ToBF16(v))
    case .f16:
        if v.isNaN && source != .f32 { return UInt32(FloatBits.f16CanonicalNaN(negative: v.sign == .minus)) }
        return UInt32(FloatBits.f32ToF16(v))
    case .e4m3: return UInt32(saturate ? FloatBits.f32ToE4M3Saturating(v) : FloatBits.f32ToE4M3(v))
    case .e5m2: return UInt32(saturate ? FloatBits.f32ToE5M2Saturating(v) : FloatBits.f32ToE5M2(v))
    }
}

/// A buffer of raw elements of one format (bit patterns widened to UInt32 only for messages).
struct RawBuffer {
    let format: FloatFormat
    var bytes: [UInt8]

    init(format: FloatFormat, count: Int) {
        self.format = format
        bytes = [UInt8](repeating: 0xA5, count: count * format.size)
    }

    init<T: FixedWidthInteger>(format: FloatFormat, elements: [T]) {
        precondition(MemoryLayout<T>.size == format.size)
        self.format = format
        bytes = elements.withUnsafeBytes { [UInt8]($0) }
    }

    init(format: FloatFormat, bytes: [UInt8]) {
        precondition(bytes.count % format.size == 0)
        self.format = format
        self.bytes = bytes
    }

    var count: Int { bytes.count / format.size }

    /// Writes bit pattern `v` (truncated to the element size) as element `i`.
    mutating func set(_ i: Int, _ v: UInt32) {
        let size = format.size
        bytes.withUnsafeMutableBytes { b in
            switch size {
            case 1: b[i] = UInt8(truncatingIfNeeded: v)
            case 2: b.storeBytes(of: UInt16(truncatingIfNeeded: v), toByteOffset: i * 2, as: UInt16.self)
            default: b.storeBytes(of: v, toByteOffset: i * 4, as: UInt32.self)
            }
        }
    }

    func element(_ i: Int) -> UInt32 {
        bytes.withUnsafeBytes { b in
            switch format.size {
            case 1: return UInt32(b[i])
            case 2: return UInt32(b.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))
            default: return b.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
            }
        }
    }

    /// `times` copies of the buffer followed by its first `extra` elements.
    func tiled(_ times: Int, extra: Int = 0) -> RawBuffer {
        var r = self
        r.bytes = []
        r.bytes.reserveCapacity(bytes.count * times + extra * format.size)
        for _ in 0..<times { r.bytes += bytes }
        r.bytes += bytes[0..<(extra * format.size)]
        return r
    }
}

/// Compares two raw buffers of the same format element for element.
func assertRawEqual(
    _ actual: RawBuffer, _ expected: RawBuffer, _ label: @autoclosure () -> String,
    input: (Int) -> String, file: StaticString = #filePath, line: UInt = #line
) {
    precondition(actual.format == expected.format)
    switch actual.format.size {
    case 1:
        assertBitsEqual(actual.bytes, expected.bytes, label(), input: input, file: file, line: line)
    case 2:
        let a = actual.bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        let e = expected.bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        assertBitsEqual(a, e, label(), input: input, file: file, line: line)
    default:
        let a = actual.bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        let e = expected.bytes.withUnsafeBytes { Array($0.bindMemory(to: UInt32.self)) }
        assertBitsEqual(a, e, label(), input: input, file: file, line: line)
    }
}

/// Runs the bulk `FloatFormat.convert` over `input[offset ..< offset+count]` into a fresh buffer.
func bulkConvert(_ input: RawBuffer, to: FloatFormat, offset: Int = 0, count: Int? = nil, saturate: Bool) -> RawBuffer {
    let n = count ?? (input.count - offset)
    var out = RawBuffer(format: to, count: n)
    input.bytes.withUnsafeBytes { src in
        out.bytes.withUnsafeMutableBytes { dst in
            FloatFormat.convert(
                src.baseAddress! + offset * input.format.size, from: input.format,
                to: dst.baseAddress!, to, count: n, saturate: saturate)
        }
    }
    return out
}

/// `buffer[offset ..< offset+count]` as a new buffer.
func slice(_ buffer: RawBuffer, offset: Int, count: Int) -> RawBuffer {
    var r = buffer
    let s = buffer.format.size
    r.bytes = Array(buffer.bytes[(offset * s)..<((offset + count) * s)])
    return r
}

/// Checks the bulk path on `input` (expected results `expected`) for: the whole buffer, an
/// unaligned sub-range of it (odd offset, length not a multiple of 8, so vector blocks and
/// multithreaded chunk starts are off the 8-element grid; at most `unalignedLimit` elements, still
/// above the multithreading threshold), and many short ranges that exercise the scalar tail and
/// the vector/tail boundary.
func checkBulk(
    _ input: RawBuffer, _ expected: RawBuffer, saturate: Bool, _ label: String,
    unalignedLimit: Int = 300_001, file: StaticString = #filePath, line: UInt = #line
) {
    let to = expected.format
    let n = input.count
    let inputHex = { (i: Int) in hex(input.element(i)) }
    assertRawEqual(bulkConvert(input, to: to, saturate: saturate), expected, "\(label) [bulk, all \(n)]",
                   input: inputHex, file: file, line: line)
    if n > 16 {
        let off = 3, cnt = min(n - 3 - 2, unalignedLimit)
        assertRawEqual(bulkConvert(input, to: to, offset: off, count: cnt, saturate: saturate),
                       slice(expected, offset: off, count: cnt), "\(label) [bulk, offset \(off) count \(cnt)]",
                       input: { inputHex($0 + off) }, file: file, line: line)
    }
    // Short ranges spread over the buffer (start, middle, end), at every offset mod 8.
    let counts = [0, 1, 2, 3, 5, 7, 8, 9, 11, 15, 16, 17, 23, 31, 33, 63, 65]
    for (k, cnt) in counts.enumerated() where cnt <= n {
        let off = min(n - cnt, (n / counts.count) * k + k % 8)
        assertRawEqual(bulkConvert(input, to: to, offset: off, count: cnt, saturate: saturate),
                       slice(expected, offset: off, count: cnt), "\(label) [bulk, offset \(off) count \(cnt)]",
                       input: { inputHex($0 + off) }, file: file, line: line)
    }
}
