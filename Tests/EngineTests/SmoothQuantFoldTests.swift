import Checkpoint
import Conversion
import Engine
import Quantization
import SafeTensors
import Tensors
import TestSupport
import XCTest

/// SmoothQuant's fold (issue 16 item 8): with s folded into every norm and its readers and the
/// folded tensors kept in F32 (no quantization), the engine computes the original's logits on the
/// golden inputs within 1e-4, on all three samples (MLA's four norms, grouped attention with
/// q/k/v biases, the MoE router, shared and routed experts). The factors are random over four
/// binades each way, so a reader left unfolded, or a column scaled on the wrong axis, shows.
final class SmoothQuantFoldTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testDeepSeekV3() throws { try check("deepseek-v3-tiny", groups: 12) }
    func testQwen2() throws { try check("qwen2-tiny", groups: 4) }
    func testLlama() throws { try check("llama-tiny", groups: 4) }

    func check(_ model: String, groups expectedGroups: Int) throws {
        let ckpt = try Checkpoint(path: EngineFixtures.samples + "/" + model)
        let groups = ckpt.smoothingGroups
        XCTAssertEqual(groups.count, expectedGroups, groups.map(\.norm).joined(separator: ", "))
        var rng = STRandom(seed: 8)
        let entries = try groups.map { g -> (norm: String, consumers: [String], scales: [Float]) in
            let n = try XCTUnwrap(ckpt.weights.info(g.norm + ".weight")).shape[0]
            let s = (0..<n).map { _ in Float(pow(2.0, Double.random(in: -4...4, using: &rng))) }
            return (g.norm, g.readers, s)
        }
        if model == "deepseek-v3-tiny" {
            let post = try XCTUnwrap(groups.first { $0.norm == "model.layers.1.post_attention_layernorm" })
            XCTAssertTrue(post.readers.contains("model.layers.1.mlp.gate"), "the router reads the norm's output")
            XCTAssertTrue(post.readers.contains("model.layers.1.mlp.shared_experts.up_proj"))
            XCTAssertTrue(post.readers.contains("model.layers.1.mlp.experts.15.gate_proj"))
        }
        let tmp = try STTemporaryDirectory("dsconvert-smooth")
        let out = tmp.file("folded")
        let plan = try PlanBuilder.smoothOnly(ckpt, factors: SmoothingFactors(alpha: 0.5, entries: entries), dtype: .f32, layout: OutputLayout(shardSize: nil))
        _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()

        let folded = try Checkpoint(path: out)
        // The fold happened: a norm weight is w / s in F32.
        let norm = groups[0].norm + ".weight"
        let before = try floats(ckpt, norm), after = try floats(folded, norm)
        XCTAssertEqual(folded.weights.info(norm)?.dtype, .f32)
        for j in 0..<before.count { XCTAssertEqual(after[j], before[j] / entries[0].scales[j], accuracy: abs(before[j]) * 1e-6) }

        let golden = try SafeTensorsCheckpoint(path: EngineFixtures.samples + "/golden/\(model).safetensors")
        let (tokens, shape) = try EngineFixtures.ids(golden, "input_ids")
        let pool = WorkerPool(threads: 2)
        func logits(_ c: Checkpoint) throws -> Matrix {
            let engine = try Model(checkpoint: c)
            return try engine.forward(tokens, cache: KVCache(config: engine.config, batch: shape[0], capacity: shape[1]), pool: pool)
        }
        let a = try logits(ckpt), b = try logits(folded)
        let err = EngineFixtures.maxAbsDifference(b, Array(UnsafeBufferPointer(start: a.data, count: a.rows * a.cols)))
        print("smoothquant fold \(model): max abs logit difference \(err)")
        XCTAssertLessThanOrEqual(err, Self.tolerance, "\(model)")
    }

    private func floats(_ c: Checkpoint, _ name: String) throws -> [Float] {
        let v = try c.weights.view(name)
        let p = v.bytes.baseAddress!
        switch v.dtype {
        case .f32: return (0..<v.info.elementCount).map { p.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        case .bf16: return (0..<v.info.elementCount).map { Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
        default: throw XCTSkip("unexpected dtype \(v.dtype)")
        }
    }
}
