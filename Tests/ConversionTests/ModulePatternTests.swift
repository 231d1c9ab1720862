import Foundation
import XCTest
import JSON
import Quantization
import TestSupport

/// `--ignore` / `--filter` patterns against Python's own `re` (Tests/Reference/regex_reference.py):
/// on a table of patterns people write in vLLM / llm-compressor ignore lists and of the syntax
/// where Python and ICU differ, dsconvert accepts exactly what Python accepts and matches exactly
/// the names Python matches (search, or match for `re:` entries).
final class ModulePatternTests: XCTestCase {
    static let names = [
        "model.layers.0.self_attn.q_proj", "model.layers.1.mlp.gate", "model.layers.10.mlp.experts.3.up_proj",
        "model.layers.2.mlp.shared_experts.down_proj", "lm_head", "model.lm_head", "model.layers.61.eh_proj",
        "model.layers.0.self_attn.kv_a_proj_with_mqa", "Q_PROJ", "q_proj", "aa", "a1a1", "a1.x.1", "ab", "aab", "b", "",
        "x{", "{foo}", "a{,2}b", "[", "]a", "a&&b", "&", "\u{8}", "\u{B}", "proj", "proj\n", "A", "é", "e\u{301}",
        "a:l", "model.layers.3.mlp.gate_proj", "experts", "shared_experts", "self_attn.q", "-", "a-z",
    ]

    /// Patterns both must agree on (accepted with the same matches, or both refused).
    static let patterns = [
        "", "re:", "lm_head", "re:lm_head", "mlp\\.gate$", "re:.*mlp\\.gate$", "re:model\\.layers\\.0\\.", "model\\.layers\\.0\\.",
        "layers\\.(?P<n>\\d+)\\.mlp", "(?P<x>a)(?P=x)", "(?P<layer_id>\\d)\\.x\\.(?P=layer_id)", "(?P<a_b>a)", "(?P<é>a)",
        "proj\\Z", "proj$", "\\Aproj", "x{", "{", "{foo}", "a{,2}b", "a{2,}", "a{1,3}", "^a{,}$", "a{3,2}", "a{x}",
        "[[]", "[a&&b]", "[]a]", "[^]a]", "[\\b]", "[[:alpha:]]", "[a-z]-", "[\\w.]+_proj", "[{}]",
        "(?i)Q_PROJ", "(?i:q)_PROJ", "(?s:.)", "(?x) q _ proj", "(?m)proj$", "(?u)q",
        "(?:up|down)_proj", "experts\\.\\d+\\.", "^model\\.layers\\.[0-2]\\.", "(?<=self_attn\\.)q", "(?<!shared_)experts",
        "(?=q)", "gate_proj|up_proj", "(?#comment)lm_head", "(?>a+)b", "a++b", "\\d{2}",
        "\\v", "\\x41", "\\u0041", "\\U00000041", "\\N{LATIN SMALL LETTER A}", "\\é", "\\-", "\\&", "\\:",
        "\\1(a)", "(a)\\1", "\\ ", "é", "e\u{301}", "\\101", "[\\101]", "(a)\\10", "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\\10",
        "(a)\\1\\60", "[\\8]", "\\400", "(?P<x>a(?P=x))", "(a\\1)", "[\\0]", "\\0",
        // Refused by Python (ICU alone would accept some of them).
        "(?P<1>a)", "(?P<a>a)(?P<a>b)", "(?P=nope)", "(", ")", "[", "*", "a**", "(?<n>a)", "\\p{L}", "\\Qa\\E", "\\e",
        "\\q", "[\\A]", "(?L)a", "(?P<a", "\\x4", "\\u004", "(?z)", "a{2,1}",
    ]

    /// Valid in Python, refused by dsconvert with a message saying ICU cannot express them.
    static let pythonOnly = ["(?(1)a|b)", "(a)?(?(1)b|c)", "(?a)\\w"]

