import DSPack
import Foundation
import SystemIO
import TestSupport
import XCTest

/// `--verify` on load: every command that opens a checkpoint runs on a pack with one flipped data
/// byte when only the header digest is checked (the digest does not cover the data, spec §7), and
/// with `--verify` refuses it before using it, exit 4, naming the corrupted tensor and writing
/// nothing.
final class DSPackLoadVerifyTests: XCTestCase {
    private func run(_ args: [String]) throws -> (Int32, String) {
        let (s, out, err) = try CReader.run(try BuiltExecutable.path("dsconvert"), args + ["--threads", "2"])
        return (s, out + err)
    }

    /// `pack` of `source` with the lowest byte of element 0 of `tensor` flipped (a small change:
    /// the bit of least weight of a BF16, or of an FP8 code that stays finite).
    private func corruptedPack(_ source: String, tensor: String, _ dir: STTemporaryDirectory, name: String) throws -> String {
        let pack = dir.file(name + "-good.dspack")
        XCTAssertEqual(try run(["pack", source, pack, "--quiet"]).0, 0)
        let e = try XCTUnwrap(try DSPackFile(path: pack).entry(tensor))
        var b = try Sys.readFile(pack)
        b[e.dataOffset] ^= (b[e.dataOffset] & 0x7F) == 0x7E ? 0x02 : 0x01
        let bad = dir.file(name + ".dspack")
        try AtomicFile.write(b, to: bad)
        Sys.unlink(pack)
        return bad
    }

    func testEveryCommandRunsWithoutVerifyAndRefusesWithIt() throws {
        let dir = try STTemporaryDirectory("dspack-load-verify")
        let qwen = STFixtures.samplesDirectory + "/qwen2-tiny"
        let tensor = "model.layers.0.mlp.down_proj.weight"
        let bad = try corruptedPack(qwen, tensor: tensor, dir, name: "bf16")
        let fp8 = dir.file("fp8")
        XCTAssertEqual(try run(["quantize", "--fp8", qwen, fp8, "--quiet"]).0, 0)
        let bad8 = try corruptedPack(fp8, tensor: tensor, dir, name: "fp8")
        let text = dir.file("text.txt")
        let sample = try String(contentsOfFile: STFixtures.samplesDirectory + "/eval.txt", encoding: .utf8)
        try String(sample.prefix(600)).write(toFile: text, atomically: true, encoding: .utf8)
        let ids = STFixtures.samplesDirectory + "/golden/qwen2-tiny.safetensors"
        // Each command: its arguments, with OUT standing for a fresh output path.
        let commands: [(String, [String])] = [
            ("inspect", ["inspect", bad, "--summary"]),
            ("quantize", ["quantize", "--fp8", bad, "OUT", "--quiet"]),
            ("dequantize", ["dequantize", bad8, "OUT", "--quiet"]),
            ("forward", ["forward", bad, "--ids", ids, "--out", "OUT", "--quiet"]),
            ("generate", ["generate", bad, "--prompt", "The", "--max-tokens", "2", "--quiet"]),
            ("eval", ["eval", bad, "--text", text, "--ctx", "32", "--quiet"]),
            ("eval --ref", ["eval", qwen, "--ref", bad, "--text", text, "--ctx", "32", "--quiet"]),
            ("shard", ["shard", bad, "OUT", "--tp", "2", "--quiet"]),
        ]
        for (i, (label, args)) in commands.enumerated() {
            let plain = dir.file("plain-\(i)"), checked = dir.file("checked-\(i)")
            let (s1, o1) = try run(args.map { $0 == "OUT" ? plain : $0 })
            XCTAssertEqual(s1, 0, "\(label) without --verify: \(o1)")
            let (s2, o2) = try run(args.map { $0 == "OUT" ? checked : $0 } + ["--verify"])
            XCTAssertEqual(s2, 4, "\(label) --verify: \(o2)")
            XCTAssertTrue(o2.contains("'\(tensor)'") && o2.contains("checksum_mismatch"), "\(label) --verify: \(o2)")
            XCTAssertFalse(Sys.exists(checked), "\(label) --verify wrote output")
            if args.contains("OUT") { XCTAssertTrue(Sys.exists(plain), label) }
        }
        // An intact pack passes --verify.
        let good = dir.file("good.dspack")
        XCTAssertEqual(try run(["pack", qwen, good, "--quiet"]).0, 0)
        XCTAssertEqual(try run(["inspect", good, "--summary", "--verify"]).0, 0)
    }
}
