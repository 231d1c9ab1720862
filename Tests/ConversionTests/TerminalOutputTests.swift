import Foundation
import XCTest
import JSON
import SafeTensors

/// What dsconvert prints to a terminal: table columns sized from the data, names with control
/// characters escaped, messages naming the right scale, one error format (issue 12 item 30).
final class TerminalOutputTests: XCTestCase {
    func testInspectTableFitsEveryDTypeAndEscapesControlCharacters() throws {
        let tmp = try CVTempDir()
        let file = tmp.sub("odd.safetensors")
        let evil = "evil\u{0}name\u{1B}[31mred\u{7}"
        try CV.writeSafetensors(file, [
            (TensorSpec(name: "a", dtype: .f8e5m2fnuz, shape: [2, 3]), [UInt8](repeating: 1, count: 6)),
            (TensorSpec(name: evil, dtype: .u8, shape: [4]), [1, 2, 3, 4]),
            (TensorSpec(name: "b", dtype: .f8e4m3fnuz, shape: [1]), [0]),
        ])
        let r = try CLI.expect(["inspect", file], status: 0)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try XCTUnwrap(lines.first { $0.hasPrefix("name") })
        let row = try XCTUnwrap(lines.first { $0.hasPrefix("a ") })
        XCTAssertTrue(row.contains("F8_E5M2FNUZ"), "dtype not cut: \(row)")
        // Columns line up: each header word starts where its column starts.
        let dtypeColumn = try XCTUnwrap(header.range(of: "dtype")).lowerBound.utf16Offset(in: header)
        XCTAssertEqual(try XCTUnwrap(row.range(of: "F8_E5M2FNUZ")).lowerBound.utf16Offset(in: row), dtypeColumn, "\(header)\n\(row)")
        let shapeColumn = try XCTUnwrap(header.range(of: "shape")).lowerBound.utf16Offset(in: header)
        XCTAssertEqual(try XCTUnwrap(row.range(of: "[2, 3]")).lowerBound.utf16Offset(in: row), shapeColumn, "\(header)\n\(row)")
        // The hostile name is printed escaped; no control byte reaches standard output.
        XCTAssertTrue(r.stdout.contains("evil\\u{0}name\\u{1b}[31mred\\u{7}"), r.stdout)
        XCTAssertFalse(r.stdout.utf8.contains { $0 < 0x20 && $0 != 0x0A }, "a control byte was printed raw")
        // JSON keeps the exact name (escaped the JSON way).
        let j = try CLI.expect(["inspect", file, "--json"], status: 0)
        let names = try XCTUnwrap((try JSONParser.parse(j.stdout))["tensors"]?.arrayValue).compactMap { $0["name"]?.stringValue }
        XCTAssertTrue(names.contains(evil), "\(names)")
        // The summary's dtype list is not cut either.
        let summary = try CLI.expect(["inspect", file, "--summary"], status: 0)
        XCTAssertTrue(summary.stdout.contains("  F8_E5M2FNUZ "), summary.stdout)
    }

    /// An I8 weight is compressed-tensors: its missing scale is `weight_scale`.
    func testI8WeightWithoutScaleNamesWeightScale() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.llama, to: input)
        let f = try SafeTensorsFile(path: CV.llama + "/model.safetensors")
        let target = "model.layers.0.mlp.up_proj.weight"
        var items: [(TensorSpec, [UInt8])] = []
        for t in f.tensors {
            if t.name == target {
                items.append((TensorSpec(name: t.name, dtype: .i8, shape: t.shape), [UInt8](repeating: 1, count: t.shape.reduce(1, *))))
            } else {
                items.append((TensorSpec(name: t.name, dtype: t.dtype, shape: t.shape), Array(f.view(t).bytes)))
            }
        }
        try FileManager.default.removeItem(atPath: input + "/model.safetensors")
        try CV.writeSafetensors(input + "/model.safetensors", items)
        for args in [["quantize", "--fp8", input, tmp.sub("o")], ["dequantize", input, tmp.sub("o")]] {
            let r = try CLI.expect(args, status: 1)
            XCTAssertTrue(r.stderr.contains("model.layers.0.mlp.up_proj.weight_scale'"), r.stderr)
            XCTAssertFalse(r.stderr.contains("weight_scale_inv"), r.stderr)
        }
    }

    /// Every I/O failure reads `error: PATH: OPERATION failed: REASON` (or `PATH: is a …` for a
    /// non-regular file): the path first, as every other error.
    func testIOErrorsHaveOneFormat() throws {
        let tmp = try CVTempDir()
        try CV.write([1], to: tmp.sub("plainfile"))
        let cases: [([String], String)] = [
            (["inspect", tmp.sub("missing")], tmp.sub("missing") + ": stat failed: No such file or directory"),
            (["quantize", "--fp8", CV.llama, tmp.sub("plainfile") + "/out"], tmp.sub("plainfile") + ": mkdir failed: Not a directory"),
            (["merge-index", tmp.sub("plainfile")], tmp.sub("plainfile")),
        ]
        for (args, prefix) in cases {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("error: " + prefix), "\(args): \(r.stderr)")
            XCTAssertNil(r.stderr.range(of: #"^error: (open|stat|read|write|mkdir|rename|opendir) /"#, options: .regularExpression), r.stderr)
        }
    }
}
