import Checkpoint
import Conversion
import Foundation
import Quantization
import SafeTensors
import TestSupport
import XCTest

/// The codec seam: `StoredWeight.dequantize(rows:cols:into:leadingDimension:)` decodes tiles of
/// every stored encoding to exactly the f32 values an independent numpy + ml_dtypes decoder
/// (`Tests/Reference/codec_reference.py`) computes: plain BF16, DeepSeek block FP8 with partial
/// blocks, compressed-tensors FP8 per tensor / channel, INT8 per channel, and INT8 / FP8 with
/// zero points.
final class StoredWeightTests: XCTestCase {
    private static func sample(_ name: String) -> String {
        PythonReference.packageRoot.appendingPathComponent("Samples").appendingPathComponent(name).path
    }

    private static func quantize(_ input: String, to out: String, format: QuantizationScheme.Format, granularity: QuantizationScheme.Granularity?) throws {
        let scheme = try QuantizationScheme(format: format, granularity: granularity)
        let ckpt = try Checkpoint(path: input)
        let plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: [], shardSize: nil)
        _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
    }

    /// A checkpoint of asymmetric weights: I8 per channel and F8_E4M3 per tensor, with zero points.
    private static func writeAsymmetric(to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SystemRandomNumberGenerator()
        let rows = 37, cols = 300
        let specs = [
            TensorSpec(name: "a.weight", dtype: .i8, shape: [rows, cols]),
            TensorSpec(name: "a.weight_scale", dtype: .bf16, shape: [rows, 1]),
            TensorSpec(name: "a.weight_zero_point", dtype: .i8, shape: [rows, 1]),
            TensorSpec(name: "b.weight", dtype: .f8e4m3, shape: [rows, cols]),
            TensorSpec(name: "b.weight_scale", dtype: .f32, shape: [1]),
            TensorSpec(name: "b.weight_zero_point", dtype: .f32, shape: [1]),
        ]
        let w = try SafeTensorsWriter(path: dir + "/model.safetensors", tensors: specs)
        try w.write("a.weight", (0..<rows * cols).map { _ in UInt8.random(in: 0...255, using: &rng) })
        // BF16 scales in [2^-10, 2^-4): exponent 117..122, random mantissa.
        var scales: [UInt8] = []
        for _ in 0..<rows {
            let bits = UInt16(UInt8.random(in: 117...122, using: &rng)) << 7 | UInt16.random(in: 0..<128, using: &rng)
            scales += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
        }
        try w.write("a.weight_scale", scales)
        try w.write("a.weight_zero_point", (0..<rows).map { _ in UInt8(bitPattern: Int8.random(in: -20...20, using: &rng)) })
        // E4M3 codes without the NaN codes 0x7F / 0xFF.
        try w.write("b.weight", (0..<rows * cols).map { _ in UInt8.random(in: 0...254, using: &rng) & 0xFE | 0 })
        try w.write("b.weight_scale", withUnsafeBytes(of: Float(0.0123)) { Array($0) })
        try w.write("b.weight_zero_point", withUnsafeBytes(of: Float(1.5)) { Array($0) })
        try w.finish()
    }

    func testTilesMatchTheNumpyDecoder() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "codec")
        let dirs: [String] = [
            Self.sample("deepseek-v3-tiny"),
            tmp.appending("ds-fp8-block").path,
            tmp.appending("ds-fp8-channel").path,
            tmp.appending("qwen-fp8-tensor").path,
            tmp.appending("qwen-int8").path,
            tmp.appending("asym").path,
        ]
        try Self.quantize(dirs[0], to: dirs[1], format: .fp8, granularity: nil)
        try Self.quantize(dirs[0], to: dirs[2], format: .fp8, granularity: .channel)
        try Self.quantize(Self.sample("qwen2-tiny"), to: dirs[3], format: .fp8, granularity: .tensor)
        try Self.quantize(Self.sample("qwen2-tiny"), to: dirs[4], format: .int8, granularity: nil)
        try Self.writeAsymmetric(to: dirs[5])
        let refPath = tmp.appending("ref.safetensors").path
        try PythonReference.run("codec_reference.py", [refPath] + dirs)
        let ref = try SafeTensorsCheckpoint(path: refPath)

        var checked = 0
        var encodings = Set<String>()
        for (k, dir) in dirs.enumerated() {
            let store = try SafeTensorsCheckpoint(path: dir)
            for name in store.tensorNames where name.hasSuffix(".weight") && store.info(name)!.shape.count == 2 {
                let w = try StoredWeight(name, in: store)
                encodings.insert(w.encoding.description)
                let want = try ref.view("\(k)/\(name)").elements(as: Float.self)
                // The whole matrix in one tile, then an odd tile that crosses block edges.
                var got = [Float](repeating: .nan, count: w.rows * w.cols)
                got.withUnsafeMutableBufferPointer { w.dequantize(rows: 0..<w.rows, cols: 0..<w.cols, into: $0.baseAddress!, leadingDimension: w.cols) }
                for i in 0..<got.count where got[i].bitPattern != want[i].bitPattern {
                    XCTFail("\(dir) \(name) [\(i / w.cols), \(i % w.cols)] (\(w.encoding)): \(got[i]) != \(want[i])")
                    break
                }
                let r0 = w.rows / 3, r1 = max(r0 + 1, w.rows - 1), c0 = min(w.cols - 1, 5), c1 = w.cols
                let ld = c1 - c0 + 3
                var tile = [Float](repeating: .nan, count: (r1 - r0) * ld)
                tile.withUnsafeMutableBufferPointer { w.dequantize(rows: r0..<r1, cols: c0..<c1, into: $0.baseAddress!, leadingDimension: ld) }
                outer: for r in r0..<r1 {
                    for c in c0..<c1 where tile[(r - r0) * ld + c - c0].bitPattern != want[r * w.cols + c].bitPattern {
                        XCTFail("\(dir) \(name) tile element [\(r), \(c)] differs")
                        break outer
                    }
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 300)
        for e in ["BF16", "F8_E4M3 block 128x128 (F32 scale)", "F8_E4M3 channel (BF16 scale)", "F8_E4M3 tensor (BF16 scale)",
                  "I8 channel (BF16 scale)", "I8 channel (BF16 scale, zero point)", "F8_E4M3 tensor (F32 scale, zero point)"] {
            XCTAssertTrue(encodings.contains(e), "no weight decoded as \(e): \(encodings.sorted())")
        }
    }

    func testAmbiguousAndMissingScalesAreRefused() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "codec-bad")
        let path = tmp.appending("m.safetensors").path
        let w = try SafeTensorsWriter(path: path, tensors: [
            TensorSpec(name: "a.weight", dtype: .f8e4m3, shape: [2, 2]),
            TensorSpec(name: "a.weight_scale", dtype: .f32, shape: [1]),
            TensorSpec(name: "a.weight_scale_inv", dtype: .f32, shape: [1, 1]),
            TensorSpec(name: "b.weight", dtype: .i8, shape: [2, 2]),
        ])
        try w.write("a.weight", [UInt8](repeating: 0, count: 4))
        try w.write("a.weight_scale", [UInt8](repeating: 0, count: 4))
        try w.write("a.weight_scale_inv", [UInt8](repeating: 0, count: 4))
        try w.write("b.weight", [UInt8](repeating: 0, count: 4))
        try w.finish()
        let store = try SafeTensorsCheckpoint(path: path)
        XCTAssertThrowsError(try StoredWeight("a.weight", in: store)) { e in
            XCTAssertTrue("\(e)".contains("ambiguous"), "\(e)")
        }
        XCTAssertThrowsError(try StoredWeight("b.weight", in: store)) { e in
            XCTAssertTrue("\(e)".contains("b.weight_scale"), "\(e)")
        }
    }
}
