import Foundation
import JSON
import SystemIO
import TestSupport
import XCTest

@testable import Tokenizer

/// Long inputs stay linear-ish: BPE over one 100,000-byte word (a priority queue, as
/// `tokenizers` does, not a rescan per merge) and a 100,000-digit run under Qwen2's single-digit
/// regex (each match bounded, not the whole run measured per digit). Quadratic versions take
/// minutes here; the bound leaves a wide margin for a loaded machine in a debug build.
final class TokenizerScalingTests: XCTestCase {
    static let samplePath = PythonReference.packageRoot.appendingPathComponent("Samples/tokenizer.json").path

    func testLongWordsAndDigitRunsEncodeQuickly() throws {
        let json = try JSONParser.parse(try Sys.readFile(Self.samplePath))
        let sample = try Tokenizer(json: json, file: Self.samplePath)
        let word = String(repeating: "ab", count: 50_000)
        var t = Date()
        let ids = sample.encode(word)
        XCTAssertLessThan(Date().timeIntervalSince(t), 20)
        XCTAssertEqual(try sample.decode(ids), word)
        XCTAssertLessThanOrEqual(ids.count, 50_000)  // merged: at most one id per two bytes

        let split = JSONValue.object([("type", .string("Split")), ("pattern", .object([("Regex", .string(SplitPattern.qwen2Text))])),
                                      ("behavior", .string("Isolated")), ("invert", .bool(false))])
        let byteLevel = JSONValue.object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("use_regex", .bool(false))])
        let qwen = try Tokenizer(json: json.setting("pre_tokenizer", .object([("type", .string("Sequence")), ("pretokenizers", .array([split, byteLevel]))])))
        guard case .split(.llama3Style(digitRun: 1), _) = qwen.preTokenizers[0] else { return XCTFail("Qwen2's regex is not recognised") }
        let digits = String(repeating: "9", count: 100_000)
        t = Date()
        let d = qwen.encode(digits)
        XCTAssertLessThan(Date().timeIntervalSince(t), 20)
        XCTAssertEqual(d.count, 100_000)  // one piece, one id per digit
        XCTAssertEqual(Set(d), [sample.id(of: "9")!])
    }
}
