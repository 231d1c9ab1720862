import Foundation
import JSON
import SafeTensors
import SystemIO
import TestSupport
import XCTest

/// Bit-exact interoperability with the reference implementation (Python `safetensors` 0.8 with
/// numpy and ml_dtypes), through the helpers in Tests/Reference:
/// (a) files dsconvert writes are read by Python with the same names, dtypes, shapes, bytes and
///     metadata; (b) files Python writes are read by dsconvert the same way; (c) the sharded
///     sample checkpoint reads the same in both.
/// A missing Python or package fails these tests (run `make test`).
final class InteropTests: XCTestCase {
    private struct Written {
        var file: String
        var spec: TensorSpec
        var bytes: [UInt8]
    }

    /// Random bytes, except BOOL, which must hold 0 or 1.
    private func payload(_ spec: TensorSpec, seed: UInt64) -> [UInt8] {
        let raw = STRandom.bytes(spec.byteCount, seed: seed)
        return spec.dtype == .bool ? raw.map { $0 & 1 } : raw
    }

    func testFilesWrittenByDSConvertReadTheSameInPython() throws {
        let dir = try STTemporaryDirectory("st-interop-a")
        let files: [(String, [TensorSpec], [(String, String)]?)] = [
            ("all_dtypes.safetensors", [
                TensorSpec(name: "model.embed_tokens.weight", dtype: .bf16, shape: [16, 8]),
                TensorSpec(name: "f16", dtype: .f16, shape: [3, 5]),
                TensorSpec(name: "f32", dtype: .f32, shape: [2, 3, 4]),
                TensorSpec(name: "f64", dtype: .f64, shape: [3]),
                TensorSpec(name: "i64", dtype: .i64, shape: [5]),
                TensorSpec(name: "i32", dtype: .i32, shape: [2, 2]),
                TensorSpec(name: "i16", dtype: .i16, shape: [3]),
                TensorSpec(name: "i8", dtype: .i8, shape: [7]),
                TensorSpec(name: "u8", dtype: .u8, shape: [9]),
                TensorSpec(name: "u16", dtype: .u16, shape: [2]),
                TensorSpec(name: "u32", dtype: .u32, shape: [2]),
                TensorSpec(name: "u64", dtype: .u64, shape: [2]),
                TensorSpec(name: "mask", dtype: .bool, shape: [2, 5]),
                TensorSpec(name: "w.fp8_e4m3", dtype: .f8e4m3, shape: [4, 8]),
                TensorSpec(name: "w.fp8_e5m2", dtype: .f8e5m2, shape: [8, 4]),
                TensorSpec(name: "w.scale_e8m0", dtype: .f8e8m0, shape: [4]),
                TensorSpec(name: "c64", dtype: .c64, shape: [2]),
                TensorSpec(name: "scalar_f32", dtype: .f32, shape: []),
                TensorSpec(name: "scalar_bf16", dtype: .bf16, shape: []),
                TensorSpec(name: "empty_f32", dtype: .f32, shape: [0, 3]),
                TensorSpec(name: "empty_bf16", dtype: .bf16, shape: [4, 0]),
                TensorSpec(name: "名前.ünï \"q\"", dtype: .u8, shape: [2]),
            ], [("format", "pt"), ("quantization", "none"), ("note", "ünïcode ✓ \"quoted\" \\ back\nslash")]),
            ("no_metadata.safetensors", [TensorSpec(name: "w", dtype: .bf16, shape: [64, 33])], nil),
            ("sub_byte.safetensors", [
                TensorSpec(name: "f4", dtype: .f4, shape: [2, 4]),
                TensorSpec(name: "f6", dtype: .f6e2m3, shape: [4]),
                TensorSpec(name: "f8", dtype: .f8e4m3fnuz, shape: [3]),
            ], [("format", "pt")]),
            ("empty.safetensors", [], nil),
        ]
        var written: [Written] = []
        for (fi, (name, specs, metadata)) in files.enumerated() {
            let w = try SafeTensorsWriter(path: dir.file(name), tensors: specs, metadata: metadata)
            for (ti, spec) in specs.enumerated() {
                let bytes = payload(spec, seed: UInt64(fi * 100 + ti))
                // Large tensors go in three pieces, zero-size ones are written explicitly.
                if bytes.count > 64 {
                    let a = bytes.count / 3, b = 2 * bytes.count / 3
                    for r in [0..<a, a..<b, b..<bytes.count] { try w.write(spec.name, Array(bytes[r])) }
                } else {
                    try w.write(spec.name, bytes)
                }
                written.append(Written(file: name, spec: spec, bytes: bytes))
            }
            try w.finish()
        }

        let dumpPrefix = dir.file("dump")
        let summary = try STPython.runJSON("st_dump.py", [dir.path, dumpPrefix])
        XCTAssertEqual(summary["files"]?.intValue, files.count)
        let dump = try STReferenceDump(prefix: dumpPrefix)
        XCTAssertEqual(dump.tensors.count, written.count)
        let byKey = Dictionary(uniqueKeysWithValues: dump.tensors.map { ($0.file + "/" + $0.name, $0) })
        for w in written {
            guard let t = byKey[w.file + "/" + w.spec.name] else {
                XCTFail("\(w.file): Python does not see \(w.spec.name)")
                continue
            }
            XCTAssertEqual(t.dtype, w.spec.dtype.rawValue, w.spec.name)
            XCTAssertEqual(t.shape, w.spec.shape, w.spec.name)
            XCTAssertEqual(Array(dump.bytes(t)), w.bytes, "\(w.file)/\(w.spec.name): bytes differ")
        }
        for (name, _, metadata) in files {
            let expected = metadata.map { Dictionary(uniqueKeysWithValues: $0) }
            XCTAssertEqual(dump.metadata[name], .some(expected), name)
        }
        // And the numpy path agreed with the raw bytes for every dtype numpy has.
        XCTAssertGreaterThanOrEqual(summary["numpy_checked"]?.intValue ?? 0, 20)
    }

