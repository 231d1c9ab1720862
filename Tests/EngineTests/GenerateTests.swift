import Checkpoint
import Engine
import SafeTensors
import Tensors
import TestSupport
import XCTest

/// Generation with a KV cache: each decode step's logits against transformers' fp32 logits of
/// the same position (Samples/golden, computed over the whole sequence at once), greedy choice,
/// stopping rules and the seeded sampler.
final class GenerateTests: XCTestCase {
    private func model(_ name: String) throws -> Model {
        try Model(checkpoint: Checkpoint(path: EngineFixtures.samples + "/" + name))
    }

    /// Prefill 100 tokens of the 400-token golden input, then feed the next 60 one at a time
    /// through the cache (positions 100–159; deepseek's 256-token original context is crossed
    /// in the long test below): every step's logits equal the golden row within 1e-4.
    func testCachedDecodeMatchesGoldenLogits() throws {
        for name in ["deepseek-v3-tiny", "qwen2-tiny", "llama-tiny"] {
            try checkDecode(name, prefill: 100, steps: 60)
        }
    }

    /// Decoding across the original context (YaRN / llama3 scaling engaged from position 256).
    func testCachedDecodePastTheOriginalContext() throws {
        try checkDecode("deepseek-v3-tiny", prefill: 250, steps: 12)
        try checkDecode("llama-tiny", prefill: 250, steps: 12)
    }

    private func checkDecode(_ name: String, prefill: Int, steps: Int) throws {
        let golden = try SafeTensorsCheckpoint(path: EngineFixtures.samples + "/golden/\(name).safetensors")
        let (ids, _) = try EngineFixtures.ids(golden, "long_input_ids")
        let want = try EngineFixtures.floats(golden, "long_logits")
        let m = try model(name)
        let v = m.config.vocab
        let cache = KVCache(config: m.config, batch: 1, capacity: prefill + steps)
        let pool = WorkerPool(threads: 2)
        var logits = try m.forward([Array(ids[0][0..<prefill])], cache: cache, logits: .last, pool: pool)
        var worst: Float = 0
        for t in (prefill - 1)..<(prefill + steps - 1) {
            for j in 0..<v { worst = max(worst, abs(logits.data[j] - want[t * v + j])) }
            logits = try m.forward([[ids[0][t + 1]]], cache: cache, logits: .last, pool: pool)
        }
        XCTAssertEqual(cache.length, prefill + steps)
        XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): max abs error \(worst) over \(steps) cached steps")
    }

    /// Greedy generation picks, at each step, the argmax of what transformers computes for the
    /// sequence so far: checked by running transformers-verified full forwards over the
    /// generated text, position by position, and by the golden logits for the first token.
    func testGreedyGenerationTakesTheArgmaxAtEachStep() throws {
        let name = "qwen2-tiny"
        let golden = try SafeTensorsCheckpoint(path: EngineFixtures.samples + "/golden/\(name).safetensors")
        let (ids, _) = try EngineFixtures.ids(golden, "long_input_ids")
        let want = try EngineFixtures.floats(golden, "long_logits")
        let m = try model(name)
        let v = m.config.vocab
        let prompt = Array(ids[0][0..<40])
        let g = Generator(model: m, pool: WorkerPool(threads: 2))
        var streamed: [Int] = []
        let r = try g.generate(prompt: prompt, maxTokens: 16) { streamed.append($0) }
        XCTAssertEqual(r.tokens, streamed)
        XCTAssertEqual(r.tokens.count, 16)
        XCTAssertEqual(r.stop, .maxTokens)
        // The first token: argmax of the golden logits at position 39.
        let row = Array(want[(39 * v)..<(40 * v)])
        XCTAssertEqual(r.tokens[0], row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) })
        // Every token: argmax of one full (uncached) forward over prompt + the tokens before it.
        let seq = prompt + r.tokens
        let cache = KVCache(config: m.config, batch: 1, capacity: seq.count)
        let all = try m.forward([Array(seq.dropLast())], cache: cache, pool: WorkerPool(threads: 2))
        for (k, tok) in r.tokens.enumerated() {
            XCTAssertEqual(tok, Sampler.argmax(all.row(prompt.count - 1 + k), count: v), "token \(k)")
        }
    }

    func testStopsAtEndOfSequenceAndAtTheContext() throws {
        let m = try model("llama-tiny")
        let g = Generator(model: m, pool: WorkerPool(threads: 2))
        let free = try g.generate(prompt: [5, 6, 7], maxTokens: 8)
        let stopAt = free.tokens[2]
        let r = try g.generate(prompt: [5, 6, 7], maxTokens: 8, stop: [stopAt])
        XCTAssertEqual(r.stop, .endOfSequence)
        XCTAssertEqual(r.tokens, Array(free.tokens[0...free.tokens.firstIndex(of: stopAt)!]))
        let limit = m.config.maxPositions
        let long = try g.generate(prompt: [Int](repeating: 9, count: limit - 2), maxTokens: 10)
        XCTAssertEqual(long.stop, .context)
        // Two free positions: the prefill's logits give token 1, two decode steps fill the
        // positions and give tokens 2 and 3; a fourth would need a position past the limit.
        XCTAssertEqual(long.tokens.count, 3)
        XCTAssertThrowsError(try g.generate(prompt: [Int](repeating: 9, count: limit + 1), maxTokens: 1)) { e in
            XCTAssertEqual((e as? EngineError)?.code, "engine.input")
            XCTAssertTrue("\(e)".contains("max_position_embeddings"), "\(e)")
        }
        XCTAssertThrowsError(try g.generate(prompt: [m.config.vocab], maxTokens: 1)) { e in
            XCTAssertTrue("\(e)".contains("outside the vocabulary"), "\(e)")
        }
    }

    /// Hand-computed: logits [0, ln 3] at temperature 1 give p = [1/4, 3/4]; a seeded sampler
    /// repeats itself; top-p below the largest probability is greedy.
    func testSampler() {
        var logits: [Float] = [0, Float(log(3.0))]
        var s = Sampler(temperature: 1, topP: 1, seed: 42)
        var ones = 0
        let n = 20000
        for _ in 0..<n { ones += s.next(&logits, count: 2) }
        XCTAssertEqual(Double(ones) / Double(n), 0.75, accuracy: 0.015)
        var a = Sampler(temperature: 0.8, topP: 0.9, seed: 7), b = Sampler(temperature: 0.8, topP: 0.9, seed: 7)
        var wide = (0..<100).map { Float(sin(Double($0))) * 3 }
        XCTAssertEqual((0..<50).map { _ in a.next(&wide, count: 100) }, (0..<50).map { _ in b.next(&wide, count: 100) })
        var nucleus = Sampler(temperature: 1, topP: 0.5, seed: 1)
        XCTAssertTrue((0..<200).allSatisfy { _ in nucleus.next(&logits, count: 2) == 1 })
        var tie: [Float] = [1, 3, 3, 2]
        XCTAssertEqual(Sampler.argmax(&tie, count: 4), 1, "lowest index on ties, as torch.argmax")
    }
}
