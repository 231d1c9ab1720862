import Foundation
import XCTest
import Diagnostics
import JSON
import SafeTensors
import SystemIO

/// The common error shape: every failure of every command exits with its category's status and,
/// with `--json`, prints `{"error": {"code", "exit_status", "message", "file", "tensor", "offset"}}`.
final class ErrorProtocolTests: XCTestCase {
    func testJSONErrorObjectHasEveryField() throws {
        let tmp = try CVTempDir()
        let missing = tmp.sub("nope")
        let r = try CLI.expect(["inspect", missing, "--json"], status: 1, code: "io.not_found")
        let e = try XCTUnwrap(r.error)
        XCTAssertEqual(e.objectMembers?.map(\.0), ["code", "exit_status", "message", "file", "tensor", "offset"])
        XCTAssertEqual(e["exit_status"]?.intValue, 1)
        XCTAssertEqual(e["file"]?.stringValue, missing)
        XCTAssertEqual(e["tensor"], .null)
        XCTAssertTrue(r.stderr.hasPrefix("error: \(missing): "), r.stderr)
    }

    func testTruncatedShardNamesFileAndOffset() throws {
        let tmp = try CVTempDir()
        let f = tmp.sub("x.safetensors")
        // Header length 1000 in a 12-byte file.
        try CV.write([0xE8, 0x03, 0, 0, 0, 0, 0, 0, 0x7B, 0x7D, 0x20, 0x20], to: f)
        let r = try CLI.expect(["inspect", f, "--json"], status: 1, code: "safetensors.header_out_of_bounds")
        XCTAssertEqual(r.error?["offset"]?.intValue, 0)
        XCTAssertEqual(r.error?["file"]?.stringValue, f)
    }

    func testUsageErrorsExit64WithJSON() throws {
        let tmp = try CVTempDir()
        try CLI.expect(["quantize", "--fp8", "--int8", CV.llama, tmp.sub("o"), "--json"], status: 64, code: "usage.conflicting_options")
        try CLI.expect(["inspect", "--no-such-flag", CV.llama, "--json"], status: 64, code: "usage")
        try CLI.expect(["frobnicate", "--json"], status: 64, code: "usage")
        // Help is not an error.
        XCTAssertEqual(try CLI.run(["quantize", "--help"]).status, 0)
    }

    func testOutputIsInputIsCategoryOutput() throws {
        let tmp = try CVTempDir()
        try CV.copyDirectory(CV.llama, to: tmp.sub("in"))
        let r = try CLI.expect(["quantize", "--fp8", tmp.sub("in"), tmp.sub("in"), "--json"], status: 1, code: "conversion.output_is_input")
        XCTAssertEqual(r.error?["file"]?.stringValue, tmp.sub("in"))
    }

    /// The text format is one for every error, and control characters in names are escaped.
    func testOneTextFormatWithEscapedNames() {
        XCTAssertEqual(Diagnostic.format(file: "a.safetensors", tensor: "w\u{0}\u{1B}[2J", offset: 8, message: "bad"),
                       "a.safetensors: tensor 'w\\u{0}\\u{1b}[2J' (byte 8): bad")
        XCTAssertEqual(IOError("open", path: "/x", errno: ENOENT).description, "/x: open failed: No such file or directory")
        XCTAssertEqual(IOError("open", path: "/x", errno: ENOENT).code, "io.not_found")
        XCTAssertEqual(SafeTensorsError(.sizeMismatch, file: "f", "m").code, "safetensors.size_mismatch")
        XCTAssertEqual(JSONError(offset: 3, message: "m", file: "p.json").description, "p.json (byte 3): m")
    }
}