    func testFilesWrittenByPythonReadTheSameInDSConvert() throws {
        let dir = try STTemporaryDirectory("st-interop-b")
        _ = try STPython.run("st_write.py", [dir.path])
        let expected = try STReferenceDump(prefix: dir.file("expected"))
        XCTAssertGreaterThanOrEqual(expected.tensors.count, 20)
        let dtypes = Set(expected.tensors.map(\.dtype))
        for d in ["BF16", "F16", "F32", "F64", "F8_E4M3", "F8_E5M2", "I64", "U8", "BOOL"] {
            XCTAssertTrue(dtypes.contains(d), "st_write.py wrote no \(d) tensor")
        }
        // Every file through SafeTensorsFile directly …
        for file in Set(expected.tensors.map(\.file)).sorted() {
            let f = try SafeTensorsFile(path: dir.file(file))
            let mine = expected.tensors.filter { $0.file == file }
            XCTAssertEqual(f.tensors.count, mine.count, file)
            for t in mine {
                let v = try f.tensor(t.name)
                XCTAssertEqual(v.dtype.rawValue, t.dtype)
                XCTAssertEqual(v.shape, t.shape)
                XCTAssertTrue(v.bytes.elementsEqual(expected.bytes(t)), "\(file)/\(t.name)")
            }
        }
        // … and the directory as a checkpoint (no index: every *.safetensors file).
        let checkpoint = try SafeTensorsCheckpoint(path: dir.path)
        XCTAssertEqual(checkpoint.shards.count, 3)
        XCTAssertEqual(try expected.differences(from: checkpoint), [])
    }

    func testSampleCheckpointMatchesPython() throws {
        let sample = STFixtures.samplesDirectory + "/deepseek-v3-tiny"
        let checkpoint = try SafeTensorsCheckpoint(path: sample)
        let index = try XCTUnwrap(checkpoint.index)
        XCTAssertEqual(checkpoint.shards.count, 5)
        XCTAssertEqual(checkpoint.tensorCount, index.weightMap.count)
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(index.weightMap.map(\.0)))
        let totalSize = try XCTUnwrap(index.metadata.first { $0.0 == "total_size" }?.1.intValue)
        XCTAssertEqual(checkpoint.totalTensorBytes, totalSize, "index metadata.total_size")
        for (name, shard) in index.weightMap {
            XCTAssertEqual(checkpoint.location(name).map { checkpoint.shards[$0.shard].name }, shard, name)
        }

        let tmp = try STTemporaryDirectory("st-interop-c")
        let summary = try STPython.runJSON("st_dump.py", [sample, tmp.file("dump")])
        let dump = try STReferenceDump(prefix: tmp.file("dump"))
        XCTAssertEqual(summary["tensors"]?.intValue, checkpoint.tensorCount)
        XCTAssertEqual(dump.tensors.count, checkpoint.tensorCount)
        XCTAssertEqual(dump.tensors.reduce(0) { $0 + $1.range.count }, totalSize)
        XCTAssertEqual(try dump.differences(from: checkpoint), [])
    }
}
