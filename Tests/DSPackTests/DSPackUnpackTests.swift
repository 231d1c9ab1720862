import DSPack
import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

/// `dsconvert unpack`: a pack (or its .dspack.zst transport file) back to the folder it was packed
/// from, compared with the original by the Python `safetensors` package
/// (Tests/Reference/unpack_check.py: every tensor's name, dtype, shape and bytes per shard, the
/// shards' __metadata__, the index's weight map, every side file byte for byte); a corrupted pack
/// is refused naming the tensor, and nothing is left under the output's name.
final class DSPackUnpackTests: XCTestCase {
    private func run(_ args: [String]) throws -> (Int32, String) {
        let (s, out, err) = try CReader.run(try BuiltExecutable.path("dsconvert"), args)
        return (s, out + err)
    }

    private func check(_ original: String, _ unpacked: String, line: UInt = #line) throws -> JSONValue {
        try JSONParser.parse(Array(try PythonReference.run("unpack_check.py", [original, unpacked]).utf8))
    }

    func testSamplesAndFP8RoundTripDirectAndThroughZstd() throws {
        let dir = try STTemporaryDirectory("dspack-unpack")
        let fp8 = dir.file("fp8")
        XCTAssertEqual(try run(["quantize", "--fp8", STFixtures.samplesDirectory + "/deepseek-v3-tiny", fp8, "--quiet"]).0, 0)
        // deepseek: five shards with an index; qwen2: one file; fp8: F8_E4M3 weights and F32 scales.
        for (name, source) in [("deepseek", STFixtures.samplesDirectory + "/deepseek-v3-tiny"),
                               ("qwen2", STFixtures.samplesDirectory + "/qwen2-tiny"), ("fp8", fp8)] {
            let pack = dir.file(name + ".dspack"), zst = dir.file(name + ".dspack.zst")
            XCTAssertEqual(try run(["pack", source, pack, "--quiet"]).0, 0)
            XCTAssertEqual(try run(["pack", "--zstd", source, zst, "--quiet"]).0, 0)
            let (s1, o1) = try run(["unpack", pack, dir.file(name + "-a"), "--json"])
            XCTAssertEqual(s1, 0, o1)
            let r1 = try JSONParser.parse(Array(o1.utf8))
            let ref = try check(source, dir.file(name + "-a"))
            XCTAssertEqual(r1["tensors"]?.intValue, ref["tensors"]?.intValue, name)
            XCTAssertGreaterThan(ref["tensors"]?.intValue ?? 0, 10, name)
            XCTAssertEqual(r1["restored"]?.boolValue, false)
            let (s2, o2) = try run(["unpack", zst, dir.file(name + "-b"), "--json"])
            XCTAssertEqual(s2, 0, o2)
            XCTAssertEqual(try JSONParser.parse(Array(o2.utf8))["restored"]?.boolValue, true)
            XCTAssertEqual(try check(source, dir.file(name + "-b"))["tensors"]?.intValue, ref["tensors"]?.intValue, name)
        }
        // The sharded sample comes back as five shards with an index; the reference saw them all.
        XCTAssertEqual(try dir.contents().filter { AtomicFile.isTemporary($0) }, [])
        XCTAssertTrue(try Sys.listDirectory(dir.file("deepseek-a")).contains("model.safetensors.index.json"))
        // An existing empty folder is filled; a folder holding anything is refused and left alone.
        try Sys.makeDirectory(dir.file("empty"))
        XCTAssertEqual(try run(["unpack", dir.file("qwen2.dspack"), dir.file("empty"), "--quiet"]).0, 0)
        _ = try check(STFixtures.samplesDirectory + "/qwen2-tiny", dir.file("empty"))
        try Sys.makeDirectory(dir.file("busy"))
        try AtomicFile.write(Array("mine".utf8), to: dir.file("busy/notes.txt"))
        let (s3, o3) = try run(["unpack", dir.file("qwen2.dspack"), dir.file("busy")])
        XCTAssertEqual(s3, 1, o3)
        XCTAssertEqual(try Sys.listDirectory(dir.file("busy")), ["notes.txt"])
        XCTAssertEqual(try Sys.readFile(dir.file("busy/notes.txt")), Array("mine".utf8))
    }

    func testCorruptedPackIsRefusedNamingTheTensorAndLeavesNothing() throws {
        let dir = try STTemporaryDirectory("dspack-unpack")
        let pack = dir.file("ds.dspack")
        XCTAssertEqual(try run(["pack", STFixtures.samplesDirectory + "/deepseek-v3-tiny", pack, "--quiet"]).0, 0)
        let p = try DSPackFile(path: pack)
        let good = try Sys.readFile(pack)
        let tensors = p.entries.filter { $0.kind == .tensor && $0.dataSize > 0 }
        // The preamble's sizes (§2.1): the padding runs from the digest's end to the data region.
        func le64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(good[at + $1]) << (8 * $1) } }
        let paddingStart = 64 + le64(16) * Int(le64(12) & 0xFFFF_FFFF) + le64(24) + le64(32) + 32
        XCTAssertLessThan(paddingStart, p.dataOffset)
        var cases: [(String, [UInt8], Int32, String)] = []
        for (k, e) in [tensors[0], tensors[tensors.count / 2], tensors[tensors.count - 1]].enumerated() {
            var b = good
            b[e.dataOffset + (e.dataSize - 1) * k / 2] ^= 0x10
            cases.append(("tensor \(e.name)", b, 4, "'\(e.name)'"))
        }
        var h = good
        h[100] ^= 0x01
        cases.append(("header", h, 1, "header_digest"))
        var pad = good
        pad[paddingStart] ^= 0x01
        cases.append(("padding", pad, 1, "padding_nonzero"))
        let file = p.entries.first { $0.kind == .file }!
        var f = good
        f[file.dataOffset] ^= 0x02
        cases.append(("embedded \(file.name)", f, 4, "'\(file.name)'"))
        for (label, bytes, status, needle) in cases {
            let bad = dir.file("bad.dspack")
            try AtomicFile.write(bytes, to: bad)
            let out = dir.file("out")
            let (s, o) = try run(["unpack", bad, out])
            XCTAssertEqual(s, status, "\(label): \(o)")
            XCTAssertTrue(o.contains(needle), "\(label): \(o)")
            XCTAssertFalse(Sys.exists(out), label)
            XCTAssertEqual(try dir.contents().sorted(), ["bad.dspack", "ds.dspack"], label)
            // Through the transport file: the restore's verification refuses it, again leaving nothing.
            if label.hasPrefix("tensor") {
                let z = dir.file("bad.dspack.zst")
                try DSPackTransport.compress(try DSPackFile(path: bad), to: z)
                let (s2, o2) = try run(["unpack", z, out])
                XCTAssertEqual(s2, 4, "\(label) (zst): \(o2)")
                XCTAssertTrue(o2.contains(needle), "\(label) (zst): \(o2)")
                XCTAssertFalse(Sys.exists(out), label)
                Sys.unlink(z)
            }
        }
    }
}
