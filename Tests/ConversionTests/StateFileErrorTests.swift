import Foundation
import XCTest
import Conversion
import JSON
import SafeTensors

/// Every parse error of a file dsconvert reads names that file (issue 12 item 19): plan.json,
/// resume records, the index, config.json. `[]` as plan.json is a malformed plan, not a
/// missing one.
final class StateFileErrorTests: XCTestCase {
    /// A folder after job 0 of 2: plan.json and some records exist.
    func partialOutput(_ tmp: CVTempDir) throws -> String {
        let out = tmp.sub("out")
        try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 0)
        try CV.quantize(CV.deepseek, out, jobs: 2, jobIndex: 1)
        return out
    }

    func testMalformedPlanIsNamed() throws {
        let tmp = try CVTempDir()
        let out = try partialOutput(tmp)
        let plan = out + "/.dsconvert/plan.json"
        for (label, text) in [("empty array", "[]"), ("truncated", "{\"shards\": ["), ("object without members", "{}"), ("not JSON", "\u{0}\u{1}")] {
            try CV.write(Array(text.utf8), to: plan)
            let r = try CLI.expect(["merge-index", out, "--json"], status: 1, code: "conversion.invalid_state_file")
            XCTAssertEqual(r.error?["file"]?.stringValue, plan, "\(label): \(r.stdout)")
            XCTAssertTrue(r.stderr.hasPrefix("error: " + plan + ": "), "\(label): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("no .dsconvert/plan.json here"), "\(label): \(r.stderr)")
        }
        XCTAssertFalse(CV.exists(out + "/" + SafeTensorsIndex.fileName), "nothing written")
        // A folder without a plan is still "not a conversion directory".
        try FileManager.default.removeItem(atPath: plan)
        try CLI.expect(["merge-index", out, "--json"], status: 1, code: "conversion.not_a_conversion_directory")
    }

    func testMalformedResumeRecordIsNamed() throws {
        let tmp = try CVTempDir()
        let out = try partialOutput(tmp)
        let record = ResumeRecord.path(outputDirectory: out, shard: CV.deepseekShards[0])
        try CV.write(Array("{\"shard\": 5}".utf8), to: record)
        let r = try CLI.expect(["merge-index", out, "--json"], status: 1, code: "conversion.invalid_state_file")
        XCTAssertEqual(r.error?["file"]?.stringValue, record, r.stdout)
        XCTAssertTrue(r.stderr.contains("not a dsconvert resume record"), r.stderr)
        // A run that finds it converts that shard again, and says why.
        try CV.write(Array("not json".utf8), to: record)
        let q = try CLI.expect(["quantize", "--fp8", CV.deepseek, out], status: 0)
        XCTAssertTrue(q.stderr.contains(record) && q.stderr.contains("converted again"), q.stderr)
        XCTAssertTrue(CV.exists(out + "/" + SafeTensorsIndex.fileName), "the folder was completed")
    }

    /// A record of an earlier dsconvert (its whole-file checksum was XXH64, now XXH3-64) is not
    /// trusted: merge-index names it, a run converts that shard again.
    func testRecordWithTheEarlierXXH64ChecksumIsRedone() throws {
        let tmp = try CVTempDir()
        let out = try partialOutput(tmp)
        let record = ResumeRecord.path(outputDirectory: out, shard: CV.deepseekShards[0])
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: record)), as: UTF8.self)
        XCTAssertTrue(text.contains("\"xxh3\""), text)
        try CV.write(Array(text.replacingOccurrences(of: "\"xxh3\"", with: "\"xxh64\"").utf8), to: record)
        let r = try CLI.expect(["merge-index", out, "--json"], status: 1, code: "conversion.invalid_state_file")
        XCTAssertEqual(r.error?["file"]?.stringValue, record, r.stdout)
        XCTAssertTrue(r.stderr.contains("earlier dsconvert"), r.stderr)
        let q = try CLI.expect(["quantize", "--fp8", CV.deepseek, out], status: 0)
        XCTAssertTrue(q.stderr.contains(record) && q.stderr.contains("converted again"), q.stderr)
        XCTAssertTrue(CV.exists(out + "/" + SafeTensorsIndex.fileName), "the folder was completed")
    }

    func testMalformedIndexAndConfigAreNamed() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.deepseek, to: input)
        let index = input + "/" + SafeTensorsIndex.fileName
        for text in ["[]", "{\"weight_map\": ", "{\"weight_map\": []}"] {
            try CV.write(Array(text.utf8), to: index)
            let r = try CLI.expect(["inspect", input, "--json"], status: 1, code: "safetensors.index_invalid")
            XCTAssertEqual(r.error?["file"]?.stringValue, index, "\(text): \(r.stdout)")
        }
        try FileManager.default.removeItem(atPath: index)
        try FileManager.default.copyItem(atPath: CV.deepseek + "/" + SafeTensorsIndex.fileName, toPath: index)
        let config = input + "/config.json"
        for text in ["[]", "{\"model_type\": ", ""] {
            try CV.write(Array(text.utf8), to: config)
            let r = try CLI.expect(["inspect", input, "--json"], status: 1, code: "checkpoint.invalid_config")
            XCTAssertEqual(r.error?["file"]?.stringValue, config, "\(text): \(r.stdout)")
        }
    }
}
