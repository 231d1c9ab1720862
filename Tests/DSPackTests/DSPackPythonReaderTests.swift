import Checkpoint
import Conversion
import Foundation
import JSON
import TestSupport
import XCTest

/// The Python reader (Formats/python/dspack) on packs written by dsconvert: every tensor's bytes
/// equal safetensors' reading of the source folder, and corrupted copies fail with the error
/// code Formats/dspack.md §7 assigns (expected codes written here from the spec, not from a run).
final class DSPackPythonReaderTests: XCTestCase {
    private func check(sample: String, line: UInt = #line) throws {
        let dir = try STTemporaryDirectory("dspack-py")
        let src = STFixtures.samplesDirectory + "/" + sample
        let pack = dir.file(sample + ".dspack")
        _ = try Packer.pack(try Checkpoint(path: src), to: pack)
        let out = try PythonReference.run("dspack_python_reader.py", [pack, src, dir.path])
        let r = try JSONParser.parse(out)
        XCTAssertEqual(r["mismatched"], .array([]), out, line: line)
        XCTAssertEqual(r["extra"], .array([]), line: line)
        XCTAssertEqual(r["zero_copy"], .bool(true), line: line)
        XCTAssertEqual(r["files_equal"], .bool(true), line: line)
        XCTAssertEqual(r["verify"], .array([]), line: line)
        XCTAssertEqual(r["tensors"], .int(try Checkpoint.openStore(path: src).tensorNames.count), line: line)
        // BF16 comes back as ml_dtypes' bfloat16, not as raw uint16.
        XCTAssertEqual(r["dtypes"]?["model.embed_tokens.weight"], .string("bfloat16"), line: line)

        guard case .object(let c)? = r["corruptions"] else { return XCTFail("no corruptions: \(out)", line: line) }
        let expected: [String: String] = [
            "short": "truncated",                  // §7.1 step 1: under 64 bytes
            "magic": "bad_magic",                  // step 2
            "version": "unsupported_version",      // step 3: version_major 3
            "entry_count_huge": "header_size",     // step 4: header_end past the file
            "header_byte": "header_digest",        // step 5: a flipped entry-table byte
            "digest_byte": "header_digest",        // step 5: a flipped digest byte
            "padding_byte": "padding_nonzero",     // step 7
            "truncated_data": "truncated",         // step 6: last data page cut off
            "appended": "trailer_invalid",         // step 10: one byte after the data region
        ]
        for (k, code) in expected {
            XCTAssertEqual(c.first { $0.0 == k }?.1, .string(code), k, line: line)
        }
        // §7.2: verify names the entry whose data changed, and the entry before a dirty gap.
        let victim = r["victim"]!, gapped = r["gapped"]!
        XCTAssertEqual(c.first { $0.0 == "tensor_byte" }?.1, .array([.array([.string("checksum_mismatch"), victim])]), line: line)
        XCTAssertEqual(c.first { $0.0 == "gap_byte" }?.1, .array([.array([.string("padding_nonzero"), gapped])]), line: line)
    }

    func testQwen2Sample() throws { try check(sample: "qwen2-tiny") }
    func testDeepSeekSample() throws { try check(sample: "deepseek-v3-tiny") }
}
