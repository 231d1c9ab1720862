import XCTest
import JSON

/// The expected strings are what CPython's json module prints for the same documents:
/// `json.dumps(doc, separators=(',', ':'), ensure_ascii=False)` for `compact` and
/// `json.dumps(doc, indent=2, ensure_ascii=False) + "\n"` for `pretty` (the trailing newline is
/// how transformers writes config.json). They were produced with Python 3 and pasted here.
final class JSONWriterTests: XCTestCase {
    private struct Case {
        var source: String
        var compact: String
        var pretty: String
    }

    private let cases: [Case] = [
        Case(
            // json.dumps({"b": 1, "a": [True, False, None], "c": {"x": "y\n\"q\"\t\\", "e": {}, "l": []}})
            source: #"{"b": 1, "a": [true, false, null], "c": {"x": "y\n\"q\"\t\\", "e": {}, "l": []}}"#,
            compact: #"{"b":1,"a":[true,false,null],"c":{"x":"y\n\"q\"\t\\","e":{},"l":[]}}"#,
            pretty: "{\n  \"b\": 1,\n  \"a\": [\n    true,\n    false,\n    null\n  ],\n  \"c\": {\n    \"x\": \"y\\n\\\"q\\\"\\t\\\\\",\n    \"e\": {},\n    \"l\": []\n  }\n}\n"),
        Case(
            // {"name": "café € 😀", "ctl": "\x01\x1f\x7f", "nested": [[1, [2, [3]]], {"k": [{}]}]}
            source: #"{"name": "caf\u00e9 \u20ac \ud83d\ude00", "ctl": "\u0001\u001f\u007f", "nested": [[1, [2, [3]]], {"k": [{}]}]}"#,
            compact: "{\"name\":\"café € 😀\",\"ctl\":\"\\u0001\\u001f\u{7F}\",\"nested\":[[1,[2,[3]]],{\"k\":[{}]}]}",
            pretty: "{\n  \"name\": \"café € 😀\",\n  \"ctl\": \"\\u0001\\u001f\u{7F}\",\n  \"nested\": [\n    [\n      1,\n      [\n        2,\n        [\n          3\n        ]\n      ]\n    ],\n    {\n      \"k\": [\n        {}\n      ]\n    }\n  ]\n}\n"),
        Case(
            // [1, "two", [], {}, [[]], {"a": {"b": {"c": None}}}]
            source: #"[1, "two", [], {}, [[]], {"a": {"b": {"c": null}}}]"#,
            compact: #"[1,"two",[],{},[[]],{"a":{"b":{"c":null}}}]"#,
            pretty: "[\n  1,\n  \"two\",\n  [],\n  {},\n  [\n    []\n  ],\n  {\n    \"a\": {\n      \"b\": {\n        \"c\": null\n      }\n    }\n  }\n]\n"),
        Case(
            // {"rms_norm_eps": 1e-06, "x": 0.5, "n": -0.0, "i": 151643, "ctl": "\b\f\r/"}: the
            // number literals are ones Python itself prints this way.
            source: #"{"rms_norm_eps": 1e-06, "x": 0.5, "n": -0.0, "i": 151643, "ctl": "\b\f\r\/"}"#,
            compact: #"{"rms_norm_eps":1e-06,"x":0.5,"n":-0.0,"i":151643,"ctl":"\b\f\r/"}"#,
            pretty: "{\n  \"rms_norm_eps\": 1e-06,\n  \"x\": 0.5,\n  \"n\": -0.0,\n  \"i\": 151643,\n  \"ctl\": \"\\b\\f\\r/\"\n}\n"),
        Case(source: "[]", compact: "[]", pretty: "[]\n"),
        Case(source: "{}", compact: "{}", pretty: "{}\n"),
        Case(source: "\"s\"", compact: "\"s\"", pretty: "\"s\"\n"),
    ]

    func testMatchesPythonJSONDumps() throws {
        for c in cases {
            let v = try JSONParser.parse(c.source)
            XCTAssertEqual(JSONWriter.compact(v), c.compact, c.source)
            XCTAssertEqual(JSONWriter.pretty(v), c.pretty, c.source)
        }
    }

    func testBytesAndLengthAreTheSameText() throws {
        for c in cases {
            let v = try JSONParser.parse(c.source)
            XCTAssertEqual(JSONWriter.compactBytes(v), Array(c.compact.utf8), c.source)
            XCTAssertEqual(JSONWriter.prettyBytes(v), Array(c.pretty.utf8), c.source)
            XCTAssertEqual(JSONWriter.compactLength(v), c.compact.utf8.count, c.source)
        }
    }

    func testRoundTrip() throws {
        for c in cases {
            let v = try JSONParser.parse(c.source)
            let again = try JSONParser.parse(JSONWriter.compact(v))
            XCTAssertEqual(again, v)
            XCTAssertEqual(JSONWriter.compact(again), c.compact, "writing is a fixed point")
            XCTAssertEqual(try JSONParser.parse(JSONWriter.pretty(v)), v)
        }
    }

    func testEveryControlCharacterIsEscaped() throws {
        let all = String(String.UnicodeScalarView((0..<0x20).map { Unicode.Scalar(UInt8($0)) }))
        let text = JSONWriter.compact(.string(all))
        XCTAssertEqual(text, "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"")
        XCTAssertEqual(try JSONParser.parse(text), .string(all))
    }

    func testCustomIndent() {
        let v = JSONValue.object([("a", .array([.int(1)]))])
        XCTAssertEqual(JSONWriter.pretty(v, indent: 4), "{\n    \"a\": [\n        1\n    ]\n}\n")
    }

    func testValueHelpers() throws {
        XCTAssertEqual(JSONValue.int(-42), .number("-42"))
        XCTAssertEqual(JSONValue.double(.nan), .null)
        XCTAssertEqual(JSONValue.double(.infinity), .null)
        XCTAssertEqual(try JSONParser.parse(JSONWriter.compact(.double(1e-6))).doubleValue, 1e-6)
        let v = JSONValue.object([("a", .int(1)), ("b", .int(2))])
        XCTAssertEqual(v.setting("a", .int(3)).objectMembers?.map(\.0), ["a", "b"], "replaced in place")
        XCTAssertEqual(v.setting("c", .null).objectMembers?.map(\.0), ["a", "b", "c"])
        XCTAssertEqual(v.removing("a").objectMembers?.map(\.0), ["b"])
        XCTAssertNotEqual(JSONValue.object([("a", .int(1)), ("b", .int(2))]), .object([("b", .int(2)), ("a", .int(1))]))
    }
}
