import Foundation
import XCTest
import JSON

/// Two smoke tests of the built executable (everything else goes through the library): the CLI's
/// output equals the library's, and bad input gives a one-line error and a non-zero exit.
final class CLISmokeTests: XCTestCase {
    func run(_ args: [String]) throws -> CLI.Result { try CLI.run(args) }

    func testQuantizeCLIMatchesLibrary() throws {
        let tmp = try CVTempDir()
        let r = try run(["quantize", "--fp8", CV.deepseek, tmp.sub("cli"), "--quiet"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try CV.quantize(CV.deepseek, tmp.sub("lib"))
        try CV.assertSameDirectory(tmp.sub("cli"), tmp.sub("lib"))

        let i = try run(["inspect", CV.deepseek, "--json"])
        XCTAssertEqual(i.status, 0, i.stderr)
        XCTAssertEqual(try JSONParser.parse(i.stdout)["parameters"]?.intValue, 6_224_224)
    }

    func testBadInputExitsNonZeroWithOneLine() throws {
        let tmp = try CVTempDir()
        try CV.copyDirectory(CV.llama, to: tmp.sub("in"))
        let r = try run(["quantize", "--fp8", tmp.sub("in"), tmp.sub("in"), "--quiet"])
        XCTAssertNotEqual(r.status, 0)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("must not be the input"), r.stderr)
    }
}
