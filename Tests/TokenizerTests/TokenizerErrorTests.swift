import Diagnostics
import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

@testable import Tokenizer

/// What the tokenizer does not implement is refused with a typed error naming the file and the
/// JSON key; malformed files and ids outside the vocabulary likewise.
final class TokenizerErrorTests: XCTestCase {
    static let samplePath = PythonReference.packageRoot.appendingPathComponent("Samples/tokenizer.json").path

    func sample() throws -> JSONValue { try JSONParser.parse(try Sys.readFile(Self.samplePath)) }

    /// Writes `json` to a file and loads it; the error must be a TokenizerError of `kind` at `key`
    /// naming that file.
    func expectError(_ json: JSONValue, _ kind: TokenizerError.Kind, key: String?, mentioning words: [String] = [],
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try PythonReference.TemporaryDirectory(prefix: "tokerr")
        let path = dir.appending("tokenizer.json").path
        try Data(JSONWriter.compact(json).utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Tokenizer.load(path: path), file: file, line: line) { error in
            guard let e = error as? TokenizerError else { return XCTFail("not a TokenizerError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, file: file, line: line)
            XCTAssertEqual(e.code, "tokenizer." + kind.rawValue, file: file, line: line)
            XCTAssertEqual(e.category, .input, file: file, line: line)
            XCTAssertEqual(e.file, path, file: file, line: line)
            XCTAssertEqual(e.key, key, file: file, line: line)
            let text = e.description
            XCTAssertTrue(text.hasPrefix(path + ": " + (key.map { $0 + ": " } ?? "")), text, file: file, line: line)
            for w in words { XCTAssertTrue(text.contains(w), "\(text) lacks \(w)", file: file, line: line) }
        }
    }

    func model(_ j: JSONValue, _ key: String, _ v: JSONValue) -> JSONValue { j.setting("model", j["model"]!.setting(key, v)) }

    func testOtherModelTypesAreRefused() throws {
        let j = try sample()
        for type in ["Unigram", "WordPiece", "WordLevel"] {
            try expectError(model(j, "type", .string(type)), .unsupported, key: "model.type", mentioning: [type])
        }
        try expectError(model(j, "byte_fallback", .bool(true)), .unsupported, key: "model.byte_fallback")
        try expectError(model(j, "continuing_subword_prefix", .string("##")), .unsupported, key: "model.continuing_subword_prefix")
        try expectError(model(j, "dropout", .double(0.1)), .unsupported, key: "model.dropout")
    }

    func testUnknownPipelineComponentsAreRefused() throws {
        let j = try sample()
        let byteLevel = j["pre_tokenizer"]!
        try expectError(j.setting("pre_tokenizer", .object([("type", .string("Metaspace"))])), .unsupported, key: "pre_tokenizer.type", mentioning: ["Metaspace"])
        let seq = JSONValue.object([("type", .string("Sequence")), ("pretokenizers", .array([.object([("type", .string("Digits"))]), byteLevel]))])
        try expectError(j.setting("pre_tokenizer", seq), .unsupported, key: "pre_tokenizer.pretokenizers[0].type", mentioning: ["Digits"])
        let merged = JSONValue.object([("type", .string("Split")), ("pattern", .object([("Regex", .string("\\s+"))])), ("behavior", .string("MergedWithPrevious")), ("invert", .bool(false))])
        try expectError(j.setting("pre_tokenizer", .object([("type", .string("Sequence")), ("pretokenizers", .array([merged, byteLevel]))])),
                        .unsupported, key: "pre_tokenizer.pretokenizers[0].behavior", mentioning: ["MergedWithPrevious"])
        let split = merged.setting("behavior", .string("Isolated"))
        try expectError(j.setting("pre_tokenizer", split), .unsupported, key: "pre_tokenizer", mentioning: ["ByteLevel"])
        try expectError(j.setting("pre_tokenizer", .null), .unsupported, key: "pre_tokenizer")
        try expectError(j.setting("normalizer", .object([("type", .string("NFKC"))])), .unsupported, key: "normalizer.type", mentioning: ["NFKC"])
        let norms = JSONValue.object([("type", .string("Sequence")), ("normalizers", .array([.object([("type", .string("NFC"))]), .object([("type", .string("Lowercase"))])]))])
        try expectError(j.setting("normalizer", norms), .unsupported, key: "normalizer.normalizers[1].type", mentioning: ["Lowercase"])
        try expectError(j.setting("post_processor", .object([("type", .string("BertProcessing"))])), .unsupported, key: "post_processor.type")
        try expectError(j.setting("decoder", .object([("type", .string("WordPiece"))])), .unsupported, key: "decoder.type")
        try expectError(j.setting("truncation", .object([("max_length", .int(8))])), .unsupported, key: "truncation")
    }

    func testMalformedFilesAreRefused() throws {
        let j = try sample()
        var merges = j["model"]!["merges"]!.arrayValue!
        merges[3] = .array([.string("Ġ"), .string("not-a-token")])
        try expectError(model(j, "merges", .array(merges)), .malformed, key: "model.merges[3]", mentioning: ["not-a-token"])
        merges[3] = .string("one two three")
        try expectError(model(j, "merges", .array(merges)), .malformed, key: "model.merges[3]")
        try expectError(model(j, "vocab", .array([])), .malformed, key: "model.vocab")
        try expectError(j.removing("model"), .malformed, key: "model")
        try expectError(j.setting("added_tokens", .array([.object([("id", .string("x"))])])), .malformed, key: "added_tokens[0].id")

        let dir = try PythonReference.TemporaryDirectory(prefix: "tokerr")
        let path = dir.appending("tokenizer.json").path
        try Data("{\"model\": [}".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Tokenizer.load(path: path)) { error in
            let e = error as? JSONError
            XCTAssertEqual(e?.file, path)
            XCTAssertEqual(e?.code, "json.syntax")
        }
        XCTAssertThrowsError(try Tokenizer.load(path: dir.appending("absent.json").path)) { error in
            XCTAssertEqual((error as? IOError)?.code, "io.not_found")
        }
    }

    func testIdsOutsideTheVocabularyAreRefused() throws {
        let tok = try Tokenizer.load(path: Self.samplePath)
        XCTAssertEqual(tok.vocabularySize, 4096)
        for bad: Int32 in [4096, -1, 1 << 30] {
            XCTAssertThrowsError(try tok.decode([5, bad])) { error in
                let e = error as? TokenizerError
                XCTAssertEqual(e?.code, "tokenizer.unknown_id")
                XCTAssertEqual(e?.file, Self.samplePath)
                XCTAssertTrue(e?.message.contains("\(bad)") ?? false)
            }
        }
    }

    func testSpecialTokensAndDecodeOptions() throws {
        let tok = try Tokenizer.load(path: Self.samplePath)
        // <|endoftext|> is id 0 and special; the sample has no BOS template.
        XCTAssertEqual(tok.id(of: "<|endoftext|>"), 0)
        XCTAssertTrue(tok.isSpecial(0))
        let ids = tok.encode("a<|endoftext|>b")
        XCTAssertEqual(ids.filter { $0 == 0 }.count, 1)
        XCTAssertEqual(try tok.decode(ids), "a<|endoftext|>b")
        XCTAssertEqual(try tok.decode(ids, skipSpecialTokens: true), "ab")
        XCTAssertEqual(tok.encode(""), [])
    }
}
