import Checkpoint
import Conversion
import DSPack
import Foundation
import SystemIO
import TestSupport
import XCTest

/// Spec §7 on real packs: random single-byte changes of the packed samples and of a larger
/// synthetic checkpoint (about 150 MB) are all found, and each is located: a change in the header
/// fails the open, one in an entry's data is that entry's `checksum_mismatch`, one in the padding
/// after an entry is `padding_nonzero` at that byte. Offsets are drawn from a fixed seed, a third
/// in the header, the rest over the data region.
final class DSPackRandomFlipTests: XCTestCase {
    private func flipAndLocate(_ path: String, flips: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) throws {
        let pristine = try DSPackFile(path: path)
        XCTAssertEqual(DSPackVerifier.verify(pristine).map(\.specCode), [], "the pack verifies before any change", file: file, line: line)
        let entries = pristine.entries, headerEnd = pristine.dataOffset, size = pristine.mapping.size
        let dataEnd = pristine.dataOffset + pristine.dataSize
        var rng = STRandom(seed: seed)
        let fd = try Sys.open(path, O_RDWR)
        defer { Sys.close(fd) }
        var kinds: [String: Int] = [:]
        for k in 0..<flips {
            let at = k % 3 == 0 ? Int(rng.next() % UInt64(headerEnd)) : headerEnd + Int(rng.next() % UInt64(size - headerEnd))
            let old = try readByte(fd, path, at)
            try writeByte(fd, path, at, old ^ UInt8(1 << (rng.next() % 8)))
            defer { try? writeByte(fd, path, at, old) }
            let found: [DSPackError]
            do { found = DSPackVerifier.verify(try DSPackFile(path: path)) } catch let e as DSPackError {
                XCTAssertLessThan(at, headerEnd, "only a header change fails the open (byte \(at), \(e.specCode))", file: file, line: line)
                kinds["open: " + e.specCode, default: 0] += 1
                continue
            }
            XCTAssertGreaterThanOrEqual(at, headerEnd, "a header change at byte \(at) passed the open", file: file, line: line)
            if let e = entries.first(where: { ($0.dataOffset..<($0.dataOffset + $0.dataSize)).contains(at) }) {
                XCTAssertEqual(found.map(\.specCode), ["checksum_mismatch"], "byte \(at) in \(e.name)", file: file, line: line)
                XCTAssertEqual(found.first?.tensor, e.name, "byte \(at)", file: file, line: line)
                kinds["checksum_mismatch", default: 0] += 1
            } else if at < dataEnd {
                XCTAssertEqual(found.map(\.specCode), ["padding_nonzero"], "byte \(at) in a gap", file: file, line: line)
                XCTAssertEqual(found.first?.offset, at, "the gap's changed byte is located", file: file, line: line)
                kinds["padding_nonzero", default: 0] += 1
            } else {
                XCTAssertFalse(found.isEmpty, "byte \(at) past the data region went unnoticed", file: file, line: line)
                kinds["after data: " + (found.first?.specCode ?? "-"), default: 0] += 1
            }
        }
        XCTAssertEqual(DSPackVerifier.verify(try DSPackFile(path: path)).map(\.specCode), [], "restored", file: file, line: line)
        XCTAssertEqual(kinds.values.reduce(0, +), flips)
        XCTAssertGreaterThan(kinds["checksum_mismatch"] ?? 0, 0, "\(kinds)", file: file, line: line)
        XCTAssertGreaterThan(kinds.filter { $0.key.hasPrefix("open: ") }.values.reduce(0, +), 0, "\(kinds)", file: file, line: line)
    }

    private func readByte(_ fd: Int32, _ path: String, _ at: Int) throws -> UInt8 {
        var b: UInt8 = 0
        guard pread(fd, &b, 1, off_t(at)) == 1 else { throw POSIXError(.EIO) }
        return b
    }

    private func writeByte(_ fd: Int32, _ path: String, _ at: Int, _ v: UInt8) throws {
        var b = v
        try withUnsafeBytes(of: &b) { try Sys.pwriteAll(fd, path: path, $0, offset: at) }
    }

    func testRandomFlipsOfThePackedSamples() throws {
        let dir = try STTemporaryDirectory("dspack-flips")
        for (i, name) in ["deepseek-v3-tiny", "qwen2-tiny", "llama-tiny"].enumerated() {
            let path = dir.file(name + ".dspack")
            _ = try Packer.pack(try Checkpoint(path: STFixtures.samplesDirectory + "/" + name), to: path)
            try flipAndLocate(path, flips: 120, seed: 100 + UInt64(i))
            Sys.unlink(path)
        }
    }

    func testRandomFlipsOfALargeSyntheticPack() throws {
        let dir = try STTemporaryDirectory("dspack-flips")
        let src = dir.file("model")
        var o = SyntheticCheckpoint.Options()
        o.shards = 4
        _ = try SyntheticCheckpoint.write(ModelBlueprint(kind: .qwen2, scale: 4, layers: 4), to: src, options: o)
        let path = dir.file("large.dspack")
        _ = try Packer.pack(try Checkpoint(path: src), to: path)
        let size = try Sys.stat(path).size
        XCTAssertGreaterThan(size, 100_000_000, "a pack of \(size) bytes")
        try flipAndLocate(path, flips: 30, seed: 7)
    }
}
