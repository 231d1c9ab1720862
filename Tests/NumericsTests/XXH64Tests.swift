import Foundation
import XCTest
import TestSupport
@testable import Numerics

/// XXH64 against the Python `xxhash` package (`numerics_reference.py xxhash`): random buffers of
/// every length 0…100 plus block-boundary and large lengths, seed 0 and a few non-zero seeds,
/// one-shot and streamed in odd-sized pieces.
final class XXH64Tests: XCTestCase {
    struct Case {
        let offset: Int, length: Int
        let seed: UInt64, hash: UInt64
    }

    nonisolated(unsafe) private static var reference: Result<(data: [UInt8], cases: [Case], xxh3: [(offset: Int, length: Int, hash: UInt64)]), Error>?

    private static func load() throws -> (data: [UInt8], cases: [Case]) {
        let r = try loadAll()
        return (r.data, r.cases)
    }

    private static func loadAll() throws -> (data: [UInt8], cases: [Case], xxh3: [(offset: Int, length: Int, hash: UInt64)]) {
        if reference == nil {
            reference = Result {
                let dir = try PythonReference.TemporaryDirectory(prefix: "xxh64-reference")
                defer { dir.remove() }
                try PythonReference.run("numerics_reference.py", ["xxhash", dir.path])
                let data = try PythonReference.load(dir.url, "xxh_data.bin", as: UInt8.self)
                let q = try PythonReference.load(dir.url, "xxh_cases.bin", as: UInt64.self)
                guard q.count % 4 == 0, !q.isEmpty else { throw PythonReference.Failure("xxh_cases.bin: bad size \(q.count)") }
                let cases = stride(from: 0, to: q.count, by: 4).map {
                    Case(offset: Int(q[$0]), length: Int(q[$0 + 1]), seed: q[$0 + 2], hash: q[$0 + 3])
                }
                let t = try PythonReference.load(dir.url, "xxh3_cases.bin", as: UInt64.self)
                guard t.count % 3 == 0, !t.isEmpty else { throw PythonReference.Failure("xxh3_cases.bin: bad size \(t.count)") }
                let xxh3 = stride(from: 0, to: t.count, by: 3).map { (offset: Int(t[$0]), length: Int(t[$0 + 1]), hash: t[$0 + 2]) }
                return (data, cases, xxh3)
            }
        }
        return try reference!.get()
    }

    override class func tearDown() {
        reference = nil
        super.tearDown()
    }

    func testOneShotMatchesPythonXXHash() throws {
        let (data, cases) = try Self.load()
        XCTAssertGreaterThan(cases.count, 110)
        XCTAssertEqual(Set(cases.map(\.length)).isSuperset(of: 0...100), true, "lengths 0…100 all covered")
        var failures = 0
        data.withUnsafeBytes { all in
            for c in cases {
                let buf = UnsafeRawBufferPointer(rebasing: all[c.offset..<(c.offset + c.length)])
                let h = XXH64.hash(buf, seed: c.seed)
                if h != c.hash {
                    failures += 1
                    if failures <= 8 {
                        XCTFail("XXH64.hash(length \(c.length), seed \(hex(c.seed))): expected \(hex(c.hash)), got \(hex(h))")
                    }
                }
                if c.seed == 0 {
                    XCTAssertEqual(XXH64.hex(h), String(format: "%016llx", c.hash), "hex, length \(c.length)")
                }
            }
        }
        XCTAssertEqual(failures, 0)
    }

