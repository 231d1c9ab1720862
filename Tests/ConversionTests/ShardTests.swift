import Checkpoint
@testable import Conversion
import Foundation
import JSON
import Quantization
import Sharding
import TestSupport
import XCTest

/// `dsconvert shard` (hf layout): every plan is gathered back by an independent Python script
/// (`Tests/Reference/shard_gather.py`, numpy + safetensors) and compared byte for byte with the
/// source; its rule table, expert placement and the pipeline stages written by hand here are
/// checked against every rank folder.
final class ShardTests: XCTestCase {
    @discardableResult
    private func shard(_ input: String, _ out: String, _ args: [String]) throws -> CLI.Result {
        let r = try CLI.run(["shard", input, out, "-q"] + args)
        XCTAssertEqual(r.status, 0, "shard \(args): \(r.stderr)")
        return r
    }

    /// The BF16 samples under several plans. deepseek-v3-tiny's stages by hand: embedding 2 MiB,
    /// lm_head 2 MiB + norm; layer 0 (dense) ≈ 1.0 MiB, layers 1–2 (16 experts) ≈ 3.45 MiB each:
    /// at PP 2, [0, 1] | [2] gives max(6.5, 5.6) MiB, [0] | [1, 2] max(3.1, 9.0): the first.
    /// At PP 3 every stage has one layer.
    func testSamplesGatherBitExact() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard")
        let cases: [(String, [String], Int, Int, Int, String, [[Int]])] = [
            (CV.deepseek, ["--tp", "2"], 2, 1, 1, "contiguous", [[0, 1, 2]]),
            (CV.deepseek, ["--tp", "4", "--ep", "4"], 4, 1, 4, "contiguous", [[0, 1, 2]]),
            (CV.deepseek, ["--tp", "2", "--pp", "2", "--ep", "2", "--expert-placement", "round-robin"], 2, 2, 2, "round-robin", [[0, 1], [2]]),
            (CV.deepseek, ["--tp", "1", "--pp", "3"], 1, 3, 1, "contiguous", [[0], [1], [2]]),
            (CV.qwen2, ["--tp", "2", "--pp", "2"], 2, 2, 1, "contiguous", [[0], [1]]),
            (CV.llama, ["--tp", "2"], 2, 1, 1, "contiguous", [[0, 1]]),
        ]
        for (i, c) in cases.enumerated() {
            let out = tmp.appending("o\(i)").path
            try shard(c.0, out, c.1)
            try CV.gatherShards(c.0, out, tp: c.2, pp: c.3, ep: c.4, placement: c.5, layers: c.6)
        }
        // The experts of each rank, by hand: 16 experts over EP 4 contiguous, and EP 2 round-robin.
        for (i, r, want) in [(1, 2, Array(8..<12)), (2, 1, [1, 3, 5, 7, 9, 11, 13, 15]), (2, 2, [0, 2, 4, 6, 8, 10, 12, 14])] {
            let json = try CV.json(tmp.appending("o\(i)").path + "/" + ShardPlanner.folder(rank: r, of: i == 1 ? 4 : 4) + "/rank.json")
            XCTAssertEqual(json["experts"]?.arrayValue?.compactMap(\.intValue), want, "case \(i) rank \(r)")
        }
    }

    /// `shard --fp8` quantizes on the way: every rank folder (tensors, scale grids, index,
    /// config.json with DeepSeek's quantization_config, rank.json) and DeepSeek's layout are byte
    /// for byte those of `quantize --fp8` then `shard`, and they gather (shard_gather.py) to the
    /// quantized model; a split that would cut a 128-block is refused before anything is written.
    func testShardFP8QuantizesOnTheWay() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-fp8")
        let bf16 = tmp.appending("syn").path, fp8 = tmp.appending("syn-fp8").path
        _ = try PythonReference.run("make_shard_model.py", [bf16])
        try CV.quantize(bf16, fp8)
        for (i, args) in [["--tp", "2"], ["--tp", "2", "--pp", "2", "--ep", "2", "--keep-mtp"], ["--tp", "2", "--ep", "2", "--layout", "deepseek"]].enumerated() {
            let a = tmp.appending("a\(i)").path, b = tmp.appending("b\(i)").path
            try shard(fp8, a, args)
            try shard(bf16, b, args + ["--fp8"])
            let files = try FileManager.default.subpathsOfDirectory(atPath: a).filter { !$0.hasPrefix(".dsconvert") }.sorted()
            XCTAssertEqual(files, try FileManager.default.subpathsOfDirectory(atPath: b).filter { !$0.hasPrefix(".dsconvert") }.sorted(), "\(args)")
            var compared = 0
            for f in files where !((try? FileManager.default.attributesOfItem(atPath: a + "/" + f)[.type] as? FileAttributeType) == .typeDirectory) {
                XCTAssertEqual(try CV.bytes(a + "/" + f), try CV.bytes(b + "/" + f), "\(args): \(f)")
                compared += 1
            }
            XCTAssertGreaterThanOrEqual(compared, 3, "\(args): the rank files, index or model_args, config")
        }
        try CV.gatherShards(fp8, tmp.appending("b0").path, tp: 2, layers: [[0, 1]])
        let out = tmp.appending("refused").path
        let r = try CLI.run(["shard", CV.deepseek, out, "--tp", "2", "--fp8", "--json"])
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertEqual(r.code, "shard.block_misaligned", r.stdout)
        XCTAssertFalse(CV.exists(out))
    }

    /// Quantized inputs split consistently: a block-FP8 checkpoint whose partitions are multiples
    /// of 128 (Tests/Reference/make_shard_model.py, quantized by dsconvert) at TP 2 with EP 1 and
    /// EP 2 and its MTP layer kept (last stage); per-channel FP8 and INT8 of the samples at TP 2.
    func testQuantizedInputsGatherBitExact() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-q")
        let bf16 = tmp.appending("syn").path, fp8 = tmp.appending("syn-fp8").path
        _ = try PythonReference.run("make_shard_model.py", [bf16])
        try CV.quantize(bf16, fp8)
        var out = tmp.appending("a").path
        try shard(fp8, out, ["--tp", "2"])
        try CV.gatherShards(fp8, out, tp: 2, layers: [[0, 1]])
        out = tmp.appending("b").path
        try shard(fp8, out, ["--tp", "2", "--pp", "2", "--ep", "2", "--keep-mtp"])
        try CV.gatherShards(fp8, out, tp: 2, pp: 2, ep: 2, keepMTP: true, layers: [[0], [1, 2]])

        let channel = tmp.appending("ch").path, int8 = tmp.appending("i8").path
        try CV.quantize(CV.deepseek, channel, CV.scheme(.fp8, .channel))
        try CV.quantize(CV.qwen2, int8, CV.scheme(.int8))
        out = tmp.appending("c").path
        try shard(channel, out, ["--tp", "2"])
        try CV.gatherShards(channel, out, tp: 2, layers: [[0, 1, 2]])
        out = tmp.appending("d").path
        try shard(int8, out, ["--tp", "2"])
        try CV.gatherShards(int8, out, tp: 2, layers: [[0, 1]])
    }

    /// The gather check is not vacuous: a rank.json offset moved by one block fails it.
    func testGatherDetectsAWrongOffset() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-bad")
        let out = tmp.appending("o").path
        try shard(CV.qwen2, out, ["--tp", "2"])
        let path = out + "/rank-00001-of-00002/rank.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        // The q_proj bias of rank 1 covers [64, 128); claim [0, 64).
        let json = try JSONParser.parse(Array(text.utf8))
        let name = "model.layers.0.self_attn.q_proj.bias"
        XCTAssertEqual(json["tensors"]?[name]?["offset"]?.intValue, 64)
        let bad = text.replacingOccurrences(of: "\"offset\": 64,\n      \"length\": 64,\n      \"global_shape\": [\n        128\n      ]",
                                            with: "\"offset\": 0,\n      \"length\": 64,\n      \"global_shape\": [\n        128\n      ]")
        XCTAssertNotEqual(bad, text)
        try bad.write(toFile: path, atomically: true, encoding: .utf8)
        let spec = tmp.appending("spec.json").path
        try CV.writeJSON(.object([("tp", .int(2)), ("pp", .int(1)), ("ep", .int(1)), ("layers", .array([.array([.int(0), .int(1)])]))]), to: spec)
        XCTAssertThrowsError(try PythonReference.run("shard_gather.py", [CV.qwen2, out, spec]))
    }

    /// Splits that cannot be made are refused before anything is written, naming the tensor.
    func testRefusalsBeforeAnyByte() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-refuse")
        let fp8 = tmp.appending("fp8").path
        try CV.quantize(CV.deepseek, fp8)
        let cases: [(String, [String], String, String?)] = [
            // The block-FP8 sample at TP 2: o_proj's 128 input columns (and q_b_proj's 192 rows) would cut a block.
            (fp8, ["--tp", "2"], "shard.block_misaligned", "model.layers.0.self_attn.o_proj.weight"),
            // qwen2-tiny has 2 KV heads.
            (CV.qwen2, ["--tp", "4"], "shard.indivisible", nil),
            // 16 experts do not split over EP 3 (and TP 3 does not divide 4 heads first).
            (CV.deepseek, ["--tp", "3", "--ep", "3"], "shard.indivisible", nil),
            (CV.deepseek, ["--tp", "2", "--ep", "4"], "shard.ep_not_tp", nil),
            (CV.deepseek, ["--tp", "1", "--pp", "4"], "shard.pp_exceeds_layers", nil),
            (CV.qwen2, ["--tp", "2", "--layout", "deepseek", "--ep", "2"], "shard.layout_unsupported", nil),
            (CV.deepseek, ["--tp", "2", "--layout", "deepseek"], "shard.layout_unsupported", nil),
        ]
        for (i, c) in cases.enumerated() {
            let out = tmp.appending("o\(i)").path
            let r = try CLI.run(["shard", c.0, out, "--json"] + c.1)
            XCTAssertEqual(r.status, 64, "\(c.1): \(r.stderr)")
            XCTAssertEqual(r.code, c.2, "\(c.1): \(r.stdout)")
            if let t = c.3 { XCTAssertEqual(r.error?["tensor"]?.stringValue, t) }
            XCTAssertFalse(CV.exists(out), "\(c.1): \(out) was created")
        }
    }

    /// Resume, jobs and merge-index work on rank folders: a run that finished only job 0 of 2
    /// (as an interrupted run leaves it) is resumed by a single run that skips those files; two
    /// jobs plus merge-index give the same bytes as one process.
    func testResumeAndJobs() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-jobs")
        let one = tmp.appending("one").path, two = tmp.appending("two").path
        let args = ["--tp", "2", "--pp", "2", "--ep", "2"]
        try shard(CV.deepseek, one, args + ["--jobs", "2", "--job-index", "0"])
        let again = try CLI.run(["shard", CV.deepseek, one, "--json"] + args)
        XCTAssertEqual(again.status, 0, again.stderr)
        let report = try JSONParser.parse(Array(again.stdout.utf8))
        XCTAssertEqual(report["converted_shards"]?.arrayValue?.compactMap(\.stringValue),
                       ["rank-00001-of-00004/model-00001-of-00001.safetensors", "rank-00003-of-00004/model-00001-of-00001.safetensors"])
        XCTAssertEqual(report["skipped_shards"]?.arrayValue?.count, 2)
        for j in 0..<2 { try shard(CV.deepseek, two, args + ["--jobs", "2", "--job-index", String(j)]) }
        XCTAssertFalse(CV.exists(two + "/rank-00000-of-00004/rank.json"), "rank.json before merge-index")
        XCTAssertEqual(try CLI.run(["merge-index", two, "-q"]).status, 0)
        try CV.assertSameDirectory(one, two)
        for r in 0..<4 {
            let f = ShardPlanner.folder(rank: r, of: 4)
            try CV.assertSameDirectory(one + "/" + f, two + "/" + f)
        }
    }

    /// `--layout deepseek` is tensor-identical to an independent re-implementation of DeepSeek-V3's
    /// inference/convert.py rules (Tests/Reference/deepseek_layout_reference.py): the BF16 sample at
    /// MP 2 and 4, and a block-FP8 model with an MTP layer (dropped; scales renamed and cut) at MP 2;
    /// with two rank files swapped the reference fails.
    func testDeepSeekLayoutMatchesConvertPy() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "shard-ds")
        let bf16 = tmp.appending("syn").path, fp8 = tmp.appending("syn-fp8").path
        _ = try PythonReference.run("make_shard_model.py", [bf16])
        try CV.quantize(bf16, fp8)
        for (i, (input, mp)) in [(CV.deepseek, 2), (CV.deepseek, 4), (fp8, 2)].enumerated() {
            let out = tmp.appending("o\(i)").path
            try shard(input, out, ["--tp", String(mp), "--ep", String(mp), "--layout", "deepseek"])
            XCTAssertNoThrow(try PythonReference.run("deepseek_layout_reference.py", [input, out, String(mp)]), "mp \(mp)")
            XCTAssertFalse(CV.exists(out + "/config.json"))
        }
        let out = tmp.appending("o0").path
        let fm = FileManager.default
        try fm.moveItem(atPath: out + "/model0-mp2.safetensors", toPath: out + "/x")
        try fm.moveItem(atPath: out + "/model1-mp2.safetensors", toPath: out + "/model0-mp2.safetensors")
        try fm.moveItem(atPath: out + "/x", toPath: out + "/model1-mp2.safetensors")
        XCTAssertThrowsError(try PythonReference.run("deepseek_layout_reference.py", [CV.deepseek, out, "2"]))
    }
}
