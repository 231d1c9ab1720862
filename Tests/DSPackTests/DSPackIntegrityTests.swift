import DSPack
import Foundation
import JSON
import SystemIO
import Tensors
import TestSupport
import XCTest

/// §7: any single changed byte of a pack is found, by opening or by `verify`.
final class DSPackIntegrityTests: XCTestCase {
    /// A pack of a few KiB: tensors of several dtypes, a scalar, an empty tensor and a file.
    private func smallPack(_ path: String) throws -> [UInt8] {
        var rng = STRandom(seed: 18)
        let tensors: [(TensorSpec, [UInt8])] = [
            (TensorSpec(name: "a.weight", dtype: .bf16, shape: [3, 5]), rng.bytes(30)),
            (TensorSpec(name: "a.weight_scale", dtype: .f32, shape: [3, 1]), rng.bytes(12)),
            (TensorSpec(name: "s", dtype: .i64, shape: []), rng.bytes(8)),
            (TensorSpec(name: "empty", dtype: .f16, shape: [0, 4]), []),
            (TensorSpec(name: "q", dtype: .f8e4m3, shape: [7]), rng.bytes(7)),
        ]
        let w = try DSPackWriter(path: path, tensors: tensors.map { DSPackWriter.Tensor($0.0) },
                                 files: [("config.json", Array("{\"model_type\": \"llama\"}".utf8))],
                                 metadata: .object([("writer", .string("test"))]))
        for (s, b) in tensors { try w.write(s.name, b) }
        try w.finish()
        XCTAssertEqual(w.entries[0].weightScale, 1, "a.weight names its scale")
        return try Sys.readFile(path)
    }

    /// Open + verify, the codes found (empty when the pack passes).
    private func check(_ path: String) -> [String] {
        do {
            let p = try DSPackFile(path: path)
            return DSPackVerifier.verify(p).map(\.specCode)
        } catch let e as DSPackError { return [e.specCode] } catch { return ["\(error)"] }
    }

    func testEverySingleByteFlipIsDetected() throws {
        let dir = try STTemporaryDirectory("dspack")
        let path = dir.file("small.dspack")
        let good = try smallPack(path)
        XCTAssertLessThanOrEqual(good.count, 64 << 10)
        XCTAssertEqual(check(path), [])
        // The independent parser agrees the pristine pack is valid (digest and every XXH3).
        let py = try PythonReference.run("dspack_check.py", ["--structure-only", path])
        XCTAssertTrue(py.contains("\"tensors\": 5"), py)
        let fd = try Sys.open(path, O_RDWR)
        defer { Sys.close(fd) }
        var undetected: [Int] = []
        for at in 0..<good.count {
            var v = good[at] ^ 0x5A
            try withUnsafeBytes(of: &v) { try Sys.pwriteAll(fd, path: path, $0, offset: at) }
            if check(path).isEmpty { undetected.append(at) }
            var o = good[at]
            try withUnsafeBytes(of: &o) { try Sys.pwriteAll(fd, path: path, $0, offset: at) }
        }
        XCTAssertEqual(undetected, [], "flips at these offsets went unnoticed")
        XCTAssertEqual(check(path), [])
    }

    func testVerifyNamesEachCorruptedTensor() throws {
        let dir = try STTemporaryDirectory("dspack")
        let path = dir.file("small.dspack")
        var b = try smallPack(path)
        let p = try DSPackFile(path: path)
        let a = p.entries[0], q = p.entries[4]
        b[a.dataOffset + 3] ^= 1
        b[q.dataOffset + q.dataSize - 1] ^= 0x80
        b[q.dataOffset + q.dataSize + 10] = 7  // the gap after q
        try AtomicFile.write(b, to: path)
        let errs = DSPackVerifier.verify(try DSPackFile(path: path))
        XCTAssertEqual(errs.map(\.specCode), ["checksum_mismatch", "checksum_mismatch", "padding_nonzero"])
        XCTAssertEqual(errs.map(\.tensor), ["a.weight", "q", "q"])
        XCTAssertEqual(errs[2].offset, q.dataOffset + q.dataSize + 10)
    }
}
