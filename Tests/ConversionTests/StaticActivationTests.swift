import Foundation
import JSON
import Quantization
import TestSupport
import XCTest

/// `quantize --act static --ranges FILE` (issue 16 item 6): per-tensor input_scale [1] in the model
/// dtype, amax / 448 (FP8) or amax / 127.5 (INT8) as compressed-tensors' calculate_qparams gives it,
/// checked byte for byte by Tests/Reference/static_act_check.py (numpy + ml_dtypes) on every
/// module; and every way a ranges file can fit badly is refused before anything is written.
final class StaticActivationTests: XCTestCase {
    /// The linear modules `quantize` quantizes in `model` (those with a weight_scale in a dynamic run).
    private func modules(_ model: String, _ tmp: CVTempDir) throws -> [String] {
        let out = tmp.sub("dynamic-" + (model as NSString).lastPathComponent)
        try CLI.expect(["quantize", "--int8", model, out, "--quiet"], status: 0)
        var names: [String] = []
        for f in try CV.files(out) where f.hasSuffix(".safetensors") {
            names += try CV.tensors(out + "/" + f).keys.filter { $0.hasSuffix(".weight_scale") }.map { String($0.dropLast(".weight_scale".count)) }
        }
        return names.sorted()
    }

    /// A ranges.json with one input per module (amax spread over several binades, some values
    /// that are not exact in BF16 after the division).
    private func ranges(_ modules: [String], target: String, to path: String, drop: Int = 0, extra: String? = nil) throws {
        var rng = STRandom(seed: 16)
        var inputs: [JSONValue] = modules.dropFirst(drop).map { m in
            let amax = Double(Float.random(in: 0.01...40, using: &rng))
            return .object([("name", .string(m + ".input")), ("consumers", .array([.string(m)])), ("tokens", .int(1000)),
                            ("amax", .double(amax)), ("bin", .null)])
        }
        if let extra {
            inputs.append(.object([("name", .string(extra)), ("consumers", .array([.string(extra)])), ("tokens", .int(1)), ("amax", .double(1)), ("bin", .null)]))
        }
        try CV.writeJSON(.object([
            ("format", .string("dsconvert-ranges")), ("version", .int(1)), ("model", .string("test")), ("method", .string("minmax")),
            ("target", .string(target)), ("percentile", .null), ("ctx", .int(256)), ("windows", .int(4)), ("expert_mode", .string("all")),
            ("inputs", .array(inputs)),
        ]), to: path)
    }

    func testStaticFP8AndINT8MatchCompressedTensorsArithmetic() throws {
        let tmp = try CVTempDir()
        for model in [CV.qwen2, CV.deepseek] {
            let mods = try modules(model, tmp)
            XCTAssertGreaterThan(mods.count, 10)
            for (target, args) in [("fp8", ["--fp8", "--granularity", "tensor"]), ("int8", ["--int8"])] {
                let r = tmp.file("\(target)-ranges.json"), out = tmp.sub("\(target)-\((model as NSString).lastPathComponent)")
                try ranges(mods, target: target, to: r)
                try CLI.expect(["quantize"] + args + ["--act", "static", "--ranges", r, model, out, "--quiet"], status: 0)
                let py = try PythonReference.run("static_act_check.py", [out, r])
                XCTAssertTrue(py.contains("\"modules\": \(mods.count)"), "\(target) \(model): \(py)")
            }
        }
    }

    func testBadRangesAreRefusedBeforeWriting() throws {
        let tmp = try CVTempDir()
        let mods = try modules(CV.qwen2, tmp)
        let good = tmp.file("good.json"), missing = tmp.file("missing.json"), extra = tmp.file("extra.json")
        try ranges(mods, target: "fp8", to: good)
        try ranges(mods, target: "fp8", to: missing, drop: 1)
        try ranges(mods, target: "fp8", to: extra, extra: "model.layers.7.mlp.gate_proj")
        let fp8 = ["quantize", "--fp8", "--granularity", "tensor", "--act", "static"]
        let cases: [([String], Int32, String, String)] = [
            (fp8 + ["--ranges", missing], 1, "quantization.ranges_mismatch", mods[0]),
            (fp8 + ["--ranges", extra], 1, "quantization.ranges_mismatch", "model.layers.7.mlp.gate_proj"),
            (["quantize", "--int8", "--act", "static", "--ranges", good], 1, "quantization.ranges_mismatch", "--target fp8"),
            (fp8, 64, "usage.invalid_option", "--ranges"),
            (["quantize", "--fp8", "--act", "static", "--ranges", good], 64, "usage.invalid_option", "block-wise FP8 supports only dynamic activations"),
            (["quantize", "--fp8", "--granularity", "tensor", "--ranges", good], 64, "usage.invalid_option", "--act static only"),
            (fp8 + ["--weight-only", "--ranges", good], 64, "usage.invalid_option", "--weight-only"),
        ]
        for (i, (args, status, code, says)) in cases.enumerated() {
            let out = tmp.sub("bad-\(i)")
            let r = try CLI.expect(args + [CV.qwen2, out, "--json"], status: status, code: code)
            XCTAssertTrue(r.stderr.contains(says), "\(args): \(r.stderr)")
            XCTAssertFalse(CV.exists(out), "\(args): nothing written")
        }
    }
}
