import Foundation
import JSON
import TestSupport
import XCTest

/// A rank of a shard output (rank.json beside its tensors, or embedded in its pack) is checked as
/// a rank: `inspect` names its coordinates, and its slices are checked against the global shapes
/// rank.json gives instead of being reported as config errors; a rank.json that contradicts the
/// stored tensors is reported, naming the tensor.
final class RankManifestTests: XCTestCase {
    private func inspect(_ path: String) throws -> JSONValue {
        let r = try CLI.run(["inspect", path, "--summary", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONParser.parse(Array(r.stdout.utf8))
    }

    func testRanksInspectCleanWithTheirCoordinates() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "rank-inspect")
        // deepseek-v3-tiny at TP 2 × PP 2 × EP 2: stages [0, 1] | [2] (by bytes, as ShardTests
        // works out by hand), 16 experts contiguous over EP 2.
        let want: [(Int, Int, Int, [Int], [Int])] = [(0, 0, 0, [0, 1], Array(0..<8)), (1, 1, 0, [0, 1], Array(8..<16)),
                                                      (2, 0, 1, [2], Array(0..<8)), (3, 1, 1, [2], Array(8..<16))]
        for format in ["safetensors", "dspack"] {
            let out = tmp.appending(format).path
            let r = try CLI.run(["shard", CV.deepseek, out, "-q", "--tp", "2", "--pp", "2", "--ep", "2", "--format", format])
            XCTAssertEqual(r.status, 0, r.stderr)
            for (rank, tpRank, stage, layers, experts) in want {
                let folder = out + "/rank-0000\(rank)-of-00004"
                let j = try inspect(format == "dspack" ? folder + "/model.dspack" : folder)
                XCTAssertEqual(j["config_problems"], .array([]), "\(format) rank \(rank)")
                let m = try XCTUnwrap(j["rank"], "\(format) rank \(rank)")
                XCTAssertEqual(m["rank"]?.intValue, rank)
                XCTAssertEqual(m["tp_rank"]?.intValue, tpRank)
                XCTAssertEqual(m["pp_stage"]?.intValue, stage)
                XCTAssertEqual(m["ep_rank"]?.intValue, tpRank)
                XCTAssertEqual(m["layers"]?.arrayValue?.compactMap(\.intValue), layers)
                XCTAssertEqual(m["experts"]?.arrayValue?.compactMap(\.intValue), experts)
                XCTAssertGreaterThan(m["sliced_tensors"]?.intValue ?? 0, 0)
            }
        }
        // A whole model has no rank.
        XCTAssertEqual(try inspect(CV.deepseek)["rank"], .null)
    }

    func testContradictingRankJSONIsReported() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "rank-bad")
        let out = tmp.appending("o").path
        XCTAssertEqual(try CLI.run(["shard", CV.qwen2, out, "-q", "--tp", "2"]).status, 0)
        let path = out + "/rank-00001-of-00002/rank.json"
        let original = try CV.json(path)
        guard case .object(var top) = original, let k = top.firstIndex(where: { $0.0 == "tensors" }),
              case .object(var tensors) = top[k].1 else { return XCTFail("rank.json has no tensors object") }
        // 1. A slice length that does not match the stored shape.
        let name = "model.layers.0.self_attn.q_proj.weight"
        let i = try XCTUnwrap(tensors.firstIndex { $0.0 == name })
        guard case .object(var entry) = tensors[i].1, let l = entry.firstIndex(where: { $0.0 == "length" }) else { return XCTFail() }
        XCTAssertEqual(entry[l].1.intValue, 64)
        entry[l].1 = .int(32)
        tensors[i].1 = .object(entry)
        top[k].1 = .object(tensors)
        try CV.writeJSON(.object(top), to: path)
        var problems = try inspect(out + "/rank-00001-of-00002")["config_problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(problems.contains { $0.contains(name) && $0.contains("[32, 128]") }, "\(problems)")

        // 2. A stored tensor that rank.json does not list.
        tensors.remove(at: i)
        top[k].1 = .object(tensors)
        try CV.writeJSON(.object(top), to: path)
        problems = try inspect(out + "/rank-00001-of-00002")["config_problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertTrue(problems.contains { $0.contains(name) && $0.contains("does not list it") }, "\(problems)")

        // 3. A malformed slice is refused when the rank is opened, naming rank.json.
        try Array(#"{"format": "dsconvert-rank", "rank": 1, "tp_rank": 1, "pp_stage": 0, "ep_rank": 0, "tensors": {"x": {"global": "x", "split_dim": 0, "offset": 8, "length": 8, "global_shape": [10]}}}"#.utf8)
            .withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
        let r = try CLI.run(["inspect", out + "/rank-00001-of-00002", "--json"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.error?["file"]?.stringValue, path, r.stdout)
    }
}
