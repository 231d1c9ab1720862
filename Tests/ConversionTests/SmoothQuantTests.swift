import Calibration
import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

/// SmoothQuant (issue 16 item 8): `calibrate --smooth` writes s per smoothed norm output, checked
/// by Tests/Reference/smooth_check.py (numpy + ml_dtypes) from the model's weights and the file's
/// per-channel maxima: the readers, max |W_j|, s, and (minmax) that the ranges are those of X / s;
/// `quantize --int8 --act static --ranges` folds s into the norms and every reader (router
/// included) with compressed-tensors' INT8 bytes of the folded weights; routed-only calibration
/// gives the same s (its experts' rows together are every token); and ranges whose factors do
/// not fit the model are refused before anything is written. (The folded model's logits:
/// EngineTests/SmoothQuantFoldTests.)
final class SmoothQuantTests: XCTestCase {
    static let calib = STFixtures.samplesDirectory + "/calib.txt"
    static let short = ["--text", calib, "--samples", "2", "--ctx", "64", "--method", "minmax"]

    func calibrate(_ model: String, _ out: String, _ extra: [String] = []) throws -> JSONValue {
        let r = try CLI.run(["calibrate", model] + Self.short + ["-o", out, "--json"] + extra, timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        return try JSONParser.parse(Array(r.stdout.utf8))
    }

    func testSmoothedRangesAndFoldMatchNumpy() throws {
        let tmp = try CVTempDir()
        for (model, smoothed, notSmoothed) in [(CV.deepseek, 12, 38), (CV.qwen2, 4, 4)] {
            let name = (model as NSString).lastPathComponent
            let ranges = tmp.file("\(name).json")
            let report = try calibrate(model, ranges, ["--smooth", "0.5"])
            XCTAssertEqual(report["smoothing"]?["smoothed"]?.arrayValue?.count, smoothed, name)
            let skipped = report["smoothing"]?["not_smoothed"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            XCTAssertEqual(skipped.count, notSmoothed, name)
            XCTAssertTrue(skipped.allSatisfy { $0.hasSuffix(".o_proj") || $0.hasSuffix(".down_proj") }, "\(skipped)")
            let file = try RangesFile.read(ranges)
            XCTAssertEqual(file.smoothAlpha, 0.5)
            XCTAssertEqual(file.smoothing.count, smoothed)
            let out = tmp.sub("\(name)-int8")
            let q = try CLI.expect(["quantize", "--int8", "--act", "static", "--ranges", ranges, model, out, "--json"], status: 0)
            let qj = try JSONParser.parse(Array(q.stdout.utf8))
            XCTAssertEqual(qj["smoothing"]?["folded"]?.arrayValue?.count, smoothed)
            let unsmoothed = qj["smoothing"]?["not_smoothed"]?.arrayValue?.compactMap(\.stringValue) ?? []
            XCTAssertEqual(Set(unsmoothed), Set(skipped), "quantize names the same unsmoothed inputs as calibrate")
            let py = try PythonReference.run("smooth_check.py", [model, ranges, out])
            XCTAssertTrue(py.contains("\"entries\": \(smoothed)") && py.contains("\"minmax_amax\": \(smoothed)") && py.contains("\"folded_norms\": \(smoothed)"), "\(name): \(py)")
            // The static input scales are those of the smoothed ranges.
            let act = try PythonReference.run("static_act_check.py", [out, ranges])
            XCTAssertTrue(act.contains("\"modules\":"), act)
        }
    }

    func testRoutedOnlyGivesTheSameFactors() throws {
        let tmp = try CVTempDir()
        let all = tmp.file("all.json"), routed = tmp.file("routed.json")
        _ = try calibrate(CV.deepseek, all, ["--smooth", "0.8"])
        _ = try calibrate(CV.deepseek, routed, ["--smooth", "0.8", "--routed-only"])
        let a = try RangesFile.read(all), r = try RangesFile.read(routed)
        XCTAssertEqual(a.smoothing.map(\.norm), r.smoothing.map(\.norm))
        for (x, y) in zip(a.smoothing, r.smoothing) {
            XCTAssertEqual(x.actMax, y.actMax, x.norm)
            XCTAssertEqual(x.scales, y.scales, x.norm)
            XCTAssertEqual(x.consumers, y.consumers, x.norm)
        }
        XCTAssertTrue(try PythonReference.run("smooth_check.py", [CV.deepseek, routed]).contains("\"entries\": 12"))
    }

    func testBadFactorsAreRefused() throws {
        let tmp = try CVTempDir()
        let good = tmp.file("good.json")
        _ = try calibrate(CV.qwen2, good, ["--smooth", "0.5"])
        let v = try JSONParser.parse(try Sys.readFile(good))
        /// `good` with its first smoothing entry edited.
        func variant(_ name: String, _ edit: (inout [(String, JSONValue)]) -> Void) throws -> String {
            var list = try XCTUnwrap(v["smoothing"]?.arrayValue)
            var e = try XCTUnwrap(list[0].objectMembers)
            edit(&e)
            list[0] = .object(e)
            let path = tmp.file(name + ".json")
            try CV.writeJSON(v.setting("smoothing", .array(list)), to: path)
            return path
        }
        func set(_ e: inout [(String, JSONValue)], _ key: String, _ f: (JSONValue) -> JSONValue) {
            let i = e.firstIndex { $0.0 == key }!
            e[i].1 = f(e[i].1)
        }
        let norm = "model.layers.0.input_layernorm"
        let renamed = try variant("renamed") { set(&$0, "norm") { _ in .string("model.layers.0.input_norm") } }
        let short = try variant("short") { e in
            for k in ["scales", "act_max", "weight_max"] { set(&e, k) { .array(Array($0.arrayValue!.dropLast())) } }
        }
        let ragged = try variant("ragged") { set(&$0, "scales") { .array(Array($0.arrayValue!.dropLast())) } }
        let infinite = try variant("infinite") { set(&$0, "scales") { s in var a = s.arrayValue!; a[3] = .number("1e999"); return .array(a) } }
        let zero = try variant("zero") { set(&$0, "scales") { s in var a = s.arrayValue!; a[5] = .int(0); return .array(a) } }
        let fewer = try variant("fewer") { set(&$0, "consumers") { .array(Array($0.arrayValue!.dropLast())) } }
        let args = ["quantize", "--int8", "--act", "static", "--ranges"]
        let cases: [(String, String, String)] = [
            (renamed, "quantization.smoothing_mismatch", "model.layers.0.input_norm"),
            (short, "quantization.smoothing_mismatch", "one per channel"),
            (ragged, "ranges.size_mismatch", norm),
            (infinite, "ranges.bad_value", "scales[3] is 1e999"),
            (zero, "ranges.bad_value", "scales[5] is 0"),
            (fewer, "quantization.smoothing_mismatch", "not listed: model.layers.0.self_attn.v_proj"),
        ]
        for (i, (ranges, code, says)) in cases.enumerated() {
            let out = tmp.sub("bad-\(i)")
            let r = try CLI.expect(args + [ranges, CV.qwen2, out, "--json"], status: 1, code: code)
            XCTAssertTrue(r.stderr.contains(says), "\(code): \(r.stderr)")
            XCTAssertFalse(CV.exists(out), "\(code): nothing written")
        }
        // Options: α out of range, and the histogram-file paths that cannot carry s.
        _ = try CLI.expect(["calibrate", CV.qwen2] + Self.short + ["-o", tmp.file("x.json"), "--smooth", "1.5", "--json"], status: 64, code: "usage.invalid_value")
        _ = try CLI.expect(["calibrate", CV.qwen2] + Self.short + ["-o", tmp.file("x.json"), "--smooth", "0.5", "--histograms-out", tmp.file("h"), "--json"], status: 64, code: "usage.conflicting_options")
        XCTAssertFalse(CV.exists(tmp.file("x.json")))
    }
}
