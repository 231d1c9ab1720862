import ArgumentParser
import Checkpoint
import Engine
import JSON
import SystemIO
import Foundation
import Tokenizer

extension DSConvert {
    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Continue a prompt on the CPU with a KV cache (greedy by default), streaming the tokens, then print prefill and decode tokens/s.",
            discussion: "Stops at an end-of-sequence token (generation_config.json's eos_token_id, else config.json's), after --max-tokens, or at max_position_embeddings.")

        @Argument(help: "A model directory (weights in any encoding dsconvert reads).")
        var model: String

        @Option(name: .long, help: "The prompt as text, encoded with the model's tokenizer.json (the output is decoded text).")
        var prompt: String?

        @Option(name: .long, help: "Or: a .safetensors file with the prompt's token ids (I32 or I64, [T] or [1, T]); the output is token ids.")
        var ids: String?

        @Option(name: .long, help: "The ids tensor's name.")
        var key = "input_ids"

        @Option(name: .long, parsing: .unconditional, help: "Tokens to generate at most (0-1000000).")
        var maxTokens = "64"

        @Option(name: .long, parsing: .unconditional, help: "Sampling temperature; 0 is greedy (0-100).")
        var temperature = "0"

        @Option(name: .long, parsing: .unconditional, help: "Nucleus sampling: keep the most likely tokens up to this probability mass (0-1].")
        var topP = "1"

        @Option(name: .long, parsing: .unconditional, help: "Seed of the sampler (0-18446744073709551615).")
        var seed = "0"

        @OptionGroup var load: LoadOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let budget = try OptionValue.integer(maxTokens, option: "--max-tokens", in: 0...1_000_000)
            let t = try OptionValue.decimal(temperature, option: "--temperature", in: 0...100)
            let p = try OptionValue.decimal(topP, option: "--top-p", in: 0...1)
            guard p > 0 else { throw UsageError.invalid("--top-p", topP, "is out of range", allowed: "a number above 0 and at most 1") }
            let s = try OptionValue.uint64(seed, option: "--seed")
            guard (prompt == nil) != (ids == nil) else {
                throw UsageError.conflict("give the prompt as --prompt TEXT or as --ids FILE (one of them)")
            }
            let ckpt = try load.checkpoint(model)
            var tokenizer: Tokenizer?
            let promptIds: [Int]
            if let prompt {
                guard let bytes = try ckpt.weights.sideFile("tokenizer.json") else {
                    throw EngineError.input("\(ckpt.weights.sideFilePath("tokenizer.json")) does not exist: --prompt needs the model's tokenizer (or give --ids)")
                }
                let path = ckpt.weights.sideFilePath("tokenizer.json")
                let json: JSONValue
                do { json = try JSONParser.parse(bytes) } catch { throw EngineError.config(path: path, "is not valid JSON: \(error)") }
                let t = try Tokenizer(json: json, file: path)
                tokenizer = t
                promptIds = t.encode(prompt).map(Int.init)
            } else {
                let prompts = try TokenIds.read(path: ids!, key: key)
                guard prompts.count == 1 else {
                    throw EngineError.input("\(ids!): '\(key)' holds \(prompts.count) sequences; generate continues one prompt")
                }
                promptIds = prompts[0]
            }
            let engine = try Model(checkpoint: ckpt)
            let stop = try EndOfSequence.ids(of: ckpt)
            let pool = WorkerPool(threads: common.threads ?? EngineDefaults.threads)
            let g = Generator(model: engine, pool: pool)
            // Text is printed as soon as it is complete: a byte-level token can end inside a UTF-8
            // sequence, so the decoded tail waits while it ends in a replacement character.
            var generated: [Int32] = []
            var printed = 0
            let r = try g.generate(prompt: promptIds, maxTokens: budget, sampler: Sampler(temperature: Float(t), topP: Float(p), seed: s), stop: stop) { tok in
                guard !common.json else { return }
                guard let tokenizer else { print(tok, terminator: " "); fflush(stdout); return }
                generated.append(Int32(tok))
                guard let text = try? tokenizer.decode(generated, skipSpecialTokens: true) else { return }
                let scalars = Array(text.unicodeScalars)
                if scalars.last == "\u{FFFD}" && stop.contains(tok) == false { return }
                if scalars.count > printed {
                    var out = String.UnicodeScalarView()
                    out.append(contentsOf: scalars[printed...])
                    print(String(out), terminator: "")
                    fflush(stdout)
                    printed = scalars.count
                }
            }
            let text = try tokenizer.map { try $0.decode(r.tokens.map(Int32.init), skipSpecialTokens: true) }
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("prompt_tokens", .int(r.promptTokens)), ("tokens", .array(r.tokens.map { .int($0) })),
                    ("text", text.map { .string($0) } ?? .null), ("stop", .string(r.stop.rawValue)),
                    ("prefill_seconds", .double(r.prefillSeconds)), ("prefill_tokens_per_second", .double(r.prefillTokensPerSecond)),
                    ("decode_seconds", .double(r.decodeSeconds)), ("decode_tokens_per_second", .double(r.decodeTokensPerSecond)),
                    ("threads", .int(pool.threads)),
                ])), terminator: "")
            } else {
                print("")
                if !common.quiet {
                    printError(String(format: "%d prompt tokens, %d generated (%@); prefill %.1f tokens/s, decode %.1f tokens/s, %d threads",
                                      r.promptTokens, r.tokens.count, r.stop.rawValue, r.prefillTokensPerSecond, r.decodeTokensPerSecond, pool.threads))
                }
            }
        }
    }
}
