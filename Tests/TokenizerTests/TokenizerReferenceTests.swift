import Foundation
import JSON
import TestSupport
import XCTest

@testable import Tokenizer

/// Ids identical to the Python `tokenizers` package (Tests/Reference/tokenizer_reference.py, run
/// live): the sample tokenizer on all of the sample text, and small tokenizers built with the
/// Llama 3, Qwen2 and DeepSeek-V3 configurations on strings chosen to hit every branch of
/// their regexes and every added-token flag.
final class TokenizerReferenceTests: XCTestCase {
    /// One reference run: the strings and, per string, the ids with and without the
    /// post-processor's special tokens and Python's decode of the ids.
    struct Reference {
        var dir: PythonReference.TemporaryDirectory
        var strings: [String]
        var ids: [[Int32]]
        var plainIds: [[Int32]]
        /// Python's decode of each string's ids (not for `sample`, whose decode is the text).
        var decoded: [String]?
    }

    static func reference(_ args: [String]) throws -> Reference {
        let dir = try PythonReference.TemporaryDirectory(prefix: "tokref")
        try PythonReference.run("tokenizer_reference.py", args + [dir.path])
        func strings(_ name: String) throws -> [String] {
            let json = try JSONParser.parse([UInt8](try Data(contentsOf: dir.appending(name))))
            return try XCTUnwrap(json.arrayValue).map { try XCTUnwrap($0.stringValue) }
        }
        func split(_ ids: String, _ lens: String) throws -> [[Int32]] {
            let flat = try PythonReference.load(dir.url, ids, as: UInt32.self)
            var out: [[Int32]] = []
            var at = 0
            for n in try PythonReference.load(dir.url, lens, as: UInt32.self) {
                out.append(flat[at..<(at + Int(n))].map { Int32($0) })
                at += Int(n)
            }
            XCTAssertEqual(at, flat.count)
            return out
        }
        let r = Reference(dir: dir, strings: try strings("strings.json"), ids: try split("ids.bin", "lens.bin"),
                          plainIds: try split("plain_ids.bin", "plain_lens.bin"),
                          decoded: args[0] == "sample" ? nil : try strings("decoded.json"))
        XCTAssertEqual(r.strings.count, r.ids.count)
        XCTAssertEqual(r.strings.count, r.plainIds.count)
        XCTAssertEqual(r.strings.count, r.decoded?.count ?? r.strings.count)
        return r
    }

    /// Python's decode with skip_special_tokens=True, and of every id of the tricky strings
    /// alone (partial UTF-8 sequences).
    func checkDecodeOptions(_ tok: Tokenizer, _ r: Reference, label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let skip = try JSONParser.parse([UInt8](try Data(contentsOf: r.dir.appending("decoded_skip.json"))))
        for (k, v) in try XCTUnwrap(skip.arrayValue).enumerated() {
            XCTAssertEqual(try tok.decode(r.ids[k], skipSpecialTokens: true), v.stringValue, "\(label): decode skipping special tokens, string \(k)", file: file, line: line)
        }
        let each = try JSONParser.parse([UInt8](try Data(contentsOf: r.dir.appending("decoded_each.json"))))
        var n = 0
        for (k, v) in try XCTUnwrap(each.arrayValue).enumerated() {
            let pieces = try XCTUnwrap(v.arrayValue).map(\.stringValue)
            XCTAssertEqual(pieces.count, r.ids[k].count, file: file, line: line)
            for (id, expected) in zip(r.ids[k], pieces) {
                XCTAssertEqual(try tok.decode([id]), expected, "\(label): decode of id \(id) alone", file: file, line: line)
                n += 1
            }
        }
        XCTAssertGreaterThan(n, 200, file: file, line: line)
    }

    static var samplesPath: String { PythonReference.packageRoot.appendingPathComponent("Samples").path }

