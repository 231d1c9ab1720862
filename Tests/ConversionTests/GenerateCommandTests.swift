import Checkpoint
import Engine
import JSON
import TestSupport
import Tokenizer
import XCTest

/// `dsconvert generate` from the command line: the greedy tokens the library generates, the
/// report in --json, and usage errors for bad sampling options.
final class GenerateCommandTests: XCTestCase {
    func testGenerateReportsTheGreedyTokens() throws {
        let model = STFixtures.samplesDirectory + "/llama-tiny"
        let ids = STFixtures.samplesDirectory + "/golden/llama-tiny.safetensors"
        let r = try CLI.expect(["generate", model, "--ids", ids, "--key", "long_input_ids", "--max-tokens", "6", "--json", "--threads", "2"], status: 0)
        let v = try JSONParser.parse(Array(r.stdout.utf8))
        let tokens = v["tokens"]?.arrayValue?.compactMap { $0.intValue } ?? []
        XCTAssertEqual(v["prompt_tokens"]?.intValue, 400)
        // The library's greedy run over the same prompt (its decode steps are checked against
        // transformers' logits in GenerateTests).
        let m = try Model(checkpoint: Checkpoint(path: model))
        let prompt = try TokenIds.read(path: ids, key: "long_input_ids")[0]
        let want = try Generator(model: m, pool: WorkerPool(threads: 2)).generate(prompt: prompt, maxTokens: 6)
        XCTAssertEqual(tokens, want.tokens)
        XCTAssertEqual(v["stop"]?.stringValue, want.stop.rawValue)
        XCTAssertGreaterThan(v["prefill_tokens_per_second"]?.doubleValue ?? 0, 0)
    }

    /// A text prompt: encoded with the model's tokenizer.json, the continuation decoded; the same
    /// tokens as from the ids of that text (the tokenizer's ids are checked against the Python
    /// `tokenizers` package in TokenizerTests).
    func testTextPrompt() throws {
        let model = STFixtures.samplesDirectory + "/qwen2-tiny"
        let prompt = "The history of the city"
        let r = try CLI.expect(["generate", model, "--prompt", prompt, "--max-tokens", "8", "--json", "--threads", "2"], status: 0)
        let v = try JSONParser.parse(Array(r.stdout.utf8))
        let tokens = v["tokens"]?.arrayValue?.compactMap { $0.intValue } ?? []
        let tok = try Tokenizer.load(path: model + "/tokenizer.json")
        let ids = tok.encode(prompt).map(Int.init)
        XCTAssertEqual(v["prompt_tokens"]?.intValue, ids.count)
        let m = try Model(checkpoint: Checkpoint(path: model))
        let want = try Generator(model: m, pool: WorkerPool(threads: 2)).generate(prompt: ids, maxTokens: 8, stop: EndOfSequence.ids(of: Checkpoint(path: model)))
        XCTAssertEqual(tokens, want.tokens)
        XCTAssertEqual(v["text"]?.stringValue, try tok.decode(want.tokens.map(Int32.init), skipSpecialTokens: true))
        // Streaming text (no --json) prints exactly that text.
        let plain = try CLI.expect(["generate", model, "--prompt", prompt, "--max-tokens", "8", "-q", "--threads", "2"], status: 0)
        XCTAssertEqual(plain.stdout, (v["text"]?.stringValue ?? "?") + "\n")
        // One of --prompt / --ids.
        try CLI.expect(["generate", model, "--json"], status: 64, code: "usage.conflicting_options")
    }

    func testBadSamplingOptionsAreUsageErrors() throws {
        let model = STFixtures.samplesDirectory + "/llama-tiny"
        let ids = STFixtures.samplesDirectory + "/golden/llama-tiny.safetensors"
        for (option, value) in [("--temperature", "-1"), ("--temperature", "nan"), ("--top-p", "0"), ("--top-p", "1.5"), ("--max-tokens", "-3"), ("--seed", "x")] {
            let r = try CLI.expect(["generate", model, "--ids", ids, option, value, "--json"], status: 64, code: "usage.invalid_value")
            XCTAssertTrue(r.error?["message"]?.stringValue?.contains(option) == true, "\(option) \(value): \(r.stdout)")
        }
        // Two prompts in one file: generate continues one.
        try CLI.expect(["generate", model, "--ids", ids, "--key", "input_ids", "--json"], status: 1, code: "engine.input")
    }
}
