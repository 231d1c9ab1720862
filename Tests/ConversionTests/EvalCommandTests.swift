import Foundation
import JSON
import TestSupport
import XCTest

/// `dsconvert eval` from the command line: the --json shape, the gate's exit status 3 naming
/// the bound and the value, and the refusals (short text, bad JSONL line, other tokenizer, usage).
final class EvalCommandTests: XCTestCase {
    static let qwen = STFixtures.samplesDirectory + "/qwen2-tiny"

    /// The first 3,500 characters of Samples/eval.txt and 2 multiple-choice items, in `dir`.
    func inputs(_ dir: STTemporaryDirectory) throws -> (text: String, mc: String) {
        let text = try String(contentsOfFile: STFixtures.samplesDirectory + "/eval.txt", encoding: .utf8)
        let t = dir.file("text.txt")
        try String(text.prefix(3500)).write(toFile: t, atomically: true, encoding: .utf8)
        let lines = try String(contentsOfFile: STFixtures.samplesDirectory + "/eval_mc.jsonl", encoding: .utf8).split(separator: "\n").prefix(2)
        let m = dir.file("mc.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(toFile: m, atomically: true, encoding: .utf8)
        return (t, m)
    }

    func testJSONShapeAndGate() throws {
        let dir = try STTemporaryDirectory("eval-cli")
        let (text, mc) = try inputs(dir)
        let cand = dir.file("fp8")
        try CLI.expect(["quantize", "--fp8", Self.qwen, cand, "-q"], status: 0)
        let args = ["eval", cand, "--ref", Self.qwen, "--text", text, "--mc", mc, "--ctx", "64", "--threads", "2", "--json"]
        let r = try CLI.expect(args + ["--max-ppl-increase", "50", "--min-top1", "10"], status: 0)
        let v = try JSONParser.parse(Array(r.stdout.utf8))
        for k in ["path", "perplexity", "tokens", "mc_accuracy", "mc_accuracy_norm"] {
            XCTAssertNotNil(v["candidate"]?[k], k)
            XCTAssertNotNil(v["reference"]?[k], k)
        }
        for k in ["kl_mean", "kl_median", "kl_p99", "kl_max", "top1_agreement", "ppl_ratio", "delta_p_rms", "mc_accuracy_delta"] {
            XCTAssertNotNil(v["comparison"]?[k]?.doubleValue, k)
        }
        let tokens = v["candidate"]?["tokens"]?.intValue ?? 0
        XCTAssertEqual(tokens % 64, 0)
        XCTAssertEqual(v["windows"]?.intValue, tokens / 64)
        XCTAssertEqual(v["gate"]?["passed"]?.boolValue, true)
        let top1 = v["comparison"]?["top1_agreement"]?.doubleValue ?? -1
        XCTAssert(top1 > 0.5 && top1 <= 1, "\(top1)")  // a fraction, not a percentage
        // A bound that breaks: exit 3, the report still printed, the bound and value named.
        let kl = v["comparison"]?["kl_mean"]?.doubleValue ?? 0
        let g = try CLI.expect(args + ["--max-kl-mean", "0"], status: 3)
        XCTAssertEqual(try JSONParser.parse(Array(g.stdout.utf8))["gate"]?["passed"]?.boolValue, false)
        XCTAssert(g.stderr.contains("gate FAILED: --max-kl-mean 0.0: mean KL divergence " + String(format: "%.6f", kl)), g.stderr)
        // The text report has llama-perplexity's blocks.
        let t = try CLI.expect(["eval", cand, "--ref", Self.qwen, "--text", text, "--ctx", "64", "--threads", "2", "-q"], status: 0)
        for s in ["Mean PPL(Q)/PPL(base)         :", "Mean    KLD:", "99.0%   KLD:", "RMS Δp    :", "Same top p:"] {
            XCTAssert(t.stdout.contains(s), s)
        }
    }

    func testRefusals() throws {
        let dir = try STTemporaryDirectory("eval-cli-bad")
        let (text, _) = try inputs(dir)
        let short = dir.file("short.txt")
        try "only a few words".write(toFile: short, atomically: true, encoding: .utf8)
        let r = try CLI.expect(["eval", Self.qwen, "--text", short, "--json"], status: 1, code: "eval.text_too_short")
        XCTAssert(r.stderr.contains("the text is 4 tokens; one window of 256 tokens and the token after it need 257"), r.stderr)
        let bad = dir.file("bad.jsonl")
        try "{\"context\": \"a b\", \"choices\": [\"c\", \"d\"], \"label\": 0}\n{\"context\": \"a\", \"choices\": [\"c\", \"d\"], \"label\": 4}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let m = try CLI.expect(["eval", Self.qwen, "--mc", bad, "--json"], status: 1, code: "eval.invalid_item")
        XCTAssert(m.stderr.contains("bad.jsonl: line 2: label 4 is out of range for 2 choices"), m.stderr)
        try CLI.expect(["eval", Self.qwen, "--json"], status: 64, code: "usage.conflicting_options")
        try CLI.expect(["eval", Self.qwen, "--text", text, "--max-kl-mean", "1", "--json"], status: 64, code: "usage.conflicting_options")
        try CLI.expect(["eval", Self.qwen, "--text", text, "--ctx", "1", "--json"], status: 64, code: "usage.invalid_value")

        // A reference whose tokenizer gives other ids: two vocabulary entries swapped.
        let other = dir.file("other")
        try STFixtures.copyDirectory(Self.qwen, to: other)
        let url = URL(fileURLWithPath: other + "/tokenizer.json")
        var tj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var model = try XCTUnwrap(tj["model"] as? [String: Any])
        var vocab = try XCTUnwrap(model["vocab"] as? [String: Int])
        (vocab["Ġthe"], vocab["Ġof"]) = (vocab["Ġof"], vocab["Ġthe"])
        model["vocab"] = vocab
        tj["model"] = model
        try JSONSerialization.data(withJSONObject: tj).write(to: url)
        let mm = try CLI.expect(["eval", Self.qwen, "--ref", other, "--text", text, "--ctx", "64", "--json"], status: 1, code: "eval.tokenizer_mismatch")
        XCTAssert(mm.stderr.contains("differ: at token"), mm.stderr)
        let allowed = try CLI.expect(["eval", Self.qwen, "--ref", other, "--text", text, "--ctx", "64", "--json", "--allow-tokenizer-mismatch", "--threads", "2"], status: 0)
        let v = try JSONParser.parse(Array(allowed.stdout.utf8))
        XCTAssertEqual(v["tokenizers_compared"]?.boolValue, false)
        XCTAssertNil(v["comparison"]?["kl_mean"])
        XCTAssertNotNil(v["comparison"]?["ppl_ratio"]?.doubleValue)
    }
}