    /// Compares every string's ids (both with and without special tokens) and the decode.
    func check(_ tok: Tokenizer, _ r: Reference, label: String, file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        var compared = 0
        for (k, s) in r.strings.enumerated() {
            let plain = tok.encode(s, addSpecialTokens: false)
            let ids = tok.postProcessors.isEmpty ? plain : tok.encode(s)
            if ids != r.ids[k] || plain != r.plainIds[k] {
                let at = zip(plain, r.plainIds[k]).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(plain.count, r.plainIds[k].count)
                XCTFail("\(label): string \(k) \(String(s.prefix(80)).debugDescription): ids differ from tokenizers "
                        + "(\(plain.count) vs \(r.plainIds[k].count) ids, first difference at \(at): "
                        + "\(plain[at..<min(at + 8, plain.count)]) vs \(r.plainIds[k][at..<min(at + 8, r.plainIds[k].count)]))",
                        file: file, line: line)
                continue
            }
            compared += ids.count
            XCTAssertEqual(try tok.decode(ids), r.decoded?[k] ?? s, "\(label): decode of string \(k)", file: file, line: line)
        }
        return compared
    }

    func testSampleTokenizerMatchesCommittedEvalIds() throws {
        let tok = try Tokenizer.load(path: Self.samplesPath + "/tokenizer.json")
        let text = try String(contentsOfFile: Self.samplesPath + "/eval.txt", encoding: .utf8)
        let expected = try PythonReference.load(URL(fileURLWithPath: Self.samplesPath), "eval_ids.bin", as: UInt16.self, count: 141_482)
        let ids = tok.encode(text)
        XCTAssertEqual(ids.count, expected.count)
        XCTAssertEqual(ids, expected.map { Int32($0) })
        // Decode inverts encode.
        XCTAssertEqual(try tok.decode(ids), text)
    }

    func testSampleTokenizerMatchesPythonOnAllSampleText() throws {
        let tok = try Tokenizer.load(path: Self.samplesPath + "/tokenizer.json")
        let r = try Self.reference(["sample"])
        XCTAssertGreaterThan(r.strings.count, 2000)  // eval.txt, calib.txt, 400 × 5 eval_mc strings, tricky strings
        let n = try check(tok, r, label: "sample")
        XCTAssertGreaterThan(n, 300_000)
        // (`check` also asserted decode(encode(s)) == s for every string.)
        // Each model folder's copy is the same tokenizer.
        for model in ["deepseek-v3-tiny", "qwen2-tiny", "llama-tiny"] {
            let copy = try Tokenizer.load(path: "\(Self.samplesPath)/\(model)/tokenizer.json")
            XCTAssertEqual(copy.encode(r.strings[1]), r.ids[1], model)
        }
    }

    func checkConfiguration(_ name: String, roundTrip: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try Self.reference(["build", name])
        let path = r.dir.appending("tokenizer.json").path
        let tok = try Tokenizer.load(path: path)
        let n = try check(tok, r, label: name, file: file, line: line)
        XCTAssertGreaterThan(n, 200, file: file, line: line)
        try checkDecodeOptions(tok, r, label: name, file: file, line: line)
        // The general regex path (ICU) agrees on these strings too.
        let viaRegex = try Tokenizer.load(path: path, useScanners: false)
        for case .split(let p, _) in viaRegex.preTokenizers {
            switch p {
            case .regex, .literal: break
            default: XCTFail("\(name): a scanner was used with useScanners: false", file: file, line: line)
            }
        }
        _ = try check(viaRegex, r, label: name + " (regex engine)", file: file, line: line)
        // Decode inverts encode wherever normalization and lstrip/rstrip leave the text alone.
        // (`tokenizers` itself decodes the normalized added token `cafe\u{301}bar` to U+FFFD.)
        for s in r.strings where roundTrip && (s == s.precomposedStringWithCanonicalMapping || name != "qwen2") && !s.contains("<mask>") && !s.contains("<sep>") && !s.contains("bar") {
            XCTAssertEqual(try tok.decode(tok.encode(s, addSpecialTokens: false)), s, "\(name): round trip of \(s.debugDescription)", file: file, line: line)
        }
    }

