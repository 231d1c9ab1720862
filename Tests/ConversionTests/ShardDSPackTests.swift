import Foundation
import JSON
import TestSupport
import XCTest

/// `shard --format dspack` (issue 17, with .dspack): one `rank-…/model.dspack` per rank. The packs
/// are read back by the spec's Python reader (Formats/python/dspack, every checksum verified) in
/// `Tests/Reference/shard_gather.py`, which gathers the slices its embedded rank.json describes
/// and compares them bit for bit with the source read by `safetensors`, checks the embedded
/// config.json and side files against the source's, and each pack's `metadata.parallel` against
/// §6's arithmetic written out there. The engine runs the packed split rank by rank against
/// transformers' golden logits; `verify OUT` checks the packs as one plan's ranks.
final class ShardDSPackTests: XCTestCase {
    @discardableResult
    private func shard(_ input: String, _ out: String, _ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CLI.Result {
        let r = try CLI.run(["shard", input, out, "-q", "--format", "dspack"] + args)
        XCTAssertEqual(r.status, 0, "shard \(args): \(r.stderr)", file: file, line: line)
        return r
    }

    /// Rank folders hold exactly one pack each, and the packs gather to the source bit for bit
    /// under TP, PP and EP (both placements); `unpack` of each rank's pack gives back the
    /// safetensors rank folder, which gathers too.
    func testPacksGatherBitExact() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-dspack")
        let cases: [(String, [String], Int, Int, Int, String, [[Int]])] = [
            (CV.deepseek, ["--tp", "2", "--pp", "2", "--ep", "2", "--expert-placement", "round-robin"], 2, 2, 2, "round-robin", [[0, 1], [2]]),
            (CV.deepseek, ["--tp", "4", "--ep", "4"], 4, 1, 4, "contiguous", [[0, 1, 2]]),
            (CV.qwen2, ["--tp", "2"], 2, 1, 1, "contiguous", [[0, 1]]),
        ]
        for (i, c) in cases.enumerated() {
            let out = tmp.appending("o\(i)").path
            try shard(c.0, out, c.1)
            let folders = try CV.files(out).filter { !$0.hasPrefix(".") }
            XCTAssertEqual(folders.count, c.2 * c.3)
            for f in folders { XCTAssertEqual(try CV.files(out + "/" + f), ["model.dspack"], f) }
            try CV.gatherShards(c.0, out, tp: c.2, pp: c.3, ep: c.4, placement: c.5, layers: c.6, format: "dspack")
        }
        // unpack: each rank's pack back to a safetensors rank folder (with its rank.json).
        let packed = tmp.appending("o0").path, unpacked = tmp.appending("u0").path
        for f in try CV.files(packed) where f.hasPrefix("rank-") {
            let r = try CLI.run(["unpack", packed + "/" + f + "/model.dspack", unpacked + "/" + f, "-q"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        try CV.gatherShards(CV.deepseek, unpacked, tp: 2, pp: 2, ep: 2, placement: "round-robin", layers: [[0, 1], [2]], format: "safetensors")
    }

    /// `shard --fp8 --format dspack` (quantized on the way) writes the same packs as `quantize
    /// --fp8` then `shard --format dspack`, and they gather to the quantized model.
    func testFP8OnTheWaySameBytes() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-dspack-fp8")
        let bf16 = tmp.appending("syn").path, fp8 = tmp.appending("syn-fp8").path
        _ = try PythonReference.run("make_shard_model.py", [bf16])
        try CV.quantize(bf16, fp8)
        let a = tmp.appending("a").path, b = tmp.appending("b").path
        try shard(fp8, a, ["--tp", "2", "--ep", "2"])
        try shard(bf16, b, ["--tp", "2", "--ep", "2", "--fp8"])
        for r in 0..<2 {
            let f = "/rank-0000\(r)-of-00002/model.dspack"
            XCTAssertEqual(try CV.bytes(a + f), try CV.bytes(b + f), f)
        }
        try CV.gatherShards(fp8, a, tp: 2, ep: 2, layers: [[0, 1]], format: "dspack")
    }

    /// The engine runs the packed split rank by rank (`dsconvert forward OUT`) and reproduces
    /// transformers' logits within 1e-4, as it does for the safetensors rank folders.
    func testForwardOnPackedSplitMatchesGoldens() throws {
        let tmp = try CVTempDir()
        for (sample, args) in [("deepseek-v3-tiny", ["--tp", "2"]), ("deepseek-v3-tiny", ["--tp", "2", "--pp", "2", "--ep", "2"]), ("qwen2-tiny", ["--tp", "2"])] {
            let out = tmp.sub(sample + args.joined())
            try shard(CV.root + "/Samples/" + sample, out, args)
            let ids = CV.root + "/Samples/golden/\(sample).safetensors"
            let golden = try XCTUnwrap(try CV.tensors(ids)["logits"])
            let logits = tmp.file(sample + args.joined() + ".logits.safetensors")
            let r = try CLI.run(["forward", out, "--ids", ids, "--out", logits, "--quiet"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let got = try XCTUnwrap(try CV.tensors(logits)["logits"])
            XCTAssertEqual(got.bytes.count, golden.bytes.count)
            var err: Float = 0
            for i in 0..<(golden.bytes.count / 4) { err = max(err, abs(got.float(i) - golden.float(i))) }
            print("packed tensor parallel \(sample) \(args): max abs error \(err) against transformers")
            XCTAssertLessThanOrEqual(err, 1e-4, "\(sample) \(args)")
        }
    }

    /// Two jobs plus merge-index give the packs of one process, byte for byte.
    func testJobsAndMergeIndexSameBytes() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-dspack-jobs")
        let one = tmp.appending("one").path, two = tmp.appending("two").path
        let args = ["--tp", "2", "--pp", "2", "--ep", "2"]
        try shard(CV.deepseek, one, args)
        for j in ["1", "0"] { try shard(CV.deepseek, two, args + ["--jobs", "2", "--job-index", j]) }
        let m = try CLI.run(["merge-index", two])
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertTrue(m.stderr.contains("packs embed config.json"), m.stderr)
        let packs = try CV.files(one).filter { $0.hasPrefix("rank-") }
        XCTAssertEqual(packs.count, 4)
        XCTAssertEqual(packs, try CV.files(two).filter { $0.hasPrefix("rank-") })
        for f in packs {
            XCTAssertEqual(try CV.files(two + "/" + f), ["model.dspack"])
            XCTAssertEqual(try CV.bytes(one + "/" + f + "/model.dspack"), try CV.bytes(two + "/" + f + "/model.dspack"), f)
        }
    }

    /// `verify OUT` checks every pack and that they are exactly one plan's ranks: a missing rank,
    /// a rank twice and a pack of another plan are each a `plan_mismatch` (exit 4).
    func testVerifyChecksThePacksAsOnePlan() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-dspack-verify")
        let tp2 = tmp.appending("tp2").path, tp4 = tmp.appending("tp4").path
        try shard(CV.deepseek, tp2, ["--tp", "2"])
        try shard(CV.deepseek, tp4, ["--tp", "4", "--ep", "4"])
        let ok = try CLI.run(["verify", tp2, "--json"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        let report = try JSONParser.parse(Array(ok.stdout.utf8))
        XCTAssertEqual(report["files"]?.arrayValue?.count, 2)
        XCTAssertEqual(report["plan_errors"]?.arrayValue?.count, 0)

        func mix(_ name: String, _ packs: [(String, String)]) throws -> String {
            let d = tmp.appending(name).path
            for (from, to) in packs {
                try FileManager.default.createDirectory(atPath: d + "/" + to, withIntermediateDirectories: true)
                try FileManager.default.copyItem(atPath: from + "/model.dspack", toPath: d + "/" + to + "/model.dspack")
            }
            return d
        }
        let r0 = tp2 + "/rank-00000-of-00002", r1 = tp2 + "/rank-00001-of-00002"
        let cases: [(String, [(String, String)], String)] = [
            ("missing", [(r1, "rank-00001-of-00002")], "missing rank 0"),
            ("twice", [(r0, "rank-00000-of-00002"), (r0, "rank-00001-of-00002")], "rank 0 again"),
            ("other-plan", [(r0, "rank-00000-of-00002"), (tp4 + "/rank-00001-of-00004", "rank-00001-of-00002")], "cut for TP 4"),
        ]
        for (name, packs, message) in cases {
            let d = try mix(name, packs)
            let r = try CLI.run(["verify", d, "--json"])
            XCTAssertEqual(r.status, 4, "\(name): \(r.stderr)")
            let j = try JSONParser.parse(Array(r.stdout.utf8))
            let errors = j["plan_errors"]?.arrayValue ?? []
            XCTAssertEqual(errors.count, 1, "\(name): \(r.stdout)")
            XCTAssertEqual(errors.first?["code"]?.stringValue, "plan_mismatch")
            XCTAssertTrue(errors.first?["message"]?.stringValue?.contains(message) ?? false, "\(name): \(r.stdout)")
            // Each pack on its own is intact.
            XCTAssertTrue(j["files"]?.arrayValue?.allSatisfy { $0["ok"] == .bool(true) } ?? false, name)
        }
        let empty = tmp.appending("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        XCTAssertNotEqual(try CLI.run(["verify", empty]).status, 0)
    }

    /// Options that do not go with packs are refused before anything is written.
    func testRefusals() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-dspack-refuse")
        for (i, args) in [["--tp", "2", "--ep", "2", "--layout", "deepseek"], ["--tp", "2", "--shard-size", "1MB"]].enumerated() {
            let out = tmp.appending("o\(i)").path
            let r = try CLI.run(["shard", CV.deepseek, out, "--format", "dspack"] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains("--format dspack") || r.stderr.contains("dspack"), "\(args): \(r.stderr)")
            XCTAssertFalse(CV.exists(out), "\(args): \(out) was created")
        }
        let r = try CLI.run(["shard", CV.deepseek, "--plan", "--format", "dspack"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--plan writes nothing"), r.stderr)
    }
}
