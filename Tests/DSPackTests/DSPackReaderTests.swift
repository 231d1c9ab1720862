import Checkpoint
import Conversion
import DSPack
import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

/// The pack reader and writer against an independent parser (Tests/Reference/dspack_check.py:
/// struct, hashlib, xxhash, safetensors) and the open-time checks of Formats/dspack.md §7.1.
final class DSPackReaderTests: XCTestCase {
    private func packedModel(_ dir: STTemporaryDirectory, kind: ModelBlueprint.Kind = .deepseekV3) throws -> (String, String) {
        let src = dir.file("model")
        var o = SyntheticCheckpoint.Options()
        o.shards = 3
        _ = try SyntheticCheckpoint.write(ModelBlueprint(kind: kind, scale: 64, layers: 2), to: src, options: o)
        try Sys.copyFile(from: STFixtures.samplesDirectory + "/tokenizer.json", to: src + "/tokenizer.json")
        let pack = dir.file("model.dspack")
        _ = try Packer.pack(try Checkpoint(path: src), to: pack)
        return (src, pack)
    }

    func testPackMatchesIndependentParserAndSource() throws {
        let dir = try STTemporaryDirectory("dspack")
        let (src, pack) = try packedModel(dir)
        let out = try PythonReference.run("dspack_check.py", [pack, src])
        guard case .object? = try? JSONParser.parse(out) else { return XCTFail("no report: \(out)") }
        let report = try JSONParser.parse(out)
        XCTAssertEqual(report["files"], .array([.string("config.json"), .string("tokenizer.json")]))
        // Hand-read from the name: layer 2 (the MTP layer), routed expert 3.
        XCTAssertEqual(report["layers"]?["model.layers.2.mlp.experts.3.up_proj.weight"], .int(2))
        XCTAssertEqual(report["experts"]?["model.layers.2.mlp.experts.3.up_proj.weight"], .int(3))
        XCTAssertEqual(report["layers"]?["model.embed_tokens.weight"], .int(-1))

        // Through the seam: every tensor's bytes equal the source's, zero-copy at 4096 boundaries.
        let store = try Checkpoint.openStore(path: pack)
        XCTAssertEqual(store.formatName, "dspack")
        let source = try Checkpoint.openStore(path: src)
        XCTAssertEqual(store.tensorNames, source.tensorNames)
        for n in store.tensorNames {
            let v = try store.view(n), w = try source.view(n)
            XCTAssertEqual(v.info.shape, w.info.shape)
            XCTAssertEqual(v.dtype, w.dtype)
            XCTAssertTrue(v.bytes.elementsEqual(w.bytes), n)
            if let b = v.bytes.baseAddress { XCTAssertEqual(Int(bitPattern: b) % 4096, 0, n) }
        }
        XCTAssertEqual(try store.sideFile("config.json"), try Sys.readFile(src + "/config.json"))
        let c = try Checkpoint(path: pack)
        XCTAssertEqual(c.architecture, try Checkpoint(path: src).architecture)
        XCTAssertEqual(c.roles.count, try Checkpoint(path: src).roles.count)
    }

    // MARK: open-time checks (§7.1)

    private func expectOpen(_ bytes: [UInt8], _ code: DSPackError.Code, _ dir: STTemporaryDirectory, line: UInt = #line) {
        let p = dir.file("bad-\(code.rawValue)-\(line).dspack")
        try! AtomicFile.write(bytes, to: p)
        XCTAssertThrowsError(try DSPackFile(path: p), line: line) { e in
            XCTAssertEqual((e as? DSPackError)?.kind, code, "\(e)", line: line)
            XCTAssertEqual((e as? DSPackError)?.code, "dspack." + code.rawValue, line: line)
        }
    }

