import Checkpoint
import Conversion
import Engine
import Foundation
import Quantization
import SafeTensors
import Tensors
import TestSupport
import XCTest

/// The engine on quantized weights: the samples quantized by dsconvert (block FP8, compressed-
/// tensors FP8 / INT8 per channel or per tensor), run in their stored encoding, against
/// transformers' fp32 logits on the exactly dequantized weights (Tests/Fixtures/
/// quantized_golden_logits.safetensors, made by Tests/Reference/quantized_goldens.py, which
/// dequantizes in numpy and never uses transformers' FP8 loader). Also the deepseek sample with a
/// nonzero, partly negative e_score_correction_bias, which the router uses for selection only.
final class QuantizedGoldenTests: XCTestCase {
    static let tolerance: Float = 1e-4
    static var fixture: String { PythonReference.packageRoot.appendingPathComponent("Tests/Fixtures/quantized_golden_logits.safetensors").path }

    func testDeepSeekV3BlockFP8() throws { try check("ds-fp8-block", "deepseek-v3-tiny", .fp8, nil) }
    func testDeepSeekV3ChannelFP8() throws { try check("ds-fp8-channel", "deepseek-v3-tiny", .fp8, .channel) }
    func testDeepSeekV3ChannelINT8() throws { try check("ds-int8-channel", "deepseek-v3-tiny", .int8, nil) }
    func testQwen2BlockFP8() throws { try check("qwen2-fp8-block", "qwen2-tiny", .fp8, nil) }
    func testQwen2TensorINT8() throws { try check("qwen2-int8-tensor", "qwen2-tiny", .int8, .tensor) }
    func testLlamaBlockFP8() throws { try check("llama-fp8-block", "llama-tiny", .fp8, nil) }
    func testLlamaTensorFP8() throws { try check("llama-fp8-tensor", "llama-tiny", .fp8, .tensor) }

    /// The bias reorders the chosen experts (the logits move by several units against the
    /// zero-bias golden), and the engine follows transformers there too.
    func testDeepSeekV3WithNonzeroRouterBias() throws {
        let golden = try SafeTensorsCheckpoint(path: Self.fixture)
        let tmp = try PythonReference.TemporaryDirectory(prefix: "bias-golden")
        let dir = tmp.appending("deepseek-bias").path
        try STFixtures.copyDirectory(EngineFixtures.samples + "/deepseek-v3-tiny", to: dir)
        let store = try SafeTensorsCheckpoint(path: dir)
        var patched = 0
        for name in golden.tensorNames where name.hasPrefix("bias-ds/bias/") {
            let tensor = String(name.dropFirst("bias-ds/bias/".count))
            let values = try golden.view(name)
            let i = try XCTUnwrap(store.fileIndex(of: tensor), tensor)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: store.files[i].path))
            try h.seek(toOffset: UInt64(try XCTUnwrap(store.fileOffset(of: tensor))))
            try h.write(contentsOf: Data(values.bytes))
            try h.close()
            patched += 1
        }
        XCTAssertEqual(patched, 2, "both MoE layers' biases")
        let err = try run("bias-ds", dir)
        XCTAssertLessThanOrEqual(err, Self.tolerance)
        // It matters: the zero-bias golden of the same ids is far away.
        let zero = try SafeTensorsCheckpoint(path: EngineFixtures.samples + "/golden/deepseek-v3-tiny.safetensors")
        let z = try EngineFixtures.floats(zero, "logits")
        let want = try EngineFixtures.floats(golden, "bias-ds/logits")
        var moved: Float = 0
        for t in 0..<16 { for j in 0..<4096 { moved = max(moved, abs(want[t * 4096 + j] - z[t * 4096 + j])) } }
        XCTAssertGreaterThan(moved, 1, "the bias changes which experts run")
    }

    private func check(_ name: String, _ sample: String, _ format: QuantizationScheme.Format, _ granularity: QuantizationScheme.Granularity?) throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "qgolden-\(name)")
        let out = tmp.appending(name).path
        let ckpt = try Checkpoint(path: EngineFixtures.samples + "/" + sample)
        let plan = try PlanBuilder.quantize(ckpt, scheme: QuantizationScheme(format: format, granularity: granularity), ignore: [], shardSize: nil)
        _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
        let err = try run(name, out)
        XCTAssertLessThanOrEqual(err, Self.tolerance, "\(name): max abs error \(err)")
    }

    /// Max abs difference between the engine's logits on `dir` and the fixture's for `name`.
    private func run(_ name: String, _ dir: String) throws -> Float {
        let golden = try SafeTensorsCheckpoint(path: Self.fixture)
        let (ids, shape) = try EngineFixtures.ids(golden, name + "/input_ids")
        let want = try EngineFixtures.floats(golden, name + "/logits")
        let engine = try Model(checkpoint: Checkpoint(path: dir))
        let cache = KVCache(config: engine.config, batch: shape[0], capacity: shape[1])
        let got = try engine.forward(ids, cache: cache, pool: WorkerPool(threads: 2))
        XCTAssertEqual(got.rows * got.cols, want.count)
        let err = EngineFixtures.maxAbsDifference(got, want)
        print("quantized golden \(name): max abs error \(err)")
        return err
    }
}
