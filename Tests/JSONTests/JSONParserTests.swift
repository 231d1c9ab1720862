import XCTest
import JSON

final class JSONParserTests: XCTestCase {
    // MARK: helpers

    private func parse(_ text: String, maxDepth: Int = 64, file: StaticString = #filePath, line: UInt = #line) -> JSONValue? {
        do {
            return try JSONParser.parse(text, maxDepth: maxDepth)
        } catch {
            XCTFail("unexpected error for \(text.debugDescription): \(error)", file: file, line: line)
            return nil
        }
    }

    /// Asserts that `bytes` is rejected at `offset` with a message containing `fragment`.
    private func assertRejected(_ bytes: [UInt8], at offset: Int, _ fragment: String, maxDepth: Int = 64,
                                file: StaticString = #filePath, line: UInt = #line) {
        do {
            let v = try JSONParser.parse(bytes, maxDepth: maxDepth)
            XCTFail("accepted \(String(decoding: bytes, as: UTF8.self).debugDescription) as \(v)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.offset, offset, "offset for \(String(decoding: bytes, as: UTF8.self).debugDescription): \(error)", file: file, line: line)
            XCTAssertTrue(error.message.contains(fragment), "message '\(error.message)' lacks '\(fragment)'", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix("(byte \(offset)): "), error.description, file: file, line: line)
        }
    }

    private func assertRejected(_ text: String, at offset: Int, _ fragment: String, maxDepth: Int = 64,
                                file: StaticString = #filePath, line: UInt = #line) {
        assertRejected(Array(text.utf8), at: offset, fragment, maxDepth: maxDepth, file: file, line: line)
    }

    /// `"` + bytes + `"`
    private func quoted(_ bytes: [UInt8]) -> [UInt8] { [0x22] + bytes + [0x22] }

    // MARK: valid documents

    func testScalars() {
        XCTAssertEqual(parse("null"), .null)
        XCTAssertEqual(parse("true"), .bool(true))
        XCTAssertEqual(parse(" \t\r\nfalse \n"), .bool(false))
        XCTAssertEqual(parse("\"\""), .string(""))
        XCTAssertEqual(parse("\"plain ascii\""), .string("plain ascii"))
        XCTAssertEqual(parse("0"), .number("0"))
    }

    func testNestingAndKeyOrder() throws {
        let v = try XCTUnwrap(parse(#"{"zeta": 1, "alpha": [true, {"m": null, "b": []}], "mid": {"y": {}, "x": "s"}}"#))
        let members = try XCTUnwrap(v.objectMembers)
        XCTAssertEqual(members.map(\.0), ["zeta", "alpha", "mid"], "document order, not sorted")
        XCTAssertEqual(v["zeta"], .number("1"))
        let alpha = try XCTUnwrap(v["alpha"]?.arrayValue)
        XCTAssertEqual(alpha.count, 2)
        XCTAssertEqual(alpha[0], .bool(true))
        XCTAssertEqual(alpha[1].objectMembers?.map(\.0), ["m", "b"])
        XCTAssertEqual(alpha[1]["b"], .array([]))
        XCTAssertEqual(v["mid"]?.objectMembers?.map(\.0), ["y", "x"])
        XCTAssertEqual(v["mid"]?["y"], .object([]))
        XCTAssertNil(v["missing"])

        let many = "{" + (0..<200).reversed().map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
        XCTAssertEqual(parse(many)?.objectMembers?.map(\.0), (0..<200).reversed().map { "k\($0)" })
    }

    func testEscapes() {
        XCTAssertEqual(parse(#""\"\\\/\b\f\n\r\t""#), .string("\"\\/\u{08}\u{0C}\n\r\t"))
        XCTAssertEqual(parse(#""\u0041\u00e9\u00E9\u20ac\u0000""#), .string("Aéé€\u{0}"))
        XCTAssertEqual(parse(#""a\u0062c""#), .string("abc"))
        // Escapes mixed with raw UTF-8.
        XCTAssertEqual(parse("\"é\\n€\""), .string("é\n€"))
    }

    func testSurrogatePairs() {
        XCTAssertEqual(parse(#""\ud83d\ude00""#), .string("😀"))
        XCTAssertEqual(parse(#""\uD834\uDD1E""#), .string("𝄞"))
        XCTAssertEqual(parse(#""\ud800\udc00""#), .string("\u{10000}"))
        XCTAssertEqual(parse(#""\udbff\udfff""#), .string("\u{10FFFF}"))
        XCTAssertEqual(parse(#""x\ud83d\ude00y""#), .string("x😀y"))
    }

    func testRawUTF8() {
        // 2-, 3- and 4-byte sequences at the edges of their ranges.
        let samples: [[UInt8]] = [
            [0xC2, 0x80], [0xDF, 0xBF], [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80],
            [0xEF, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
        ]
        for s in samples {
            XCTAssertEqual(try JSONParser.parse(quoted(s)), .string(String(decoding: s, as: UTF8.self)), "\(s)")
        }
        // DEL is not a control character in JSON.
        XCTAssertEqual(parse("\"\u{7F}\""), .string("\u{7F}"))
    }

    func testNumbersKeepTheirText() {
        for text in ["0", "-0", "1", "-1", "123456789", "0.5", "-0.0", "1e-06", "1E+2", "1e5", "2.5E-10", "6.02214076e23",
                     "123456789012345678901234567890", "1e400", "-9223372036854775809", "0.000001"] {
            XCTAssertEqual(parse(text), .number(text), text)
            guard case .number(let literal)? = parse("[\(text)]")?.arrayValue?.first else { return XCTFail(text) }
            XCTAssertEqual(literal, text, "literal text must be kept, not reformatted")
            XCTAssertEqual(JSONWriter.compact(.array([.number(literal)])), "[\(text)]")
        }
        XCTAssertEqual(parse("151643")?.intValue, 151643)
        XCTAssertEqual(parse("-7")?.intValue, -7)
        XCTAssertEqual(parse("1e-06")?.doubleValue, 1e-6)
        XCTAssertNil(parse("0.5")?.intValue)
        XCTAssertNil(parse("123456789012345678901234567890")?.intValue)
    }

    func testTopLevelFromRawBufferSlice() throws {
        // Offsets are relative to the buffer handed in, not to any larger allocation.
        let bytes = Array("xxxx{\"a\":1}}".utf8)
        let v = try bytes.withUnsafeBytes { try JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0[4..<11])) }
        XCTAssertEqual(v, .object([("a", .number("1"))]))
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try JSONParser.parse(UnsafeRawBufferPointer(rebasing: $0[4..<12])) }) { e in
            XCTAssertEqual((e as? JSONError)?.offset, 7)
        }
    }

    // MARK: rejections

    func testInvalidUTF8() {
        let cases: [(String, [UInt8], Int)] = [
            ("overlong 2-byte NUL", quoted([0xC0, 0x80]), 1),
            ("overlong 2-byte", quoted([0xC1, 0xBF]), 1),
            ("overlong 3-byte", quoted([0x61, 0xE0, 0x80, 0xAF]), 2),
            ("overlong 4-byte", quoted([0xF0, 0x8F, 0xBF, 0xBF]), 1),
            ("UTF-8 encoded high surrogate U+D800", quoted([0xED, 0xA0, 0x80]), 1),
            ("UTF-8 encoded low surrogate U+DFFF", quoted([0x61, 0x62, 0xED, 0xBF, 0xBF]), 3),
            ("above U+10FFFF", quoted([0xF4, 0x90, 0x80, 0x80]), 1),
            ("F5 lead byte", quoted([0xF5, 0x80, 0x80, 0x80]), 1),
            ("FF byte", quoted([0xFF]), 1),
            ("stray continuation byte", quoted([0x61, 0x80]), 2),
            ("truncated 2-byte before quote", quoted([0xC3]), 1),
            ("truncated 3-byte before quote", quoted([0xE2, 0x82]), 1),
            ("truncated 4-byte before quote", quoted([0xF0, 0x9F, 0x98]), 1),
            ("truncated at end of input", [0x22, 0x61, 0xE2, 0x82], 2),
            ("continuation replaced by ASCII", quoted([0xE2, 0x41, 0x82]), 1),
            ("in an object key", Array("{\"ok\":1,\"".utf8) + [0xC0, 0xAF] + Array("\":2}".utf8), 9),
            ("after escapes", Array("\"\\n\\u0041".utf8) + [0xED, 0xA0, 0x80, 0x22], 9),
        ]
        for (label, bytes, offset) in cases {
            assertRejected(bytes, at: offset, "invalid UTF-8")
            _ = label
        }
        // Non-ASCII outside a string is simply an unexpected character.
        assertRejected([0xEF, 0xBB, 0xBF] + Array("{}".utf8), at: 0, "unexpected character")
    }

    func testControlCharactersInStrings() {
        for c: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F] {
            assertRejected(quoted([0x61, 0x62, c, 0x63]), at: 3, "control character")
            assertRejected(Array("{\"k\":\"é".utf8) + [c] + Array("\"}".utf8), at: 8, "control character")
        }
    }

    func testTrailingData() {
        assertRejected("{} x", at: 3, "trailing data")
        assertRejected("1 2", at: 2, "trailing data")
        assertRejected("{}}", at: 2, "trailing data")
        assertRejected("[1]\u{0}", at: 3, "trailing data")
        assertRejected("truex", at: 4, "trailing data")
        XCTAssertEqual(parse("{}  \n\t\r"), .object([]), "trailing whitespace is fine")
    }

    func testNumberSyntax() {
        assertRejected("01", at: 1, "leading zero")
        assertRejected("[-01]", at: 3, "leading zero")
        assertRejected("{\"a\":00}", at: 6, "leading zero")
        assertRejected("-", at: 1, "invalid number")
        assertRejected("[-]", at: 2, "invalid number")
        assertRejected("1.", at: 2, "digit expected after '.'")
        assertRejected("1.e5", at: 2, "digit expected after '.'")
        assertRejected(".5", at: 0, "unexpected character")
        assertRejected("1e", at: 2, "exponent")
        assertRejected("1e+", at: 3, "exponent")
        assertRejected("+1", at: 0, "unexpected character")
        assertRejected("0x10", at: 1, "trailing data")
        assertRejected("NaN", at: 0, "unexpected character")
        assertRejected("-Infinity", at: 1, "invalid number")
    }

    func testDuplicateKeys() {
        assertRejected(#"{"a":1,"a":2}"#, at: 7, "duplicate key \"a\"")
        assertRejected(#"{"x":{"a":1,"b":2,"a":3}}"#, at: 18, "duplicate key")
        // An escaped spelling of the same key is the same key.
        assertRejected(#"{"ab":1,"a\u0062":2}"#, at: 8, "duplicate key")
        // The same key in different objects is fine.
        XCTAssertNotNil(parse(#"{"a":{"a":1},"b":{"a":2}}"#))
    }

    func testDepthLimit() {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNotNil(parse(ok))
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        assertRejected(deep, at: 64, "nesting deeper than 64")
        let objects = String(repeating: "{\"a\":", count: 5) + "1" + String(repeating: "}", count: 5)
        XCTAssertNotNil(parse(objects, maxDepth: 5))
        // The sixth '{' is at byte 5 * 5 = 25.
        let deeper = String(repeating: "{\"a\":", count: 6) + "1" + String(repeating: "}", count: 6)
        assertRejected(deeper, at: 25, "nesting deeper than 5", maxDepth: 5)
        // Hostile depth does not blow the stack.
        let hostile = String(repeating: "[", count: 1_000_000)
        assertRejected(hostile, at: 64, "nesting deeper")
    }

    func testLoneSurrogates() {
        // Reported at the backslash of the escape that has no partner.
        assertRejected(#""\ud800""#, at: 1, "lone UTF-16 surrogate")
        assertRejected(#""ab\ud800x""#, at: 3, "lone UTF-16 surrogate")
        assertRejected(#""\udc00""#, at: 1, "lone UTF-16 surrogate")
        assertRejected(#""xy\udfff\ud800""#, at: 3, "lone UTF-16 surrogate")
        assertRejected(#""\ud800\u0041""#, at: 1, "surrogate")
        assertRejected(#""\ud800\ud800""#, at: 1, "surrogate")
        assertRejected(#""\ud800\n""#, at: 1, "lone UTF-16 surrogate")
        assertRejected(#"{"k":"\ud83d"}"#, at: 6, "lone UTF-16 surrogate")
    }

    func testOtherSyntaxErrors() {
        assertRejected("", at: 0, "unexpected end")
        assertRejected("   ", at: 3, "unexpected end")
        assertRejected("{", at: 1, "unexpected end")
        assertRejected("{\"a\"", at: 4, "expected ':'")
        assertRejected("{\"a\":", at: 5, "unexpected end")
        assertRejected("{\"a\":1", at: 6, "unexpected end")
        assertRejected("{\"a\":1,}", at: 7, "expected a string key")
        assertRejected("{a:1}", at: 1, "expected a string key")
        assertRejected("{\"a\" 1}", at: 5, "expected ':'")
        assertRejected("{\"a\":1 \"b\":2}", at: 7, "expected ',' or '}'")
        assertRejected("[1,]", at: 3, "unexpected character")
        assertRejected("[1 2]", at: 3, "expected ',' or ']'")
        assertRejected("[", at: 1, "unexpected end")
        assertRejected("\"abc", at: 0, "unterminated string")
        assertRejected("\"é", at: 0, "unterminated string")
        assertRejected("\"\\", at: 0, "unterminated string")
        assertRejected("\"\\x\"", at: 1, "invalid escape")
        assertRejected("\"ab\\'\"", at: 3, "invalid escape")
        assertRejected("[\"\\u12\",1]", at: 6, "invalid hex digit")
        assertRejected("\"\\u12", at: 3, "truncated \\u escape")
        assertRejected("\"\\u00G0\"", at: 5, "invalid hex digit")
        assertRejected("tru", at: 0, "unexpected end")
        assertRejected("nul1", at: 0, "invalid literal")
        assertRejected("True", at: 0, "unexpected character")
    }
}
