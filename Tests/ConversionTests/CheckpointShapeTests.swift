import Foundation
import XCTest
import JSON
import SafeTensors

/// What a folder or file given as a checkpoint actually holds: a lone shard of an indexed
/// checkpoint, an index naming nothing, model.safetensors beside an index, files the index does
/// not name (issue 12 items 8, 9, 27 and "Also" 1).
final class CheckpointShapeTests: XCTestCase {
    func testLoneShardOfIndexedCheckpointIsRefusedAndInspectSaysSo() throws {
        let tmp = try CVTempDir()
        let shard = CV.deepseek + "/" + CV.deepseekShards[1]
        let out = tmp.sub("out")
        for verb in [["quantize", "--fp8"], ["dequantize"]] {
            let r = try CLI.expect(verb + [shard, out, "--json"], status: 1, code: "safetensors.shard_of_indexed_checkpoint")
            XCTAssertTrue(r.stderr.contains("give the directory"), r.stderr)
            XCTAssertTrue(r.stderr.contains("of its 139 tensors"), r.stderr)
            XCTAssertFalse(CV.exists(out), "nothing written")
        }
        let text = try CLI.expect(["inspect", shard, "--summary"], status: 0)
        XCTAssertTrue(text.stdout.contains("part of") && text.stdout.contains("1 of 5 shards"), text.stdout)
        let json = try CLI.expect(["inspect", shard, "--summary", "--json"], status: 0)
        XCTAssertEqual((try JSONParser.parse(json.stdout))["shard_of_index"]?.stringValue, CV.deepseek + "/" + SafeTensorsIndex.fileName)
        // The same file alone in a folder is a checkpoint of its own: no index names it.
        let alone = tmp.sub("alone")
        try FileManager.default.createDirectory(atPath: alone, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: shard, toPath: alone + "/" + CV.deepseekShards[1])
        let j = try CLI.expect(["inspect", alone + "/" + CV.deepseekShards[1], "--summary", "--json"], status: 0)
        XCTAssertEqual((try JSONParser.parse(j.stdout))["shard_of_index"], .null)
    }

    func testIndexWithEmptyWeightMapIsRefused() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CV.deepseek + "/config.json", toPath: input + "/config.json")
        try CV.writeJSON(.object([("metadata", .object([("total_size", .int(0))])), ("weight_map", .object([]))]), to: input + "/" + SafeTensorsIndex.fileName)
        for args in [["inspect", input], ["quantize", "--fp8", input, tmp.sub("out")], ["dequantize", input, tmp.sub("out")]] {
            let r = try CLI.expect(args + ["--json"], status: 1, code: "safetensors.index_invalid")
            XCTAssertTrue(r.stderr.contains("nothing to read or convert"), r.stderr)
            XCTAssertTrue(r.stderr.contains(SafeTensorsIndex.fileName), "names the file: \(r.stderr)")
        }
        XCTAssertFalse(CV.exists(tmp.sub("out")))
    }

    /// A safetensors file without tensors (header `{}`) is a valid file but nothing to convert.
    func testCheckpointWithoutTensorsIsNotConverted() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CV.llama + "/config.json", toPath: input + "/config.json")
        // 8-byte length 8, then `{}` padded with spaces to 8 bytes.
        try CV.write([8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8), to: input + "/model.safetensors")
        try CLI.expect(["inspect", input, "--summary"], status: 0)
        try CLI.expect(["quantize", "--fp8", input, tmp.sub("out"), "--json"], status: 1, code: "safetensors.no_tensors")
        XCTAssertFalse(CV.exists(tmp.sub("out") + "/model.safetensors"))
        let d = try CLI.expect(["dequantize", input, tmp.sub("out-d"), "--json"], status: 1, code: "safetensors.no_tensors")
        XCTAssertTrue(d.stderr.contains("nothing to convert"), d.stderr)
        XCTAssertFalse(CV.exists(tmp.sub("out-d") + "/model.safetensors"))
    }

    /// transformers loads model.safetensors and ignores the index; vLLM/SGLang follow the index.
    /// dsconvert refuses to pick one.
    func testModelSafetensorsBesideAnIndexNamingOtherFilesIsRefused() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.deepseek, to: input)
        try FileManager.default.copyItem(atPath: CV.llama + "/model.safetensors", toPath: input + "/model.safetensors")
        for args in [["inspect", input], ["quantize", "--fp8", input, tmp.sub("out")]] {
            let r = try CLI.expect(args + ["--json"], status: 1, code: "safetensors.ambiguous_weights")
            XCTAssertTrue(r.stderr.contains("transformers would load model.safetensors"), r.stderr)
        }
        XCTAssertFalse(CV.exists(tmp.sub("out")))
        // An index that names model.safetensors itself is not ambiguous.
        let single = tmp.sub("single")
        try CV.copyDirectory(CV.llama, to: single)
        let names = try SafeTensorsHeader.read(path: single + "/model.safetensors").tensorNames
        try CV.writeJSON(.object([("metadata", .object([])), ("weight_map", .object(names.map { ($0, .string("model.safetensors")) }))]),
                         to: single + "/" + SafeTensorsIndex.fileName)
        try CLI.expect(["inspect", single, "--summary"], status: 0)
    }

    func testSafetensorsFileTheIndexDoesNotNameIsWarnedAbout() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.deepseek, to: input)
        try FileManager.default.copyItem(atPath: CV.llama + "/model.safetensors", toPath: input + "/old-export.safetensors")
        let i = try CLI.expect(["inspect", input, "--summary"], status: 0)
        XCTAssertTrue(i.stderr.contains("warning:") && i.stderr.contains("old-export.safetensors"), i.stderr)
        let j = try CLI.expect(["inspect", input, "--summary", "--json"], status: 0)
        XCTAssertEqual((try JSONParser.parse(j.stdout))["unindexed_files"], .array([.string("old-export.safetensors")]))
        let q = try CLI.expect(["quantize", "--fp8", input, tmp.sub("out")], status: 0)
        XCTAssertTrue(q.stderr.contains("warning:") && q.stderr.contains("old-export.safetensors"), q.stderr)
        XCTAssertFalse(CV.exists(tmp.sub("out") + "/old-export.safetensors"), "not converted, not copied")
        // Without a stray file, no warning.
        let clean = try CLI.expect(["inspect", CV.deepseek, "--summary"], status: 0)
        XCTAssertFalse(clean.stderr.contains("warning"), clean.stderr)
    }
}
