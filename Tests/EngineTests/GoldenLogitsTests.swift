import Checkpoint
import Engine
import SafeTensors
import Tensors
import TestSupport
import XCTest

/// Logits of the sample models against transformers' fp32 logits (Samples/golden), for the
/// short batch and the 400-token input that runs past the original context (YaRN, llama3).
final class GoldenLogitsTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testDeepSeekV3Short() throws { try check("deepseek-v3-tiny", ids: "input_ids", logits: "logits") }
    func testDeepSeekV3Long() throws { try check("deepseek-v3-tiny", ids: "long_input_ids", logits: "long_logits") }
    func testQwen2Short() throws { try check("qwen2-tiny", ids: "input_ids", logits: "logits") }
    func testQwen2Long() throws { try check("qwen2-tiny", ids: "long_input_ids", logits: "long_logits") }
    func testLlamaShort() throws { try check("llama-tiny", ids: "input_ids", logits: "logits") }
    func testLlamaLong() throws { try check("llama-tiny", ids: "long_input_ids", logits: "long_logits") }

    func check(_ model: String, ids: String, logits: String, threads: Int = 2) throws {
        let golden = try SafeTensorsCheckpoint(path: EngineFixtures.samples + "/golden/\(model).safetensors")
        let (tokens, shape) = try EngineFixtures.ids(golden, ids)
        let expected = try EngineFixtures.floats(golden, logits)
        let ckpt = try Checkpoint(path: EngineFixtures.samples + "/" + model)
        let engine = try Model(checkpoint: ckpt)
        let cache = KVCache(config: engine.config, batch: shape[0], capacity: shape[1])
        let out = try engine.forward(tokens, cache: cache, pool: WorkerPool(threads: threads))
        XCTAssertEqual(out.rows * out.cols, expected.count)
        let err = EngineFixtures.maxAbsDifference(out, expected)
        print("golden \(model) \(logits): max abs error \(err)")
        XCTAssertLessThanOrEqual(err, Self.tolerance, "\(model) \(logits): max abs error \(err)")
    }
}