    func testAgreesWithPythonRe() throws {
        let tmp = try STTemporaryDirectory("patterns")
        let table = tmp.file("table.json")
        let all = Self.patterns + Self.pythonOnly
        try Data(JSONWriter.pretty(.object([
            ("patterns", .array(all.map { .string($0) })), ("names", .array(Self.names.map { .string($0) })),
        ])).utf8).write(to: URL(fileURLWithPath: table))
        let report = try STPython.runJSON("regex_reference.py", [table])
        let results = try XCTUnwrap(report["results"]?.arrayValue)
        XCTAssertEqual(results.count, all.count)
        var accepted = 0
        for (pattern, r) in zip(all, results) {
            let ours = Result { try ModulePattern(pattern) }
            if let pythonError = r["error"]?.stringValue {
                XCTAssertThrowsError(try ours.get(), "'\(pattern)': Python refuses it (\(pythonError)), dsconvert accepts it as ICU '\((try? ours.get())?.icu ?? "-")'") { e in
                    XCTAssertEqual((e as? PatternError)?.code, "usage.invalid_pattern", "\(e)")
                }
                continue
            }
            let expected = try XCTUnwrap(r["matches"]?.arrayValue?.compactMap(\.boolValue))
            if Self.pythonOnly.contains(pattern) {
                XCTAssertThrowsError(try ours.get(), pattern) { e in
                    XCTAssertTrue("\(e)".contains("ICU") || "\(e)".contains("no ICU equivalent"), "\(e)")
                }
                continue
            }
            guard case let .success(p) = ours else {
                XCTFail("'\(pattern)': Python accepts it, dsconvert refuses: \(ours)")
                continue
            }
            accepted += 1
            for (name, want) in zip(Self.names, expected) {
                XCTAssertEqual(p.matches(name), want, "'\(pattern)' (ICU '\(p.icu ?? "")') on '\(name.debugDescription)': Python says \(want)")
            }
        }
        XCTAssertGreaterThan(accepted, 60, "most of the table is valid Python")
    }

    /// The same invalid pattern is exit 64 with one code in every command that takes one.
    func testInvalidPatternIsTheSameUsageErrorEverywhere() throws {
        let tmp = try CVTempDir()
        for bad in ["(?P<1>a)", "(", "\\p{L}"] {
            for args in [["quantize", "--fp8", "--ignore", bad, CV.llama, tmp.sub("o")],
                         ["quantize", "--int8", "--ignore", "lm", "--ignore", bad, CV.llama, tmp.sub("o")],
                         ["inspect", CV.llama, "--filter", bad]] {
                let r = try CLI.expect(args + ["--json"], status: 64, code: "usage.invalid_pattern")
                XCTAssertTrue(r.stderr.contains(args.contains("--filter") ? "--filter" : "--ignore"), r.stderr)
            }
        }
        XCTAssertFalse(CV.exists(tmp.sub("o")))
    }

    /// Named groups, `re:` entries and the empty pattern work end to end; an `re:` entry goes into
    /// the compressed-tensors ignore list as given, a search pattern as `re:.*(?:P)`.
    func testPythonSyntaxEndToEnd() throws {
        let tmp = try CVTempDir()
        let i = try CLI.expect(["inspect", CV.llama, "--filter", "layers\\.(?P<n>1)\\.mlp\\.(?:up|down)_proj", "--json"], status: 0)
        let listed = try XCTUnwrap((try JSONParser.parse(i.stdout))["tensors"]?.arrayValue).compactMap { $0["name"]?.stringValue }
        XCTAssertEqual(listed, ["model.layers.1.mlp.down_proj.weight", "model.layers.1.mlp.up_proj.weight"].filter { listed.contains($0) })
        XCTAssertEqual(Set(listed), ["model.layers.1.mlp.down_proj.weight", "model.layers.1.mlp.up_proj.weight"])
        let all = try CLI.expect(["inspect", CV.llama, "--filter", "", "--json"], status: 0)
        let everything = try CLI.expect(["inspect", CV.llama, "--json"], status: 0)
        XCTAssertEqual((try JSONParser.parse(all.stdout))["tensors"], (try JSONParser.parse(everything.stdout))["tensors"], "the empty pattern matches every name")

        let out = tmp.sub("out")
        try CLI.expect(["quantize", "--fp8", "--granularity", "channel", CV.llama, out,
                        "--ignore", "re:model\\.layers\\.0\\.", "--ignore", "(?P<p>up)_proj"], status: 0)
        let ignore = try XCTUnwrap(CV.json(out + "/config.json")["quantization_config"]?["ignore"]?.arrayValue).compactMap(\.stringValue)
        XCTAssertTrue(ignore.contains("re:model\\.layers\\.0\\."), "\(ignore)")
        XCTAssertTrue(ignore.contains("re:.*(?:(?P<p>up)_proj)"), "\(ignore)")
        let names = try SafeTensorsHeaderNames(out)
        XCTAssertTrue(names.contains("model.layers.1.self_attn.q_proj.weight_scale"), "layer 1 attention is quantized")
        XCTAssertFalse(names.contains("model.layers.0.self_attn.q_proj.weight_scale"), "re: entry keeps layer 0")
        XCTAssertFalse(names.contains("model.layers.1.mlp.up_proj.weight_scale"), "named-group pattern keeps up_proj")
    }

    private func SafeTensorsHeaderNames(_ dir: String) throws -> Set<String> {
        let r = try CLI.expect(["inspect", dir, "--json"], status: 0)
        return Set(try XCTUnwrap((try JSONParser.parse(r.stdout))["tensors"]?.arrayValue).compactMap { $0["name"]?.stringValue })
    }
}