    func testStreamingInOddPiecesMatchesPythonXXHash() throws {
        let (data, cases) = try Self.load()
        // Piece-size patterns: tiny, around the 32-byte stripe, and large odd pieces.
        let patterns: [[Int]] = [[1], [3, 5, 7], [31, 1, 33], [13, 63, 2, 65], [127, 4093]]
        var failures = 0
        data.withUnsafeBytes { all in
            for c in cases {
                let buf = UnsafeRawBufferPointer(rebasing: all[c.offset..<(c.offset + c.length)])
                // Byte-at-a-time over a megabyte is slow in debug builds; use it on the small cases.
                for (k, pattern) in patterns.enumerated() where !(k == 0 && c.length > 5000) {
                    var x = XXH64(seed: c.seed)
                    var pos = 0, j = 0
                    x.update(UnsafeRawBufferPointer(rebasing: buf[0..<0]))  // empty updates are no-ops
                    while pos < c.length {
                        let take = min(pattern[j % pattern.count], c.length - pos)
                        x.update(UnsafeRawBufferPointer(rebasing: buf[pos..<(pos + take)]))
                        pos += take
                        j += 1
                    }
                    let h = x.finalize()
                    if h != c.hash {
                        failures += 1
                        if failures <= 8 {
                            XCTFail("XXH64 streamed in pieces \(pattern) (length \(c.length), seed \(hex(c.seed))): expected \(hex(c.hash)), got \(hex(h))")
                        }
                    }
                }
            }
        }
        XCTAssertEqual(failures, 0)
    }

    /// `finalize` does not disturb the state: finalizing a prefix and carrying on gives both hashes.
    func testFinalizeMidStream() throws {
        let (data, cases) = try Self.load()
        data.withUnsafeBytes { all in
            let byLength = Dictionary(cases.filter { $0.seed == 0 }.map { ($0.length, $0) }, uniquingKeysWith: { a, _ in a })
            guard let long = byLength[1000] else { return XCTFail("no 1000-byte case") }
            let buf = UnsafeRawBufferPointer(rebasing: all[long.offset..<(long.offset + long.length)])
            var x = XXH64()
            for cut in [37, 100] {
                x.update(UnsafeRawBufferPointer(rebasing: buf[(cut == 37 ? 0 : 37)..<cut]))
                let expected = XXH64.hash(UnsafeRawBufferPointer(rebasing: buf[0..<cut]))
                XCTAssertEqual(x.finalize(), expected, "finalize after \(cut) bytes")
            }
            x.update(UnsafeRawBufferPointer(rebasing: buf[100...]))
            XCTAssertEqual(x.finalize(), long.hash)
        }
    }

    /// A copy hashes on independently from where the original was (the state is copied on write).
    func testCopiesAreIndependent() throws {
        let (data, cases) = try Self.load()
        guard let c = cases.first(where: { $0.seed == 0 && $0.length == 1000 }) else { return XCTFail("no 1000-byte case") }
        data.withUnsafeBytes { all in
            let buf = UnsafeRawBufferPointer(rebasing: all[c.offset..<(c.offset + c.length)])
            var a = XXH64()
            a.update(UnsafeRawBufferPointer(rebasing: buf[0..<400]))
            var b = a
            b.update(UnsafeRawBufferPointer(rebasing: buf[400...]))
            XCTAssertEqual(b.finalize(), c.hash, "the copy carried on to the whole buffer")
            XCTAssertEqual(a.finalize(), XXH64.hash(UnsafeRawBufferPointer(rebasing: buf[0..<400])), "the original still holds the prefix")
        }
    }

    /// XXH3-64 (packs, resume records) against Python `xxhash.xxh3_64`, one-shot and streamed.
    func testXXH3MatchesPythonXXHash() throws {
        let r = try Self.loadAll()
        XCTAssertGreaterThan(r.xxh3.count, 100)
        var failures = 0
        r.data.withUnsafeBytes { all in
            for c in r.xxh3 {
                let buf = UnsafeRawBufferPointer(rebasing: all[c.offset..<(c.offset + c.length)])
                let s = XXH3.Stream()
                var pos = 0, j = 0
                let pattern = [7, 240, 1, 4099]  // across XXH3's 16-byte, 240-byte and 1 KiB boundaries
                while pos < c.length {
                    let take = min(pattern[j % pattern.count], c.length - pos)
                    s.update(UnsafeRawBufferPointer(rebasing: buf[pos..<(pos + take)]))
                    pos += take; j += 1
                }
                for (how, h) in [("one-shot", XXH3.hash(buf)), ("streamed", s.digest)] where h != c.hash {
                    failures += 1
                    if failures <= 8 { XCTFail("XXH3 \(how), length \(c.length): expected \(hex(c.hash)), got \(hex(h))") }
                }
            }
        }
        XCTAssertEqual(failures, 0)
    }
}