    /// A Llama-3-sized vocabulary (128,000 entries, 127,742 merges): loading stays quick and the
    /// merge ranks hold at that scale.
    func testLlama3SizedVocabulary() throws {
        let r = try Self.reference(["large"])
        let start = Date()
        let tok = try Tokenizer.load(path: r.dir.appending("tokenizer.json").path)
        let loading = Date().timeIntervalSince(start)
        XCTAssertEqual(tok.vocabularySize, 128_000)
        XCTAssertLessThan(loading, 30, "loading a 7.5 MB tokenizer.json")
        XCTAssertGreaterThan(try check(tok, r, label: "large"), 300_000)
    }

    func testLlama3Configuration() throws { try checkConfiguration("llama3") }
    func testQwen2Configuration() throws { try checkConfiguration("qwen2") }
    func testDeepSeekV3Configuration() throws { try checkConfiguration("deepseek_v3") }
    /// ByteLevel's own regex with add_prefix_space; a string pattern with behaviour Removed, a
    /// regex that only the general engine runs, add_prefix_space on each split piece.
    func testPrefixSpaceConfiguration() throws { try checkConfiguration("prefix_space", roundTrip: false) }
    func testOtherSplitOptions() throws { try checkConfiguration("split_misc", roundTrip: false) }
}

/// The scanners' character classes (`\p{L}`, `\p{N}`, `\p{M}`, `\p{P}`, `\p{S}`, `\s`) agree
/// with Oniguruma's, code point by code point: each known regex splits a probe text that puts
/// every assigned code point beside a letter, digit, punctuation, mark, space and newline exactly
/// where `tokenizers` splits it. By default every 11th assigned code point above ASCII (a few
/// seconds); `DSCONVERT_TOKENIZER_CODE_POINT_STRIDE=1` checks all of them (about 75,000).
final class TokenizerClassTests: XCTestCase {
    func testScannersSplitEveryCodePointAsTokenizersDoes() throws {
        let stride = max(1, STFixtures.environmentInt("DSCONVERT_TOKENIZER_CODE_POINT_STRIDE", default: 11))
        let dir = try PythonReference.TemporaryDirectory(prefix: "tokcls")
        try PythonReference.run("tokenizer_reference.py", ["classes", String(stride), dir.path])
        let probe = try String(contentsOf: dir.appending("probe.txt"), encoding: .utf8).unicodeScalars.map(\.value)
        XCTAssertGreaterThan(probe.count, 400_000 / stride)
        let patterns = try XCTUnwrap(JSONParser.parse([UInt8](try Data(contentsOf: dir.appending("patterns.json")))).objectMembers)
        XCTAssertEqual(patterns.count, 5)
        for (name, regex) in patterns {
            let pattern = try SplitPattern.regex(try XCTUnwrap(regex.stringValue))
            if case .regex = pattern { XCTFail("\(name): the reference's regex is not one the scanners know") }
            let expected = try PythonReference.load(dir.url, name + ".bin", as: UInt32.self).map { Int($0) }
            var starts: [Int] = []
            var at = 0
            for m in pattern.matches(in: probe, 0..<probe.count) {
                if at < m.lowerBound { starts.append(at) }
                starts.append(m.lowerBound)
                at = m.upperBound
            }
            if at < probe.count { starts.append(at) }
            if starts != expected {
                let k = zip(starts, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(starts.count, expected.count)
                let near = k < expected.count ? expected[k] : probe.count
                let context = probe[max(0, near - 4)..<min(probe.count, near + 8)].map { String($0, radix: 16) }
                XCTFail("\(name): \(starts.count) pieces, tokenizers \(expected.count); first difference at piece \(k), near code points \(context)")
            }
        }
    }
}