    /// Rewrites the digest after an edit to the header, so the checks after the digest are reached.
    private func redigest(_ b: inout [UInt8]) {
        let h = b.withUnsafeBytes { r -> Int in
            func u64(_ o: Int) -> Int { Int(r.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
            return 64 + u64(16) * Int(r.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) + u64(24) + u64(32)
        }
        b.replaceSubrange(h..<h + 32, with: Checksums.sha256(Array(b[0..<h])))
    }

    private func setU64(_ b: inout [UInt8], _ at: Int, _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { b.replaceSubrange(at..<at + 8, with: $0) }
    }

    func testOpenRejectsCorruptionWithTheSpecsCodes() throws {
        let dir = try STTemporaryDirectory("dspack")
        let (_, pack) = try packedModel(dir, kind: .qwen2)
        let good = try Sys.readFile(pack)
        XCTAssertNoThrow(try DSPackFile(path: pack))
        let count = Int(good.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self) })
        let headerEnd = 64 + count * 128 + Int(good.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self) })
            + Int(good.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 32, as: UInt64.self) })

        expectOpen(Array(good[0..<40]), .truncated, dir)
        var b = good; b[0] = 0x88; expectOpen(b, .badMagic, dir)
        b = good; b[8] = 2; expectOpen(b, .unsupportedVersion, dir)
        b = good; b[12] = 100; expectOpen(b, .headerSize, dir)
        // A mutated header length: past the file, or inside it (the digest is then read elsewhere).
        b = good; setU64(&b, 32, 1 << 40); expectOpen(b, .headerSize, dir)
        b = good; setU64(&b, 32, UInt64.max); expectOpen(b, .headerSize, dir)
        b = good; setU64(&b, 16, UInt64(count - 1)); expectOpen(b, .headerDigest, dir)
        // One flipped byte in each part of the header and in the digest.
        for at in [10, 64 + 5, 64 + count * 128 + 3, headerEnd - 2, headerEnd, headerEnd + 31] {
            b = good; b[at] ^= 0x01; expectOpen(b, .headerDigest, dir)
        }
        b = good; b[headerEnd + 32] = 1; expectOpen(b, .paddingNonzero, dir)
        expectOpen(Array(good[0..<(good.count - 4096)]), .truncated, dir)
        b = good + [UInt8](repeating: 0, count: 5); expectOpen(b, .trailerInvalid, dir)
        // Entries, with the digest rewritten so the entry checks are reached.
        b = good; setU64(&b, 64, UInt64(good.count + 4096)); redigest(&b); expectOpen(b, .entryOutOfBounds, dir)
        b = good; setU64(&b, 64, 1 << 62); redigest(&b); expectOpen(b, .entryOutOfBounds, dir)
        b = good; setU64(&b, 64 + 128, good.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 64, as: UInt64.self) }); redigest(&b); expectOpen(b, .entryOverlap, dir)
        b = good; setU64(&b, 64, good.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 64, as: UInt64.self) } + 8); redigest(&b); expectOpen(b, .entryMisaligned, dir)
        b = good; b[64 + 33] = 22; redigest(&b); expectOpen(b, .entryInvalid, dir)
        b = good; setU64(&b, 64 + 8, 3); redigest(&b); expectOpen(b, .entryInvalid, dir)
        b = good; setU64(&b, 56, 1); redigest(&b); expectOpen(b, .headerInvalid, dir)
    }

    func testEmbeddedFileChecksumIsCheckedOnRead() throws {
        let dir = try STTemporaryDirectory("dspack")
        let (_, pack) = try packedModel(dir, kind: .qwen2)
        var b = try Sys.readFile(pack)
        let store = try DSPackFile(path: pack)
        let cfg = store.entries.first { $0.name == "config.json" }!
        b[cfg.dataOffset + 1] ^= 0x20
        try AtomicFile.write(b, to: pack)
        let bad = try DSPackFile(path: pack)
        XCTAssertThrowsError(try bad.sideFile("config.json")) { XCTAssertEqual(($0 as? DSPackError)?.kind, .checksumMismatch) }
    }
}
