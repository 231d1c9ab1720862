import ArgumentParser
import Engine
import Eval
import Foundation
import JSON
import SystemIO

extension DSConvert {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure what a conversion cost: perplexity on a text, and against --ref the KL divergence, same top-1, Δp and perplexity ratio llama-perplexity reports, and multiple-choice accuracy; optionally a gate (exit 3).",
            discussion: "PPL(Q) is the candidate, PPL(base) the reference. Exit status 3 when a --max-ppl-increase, --max-kl-mean or --min-top1 bound is broken.")

        @Argument(help: "The candidate model directory (or .dspack).")
        var candidate: String

        @Option(name: .long, help: "The reference model (the original): both see the same windows.")
        var ref: String?

        @Option(name: .long, help: "A UTF-8 text file, tokenized once with the model's tokenizer.")
        var text: String?

        @Option(name: .long, parsing: .unconditional, help: "Tokens per window (2-1000000, at most max_position_embeddings).")
        var ctx = "256"

        @Flag(name: .customLong("llama-cpp"), help: "llama.cpp's windows: chunks of --ctx tokens, BOS first, the second half scored.")
        var llamaCpp = false

        @Option(name: .long, help: "Multiple-choice items, one JSON object per line: {\"context\", \"choices\": [...], \"label\"}.")
        var mc: String?

        @Option(name: .long, parsing: .unconditional, help: "Windows per forward call (1-64).")
        var batch = "1"

        @Option(name: .long, parsing: .unconditional, help: "Gate: largest allowed perplexity increase over --ref, in percent (0-1000000).")
        var maxPplIncrease: String?

        @Option(name: .long, parsing: .unconditional, help: "Gate: largest allowed mean KL divergence from --ref, in nats (0-1000).")
        var maxKlMean: String?

        @Option(name: .long, parsing: .unconditional, help: "Gate: smallest allowed same-top-1 agreement with --ref, in percent (0-100).")
        var minTop1: String?

        @Flag(name: .long, help: "Accept a reference with another tokenizer: each model is scored with its own, without KL, top-1 or Δp.")
        var allowTokenizerMismatch = false

        @OptionGroup var load: LoadOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            var o = Evaluation.Options()
            o.context = try OptionValue.integer(ctx, option: "--ctx", in: 2...1_000_000)
            o.batch = try OptionValue.integer(batch, option: "--batch", in: 1...64)
            o.scheme = llamaCpp ? .llamaCpp : .dsconvert
            o.textPath = text
            o.multipleChoicePath = mc
            o.allowTokenizerMismatch = allowTokenizerMismatch
            var gate = EvalGate()
            gate.maxPerplexityIncreasePercent = try maxPplIncrease.map { try OptionValue.decimal($0, option: "--max-ppl-increase", in: 0...1_000_000) }
            gate.maxKLMean = try maxKlMean.map { try OptionValue.decimal($0, option: "--max-kl-mean", in: 0...1000) }
            gate.minTop1Percent = try minTop1.map { try OptionValue.decimal($0, option: "--min-top1", in: 0...100) }
            guard text != nil || mc != nil else { throw UsageError.conflict("give --text FILE (perplexity) or --mc FILE.jsonl (multiple choice), or both") }
            if !gate.isEmpty {
                guard ref != nil else { throw UsageError.conflict("--max-ppl-increase, --max-kl-mean and --min-top1 compare with a reference: give --ref") }
                guard text != nil else { throw UsageError.conflict("--max-ppl-increase, --max-kl-mean and --min-top1 are measured on --text") }
            }
            let cand = try EvalModel(path: candidate, verify: load.verify)
            let reference = try ref.map { try EvalModel(path: $0, verify: load.verify) }
            if let m = reference?.model.config.maxPositions ?? Optional(cand.model.config.maxPositions),
               o.context > min(m, cand.model.config.maxPositions) {
                throw UsageError.invalid("--ctx", ctx, "is out of range", allowed: "an integer from 2 to \(min(m, cand.model.config.maxPositions)) (max_position_embeddings)")
            }
            let pool = WorkerPool(threads: common.threads ?? EngineDefaults.threads)
            let progress = TokenProgress(quiet: common.quiet || common.json && !Sys.isTerminal(2))
            let report = try Evaluation(candidate: cand, reference: reference, options: o, pool: pool).run(observer: progress)
            let verdicts = gate.evaluate(report)
            if common.json {
                var members = report.json.objectMembers!
                members.append(("threads", .int(pool.threads)))
                if !verdicts.isEmpty {
                    var bounds: [JSONValue] = []
                    for v in verdicts {
                        let value: JSONValue = v.value.map { JSONValue.double($0) } ?? .null
                        bounds.append(.object([("bound", .string(v.bound.rawValue)), ("limit", .double(v.limit)), ("value", value), ("passed", .bool(v.passed))]))
                    }
                    let passed = verdicts.allSatisfy { $0.passed }
                    members.append(("gate", .object([("passed", .bool(passed)), ("bounds", .array(bounds))])))
                }
                print(JSONWriter.pretty(.object(members)), terminator: "")
            } else {
                print("candidate: \(cand.path)" + (reference.map { "\nreference: \($0.path)" } ?? ""))
                print(report.text, terminator: "")
                if !common.quiet {
                    printError(String(format: "%@ tokens in %.1f s (%.0f tokens/s, %d threads)", grouped(report.tokensRun), report.seconds,
                                      report.seconds > 0 ? Double(report.tokensRun) / report.seconds : 0, pool.threads))
                }
            }
            let failed = verdicts.filter { !$0.passed }
            for v in verdicts where !common.quiet || !v.passed {
                printError("gate \(v.passed ? "passed" : "FAILED"): " + Self.describe(v.bound, limit: v.limit, value: v.value))
            }
            if !failed.isEmpty {
                fflush(stdout)
                Foundation.exit(ExitStatus.gateFailed)
            }
        }

        static func describe(_ b: EvalGate.Bound, limit: Double, value: Double?) -> String {
            switch b {
            case .perplexityIncrease:
                return "--max-ppl-increase \(limit): perplexity " + (value.map { String(format: "%+.4f %%", $0) } ?? "not measured") + " against the reference"
            case .klMean:
                return "--max-kl-mean \(limit): mean KL divergence " + (value.map { String(format: "%.6f", $0) } ?? "not measured (tokenizers differ)")
            case .top1:
                return "--min-top1 \(limit): same top-1 " + (value.map { String(format: "%.3f %%", $0) } ?? "not measured (tokenizers differ)")
            }
        }
    }
}
