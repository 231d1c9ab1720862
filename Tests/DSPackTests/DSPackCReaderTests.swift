import Checkpoint
import Conversion
import DSPack
import Foundation
import JSON
import SystemIO
import Tensors
import TestSupport
import XCTest

/// Formats/dspack.h on packs written by dsconvert: every tensor is found by name, its pointer is
/// 4096-aligned, and the bytes there hash (XXH3-64, computed by the test driver with libxxhash) to
/// the hash of the same tensor read from the source safetensors by the SafeTensors reader; the
/// embedded files likewise; corrupted copies are named by dspack_verify.
final class DSPackCReaderTests: XCTestCase {
    private func check(source src: String, pack: String, line: UInt = #line) throws {
        _ = try Packer.pack(try Checkpoint(path: src), to: pack)
        let r = try CReader.read([pack])[0]
        XCTAssertEqual(r["open"]?.stringValue, "ok", "\(r)", line: line)
        XCTAssertEqual(r["verify"], .array([]), line: line)
        XCTAssertEqual(r["missing_found"], .bool(false), line: line)
        XCTAssertEqual(r["signed"], .bool(false), line: line)
        let entries = r["entries"]?.arrayValue ?? []
        let source = try Checkpoint.openStore(path: src)
        let tensors = entries.filter { $0["kind"]?.intValue == 0 }
        XCTAssertEqual(tensors.map { $0["name"]!.stringValue! }, source.tensorNames, line: line)
        for t in tensors {
            let name = t["name"]!.stringValue!
            let v = try source.view(name)
            XCTAssertEqual(t["dtype"]?.stringValue, v.dtype.rawValue, name, line: line)
            XCTAssertEqual(t["shape"]?.arrayValue?.map(\.intValue), v.info.shape.map { $0 }, name, line: line)
            XCTAssertEqual(t["size"]?.intValue, v.bytes.count, name, line: line)
            XCTAssertEqual(t["aligned"], .bool(true), name, line: line)
            XCTAssertEqual(t["found"], .bool(true), name, line: line)
            XCTAssertEqual(t["xxh3"]?.stringValue, hex(Checksums.xxh3(v.bytes)), name, line: line)
        }
        for f in entries where f["kind"]?.intValue == 1 {
            let name = f["name"]!.stringValue!
            let bytes = try Sys.readFile(src + "/" + name)
            XCTAssertEqual(f["xxh3"]?.stringValue, bytes.withUnsafeBytes { hex(Checksums.xxh3($0)) }, name, line: line)
            XCTAssertEqual(f["found"], .bool(true), name, line: line)
        }
        XCTAssertEqual(Set(r["verify_entry"]?.arrayValue?.compactMap(\.stringValue) ?? []), ["ok"], line: line)

        // One byte changed in two tensors and in one gap: dspack_verify names all three, in file order.
        var b = try Sys.readFile(pack)
        let victims = [tensors[1], tensors[tensors.count - 1]]
        for t in victims { b[t["offset"]!.intValue! + t["size"]!.intValue! / 2] ^= 0x10 }
        let gapped = tensors.first { $0["size"]!.intValue! % 4096 != 0 }!
        let gapAt = gapped["offset"]!.intValue! + gapped["size"]!.intValue! + 1
        b[gapAt] = 0xEE
        let bad = pack + ".bad.dspack"
        try AtomicFile.write(b, to: bad)
        let rb = try CReader.read([bad])[0]
        var expected: [[JSONValue]] = victims.map { [.string("checksum_mismatch"), $0["name"]!, $0["offset"]!] }
        expected.append([.string("padding_nonzero"), gapped["name"]!, .int(gapAt)])
        expected.sort { $0[2].intValue! < $1[2].intValue! }
        XCTAssertEqual(rb["verify"]?.arrayValue?.map { $0.arrayValue! }, expected, line: line)
        XCTAssertEqual(rb["verify_entry"]?.arrayValue?.filter { $0 == .string("checksum_mismatch") }.count, 2, line: line)
    }

    private func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    func testDeepSeekSample() throws {
        let dir = try STTemporaryDirectory("dspack-c")
        try check(source: STFixtures.samplesDirectory + "/deepseek-v3-tiny", pack: dir.file("ds.dspack"))
    }

    func testQwen2Sample() throws {
        let dir = try STTemporaryDirectory("dspack-c")
        try check(source: STFixtures.samplesDirectory + "/qwen2-tiny", pack: dir.file("qwen2.dspack"))
    }

    /// A synthetic checkpoint in three shards with FP8 block weights and their scales.
    func testSyntheticQuantizedCheckpoint() throws {
        let dir = try STTemporaryDirectory("dspack-c")
        let src = dir.file("model")
        var o = SyntheticCheckpoint.Options()
        o.shards = 3
        _ = try SyntheticCheckpoint.write(ModelBlueprint(kind: .deepseekV3, scale: 64, layers: 2), to: src, options: o)
        try check(source: src, pack: dir.file("synthetic.dspack"))
    }

    /// Every header digest the C reader's embedded SHA-256 computes agrees with OpenSSL's.
    func testEmbeddedSHA256AgreesWithOpenSSLOnManyHeaderSizes() throws {
        let dir = try STTemporaryDirectory("dspack-c")
        var paths: [String] = []
        // header_end takes every value mod 64: every way the final SHA-256 block can be padded.
        for extra in 0..<64 {
            let p = dir.file("h\(extra).dspack")
            let w = try DSPackWriter(path: p, tensors: [DSPackWriter.Tensor(TensorSpec(name: "t", dtype: .u8, shape: [3]))], files: [],
                                     metadata: .object([("pad", .string(String(repeating: "x", count: extra)))]))
            try w.write("t", [1, 2, 3])
            try w.finish()
            paths.append(p)
        }
        for ossl in [false, true] {
            let r = try CReader.read(paths, opensslSHA: ossl)
            XCTAssertEqual(r.map { $0["open"]?.stringValue }, Array(repeating: "ok", count: paths.count), "\(r)")
        }
    }
}
