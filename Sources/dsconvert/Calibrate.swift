import ArgumentParser
import Calibration
import CalibrationRun
import Engine
import Eval
import Foundation
import JSON
import SafeTensors
import SystemIO
import Tensors

extension DSConvert {
    struct Calibrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure the activation range of every quantized linear layer's input on a text (KL / entropy, percentile, MSE or min-max; INT8 or FP8) and write ranges.json.",
            discussion: """
            Runs the model on the CPU over --text, one --ctx window per histogram batch, and observes the input of every linear layer quantize quantizes (one input per distinct tensor: layers reading the same normed hidden state share it). By default every token also passes through every routed expert for statistics (the layer's output stays the routed one); --routed-only observes routed tokens only. --from-histograms FILE turns a histogram file (written by --histograms-out or by the Python collector Formats/python/dshist) into ranges instead. Formats/calibration.md gives the algorithms and both file formats.
            """)

        @Argument(help: "The model directory (or .dspack); not with --from-histograms.")
        var model: String?

        @Option(name: .long, help: "A UTF-8 calibration text, tokenized once with the model's tokenizer (no special tokens).")
        var text: String?

        @Option(name: .long, parsing: .unconditional, help: "Windows of --ctx tokens to use (default: every full window of the text).")
        var samples: String?

        @Option(name: .long, parsing: .unconditional, help: "Tokens per window, one histogram batch each (2 to max_position_embeddings; default 256).")
        var ctx = "256"

        @Option(name: .long, parsing: .unconditional, help: "Windows per forward call (1-64, default 1). Each window stays one histogram batch; a larger batch runs faster, and its activations can differ from --batch 1 in the last bits (so can a few counts).")
        var batch = "1"

        @Option(name: .long, help: "How a range is chosen from each histogram: kl, percentile, mse or minmax.")
        var method: String

        @Option(name: .long, parsing: .unconditional, help: "The percentile for --method percentile (0 < p ≤ 100; default 99.99).")
        var percentile: String?

        @Option(name: .long, help: "The format the ranges are for: int8 or fp8 (E4M3). It decides kl's candidate grid and mse's fake quantizer (default int8).")
        var target = "int8"

        @Flag(name: .long, help: "Observe routed experts on the tokens routed to them only.")
        var routedOnly = false

        @Option(name: .shortAndLong, help: "The ranges.json to write.")
        var output: String

        @Option(name: .long, help: "Also write the collected histograms to this file (Formats/calibration.md, \"Histogram file\").")
        var histogramsOut: String?

        @Option(name: .long, parsing: .unconditional, help: "SmoothQuant with migration strength ALPHA (0 to 1, e.g. 0.5): a first pass measures max |X_j| per channel of every norm output, s_j = max|X_j|^α / max|W_j|^(1−α) over every weight reading it, and the histograms are those of X / s; ranges.json holds s and quantize --ranges folds it into the norm and its readers (Formats/calibration.md). Inputs without a norm before them (o_proj, down_proj) are left as they are.")
        var smooth: String?

        @Option(name: .long, help: "Read histograms from this file instead of running a model.")
        var fromHistograms: String?

        @Option(name: .long, help: "Keep the raw rows of this observed input (a ranges.json name) and write them to --dump-to as F32 tensors window.K [rows, width], to check the histograms against another implementation.")
        var dumpInput: String?

        @Option(name: .long, help: "The .safetensors file --dump-input writes.")
        var dumpTo: String?

        @OptionGroup var load: LoadOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            guard let m = RangeSelection.Method(rawValue: method) else {
                throw UsageError.invalid("--method", method, "is not a method", allowed: "kl, percentile, mse or minmax")
            }
            guard let t = CalibrationTarget(rawValue: target) else {
                throw UsageError.invalid("--target", target, "is not a target", allowed: "int8 or fp8")
            }
            var p = 99.99
            if let percentile {
                guard m == .percentile else { throw UsageError.conflict("--percentile applies to --method percentile") }
                p = try OptionValue.decimal(percentile, option: "--percentile", in: 0...100)
                guard p > 0 else { throw UsageError.invalid("--percentile", percentile, "is out of range", allowed: "a number above 0, at most 100") }
            }
            guard (dumpInput == nil) == (dumpTo == nil) else { throw UsageError.conflict("--dump-input NAME and --dump-to FILE go together") }
            let alpha = try smooth.map { try OptionValue.decimal($0, option: "--smooth", in: 0...1) }
            if alpha != nil {
                guard fromHistograms == nil else { throw UsageError.conflict("--smooth measures the model's per-channel maxima and its smoothed activations: it needs MODEL and --text, not --from-histograms") }
                guard histogramsOut == nil else { throw UsageError.conflict("--smooth: the histograms are of smoothed activations and a histogram file cannot record s; no --histograms-out with it") }
            }

            let histograms: HistogramFile
            var pass: CalibrationPass.Result?
            var threads: Int?
            if let fromHistograms {
                guard model == nil, text == nil, samples == nil, !routedOnly, histogramsOut == nil, dumpInput == nil else {
                    throw UsageError.conflict("--from-histograms FILE replaces the model run: no MODEL, --text, --samples, --routed-only, --histograms-out or --dump-input with it")
                }
                histograms = try HistogramFile.read(fromHistograms)
            } else {
                guard let model else { throw UsageError.conflict("give MODEL and --text FILE, or --from-histograms FILE") }
                guard let text else { throw UsageError.conflict("calibrating \(model) needs --text FILE (the calibration text)") }
                var o = CalibrationPass.Options()
                o.context = try OptionValue.integer(ctx, option: "--ctx", in: 2...1_000_000)
                o.samples = try samples.map { try OptionValue.integer($0, option: "--samples", in: 1...100_000_000) }
                o.batch = try OptionValue.integer(batch, option: "--batch", in: 1...64)
                o.experts = routedOnly ? .routedOnly : .allExperts
                o.dumpInput = dumpInput
                o.smooth = alpha
                let em = try EvalModel(path: model, verify: load.verify)
                guard o.context <= em.model.config.maxPositions else {
                    throw UsageError.invalid("--ctx", ctx, "is out of range", allowed: "an integer from 2 to \(em.model.config.maxPositions) (max_position_embeddings)")
                }
                let pool = WorkerPool(threads: common.threads ?? EngineDefaults.threads)
                threads = pool.threads
                let progress = TokenProgress(quiet: common.quiet || common.json && !Sys.isTerminal(2))
                let r = try CalibrationPass(model: em, options: o, pool: pool).run(textFile: text, label: model, progress: progress)
                if let asked = r.shortOf {
                    printError("warning: \(text) holds \(r.windowsAvailable) full window(s) of \(o.context) tokens (\(grouped(r.textTokens)) tokens), fewer than --samples \(asked): calibrated on \(r.windows)")
                }
                if let dumpTo { try Self.writeDump(r.dumped, to: dumpTo) }
                if let histogramsOut { try r.histograms.write(to: histogramsOut) }
                histograms = r.histograms
                pass = r
            }
            var (ranges, skipped) = RangeSelection.ranges(histograms, method: m, target: t, percentile: p)
            if let alpha, let pass {
                ranges.smoothAlpha = alpha
                ranges.smoothing = pass.smoothing
            }
            try ranges.write(to: output)
            report(ranges, skipped: skipped, pass: pass, threads: threads)
        }

        func report(_ ranges: RangesFile, skipped: [RangeSelection.Skipped], pass: CalibrationPass.Result?, threads: Int?) {
            if common.json {
                var members: [(String, JSONValue)] = [
                    ("out", .string(output)), ("model", .string(ranges.model)), ("method", .string(ranges.method)),
                    ("target", .string(ranges.target.rawValue)), ("percentile", ranges.percentile.map { .double($0) } ?? .null),
                    ("expert_mode", .string(ranges.expertMode)), ("ctx", .int(ranges.ctx)), ("windows", .int(ranges.windows)),
                    ("inputs", .int(ranges.inputs.count)),
                    ("skipped", .array(skipped.map { .object([("name", .string($0.name)), ("reason", .string($0.reason))]) })),
                ]
                if let pass, let a = ranges.smoothAlpha {
                    members.append(("smoothing", .object([
                        ("alpha", .double(a)), ("channel_pass_seconds", .double(pass.channelSeconds)),
                        ("smoothed", .array(ranges.smoothing.map { e in
                            .object([("norm", .string(e.norm)), ("consumers", .int(e.consumers.count)),
                                     ("s_min", .double(Double(e.scales.min() ?? 0))), ("s_max", .double(Double(e.scales.max() ?? 0)))])
                        })),
                        ("not_smoothed", .array(pass.notSmoothed.map { .object([("name", .string($0.name)), ("reason", .string($0.reason))]) })),
                    ])))
                }
                if let pass {
                    members += [
                        ("windows_available", .int(pass.windowsAvailable)), ("samples_requested", pass.shortOf.map { .int($0) } ?? .null),
                        ("text_tokens", .int(pass.textTokens)), ("tokens", .int(pass.tokens)), ("seconds", .double(pass.seconds)),
                        ("tokens_per_second", .double(pass.seconds > 0 ? Double(pass.tokens) / pass.seconds : 0)),
                        ("threads", threads.map { .int($0) } ?? .null),
                        ("histograms_out", histogramsOut.map { .string($0) } ?? .null),
                    ]
                } else {
                    members.append(("from_histograms", .string(fromHistograms ?? "")))
                }
                print(JSONWriter.pretty(.object(members)), terminator: "")
                return
            }
            let pct = ranges.percentile.map { " \($0)" } ?? ""
            print("\(ranges.inputs.count) input ranges (\(ranges.method)\(pct), \(ranges.target.rawValue)) → \(output)")
            print("\(ranges.windows) window(s) of \(ranges.ctx) tokens, experts: \(ranges.expertMode)" + (histogramsOut.map { ", histograms → \($0)" } ?? ""))
            for s in skipped { print("no range for \(s.name): \(s.reason)") }
            if let pass, let a = ranges.smoothAlpha {
                let lo = ranges.smoothing.compactMap { $0.scales.min() }.min() ?? 0, hi = ranges.smoothing.compactMap { $0.scales.max() }.max() ?? 0
                print("SmoothQuant α = \(a): \(ranges.smoothing.count) norm output(s) smoothed (s from \(lo) to \(hi)), \(pass.notSmoothed.count) input(s) not smoothed (no norm before them: o_proj, down_proj; --json lists them)")
            }
            if let pass, !common.quiet {
                printError(String(format: "%@ tokens in %.1f s (%.0f tokens/s, %d threads)", grouped(pass.tokens), pass.seconds,
                                  pass.seconds > 0 ? Double(pass.tokens) / pass.seconds : 0, threads ?? 0)
                           + (ranges.smoothAlpha != nil ? String(format: ", after the channel-maxima pass (%.1f s)", pass.channelSeconds) : ""))
            }
        }

        /// `--dump-to`: the kept rows as F32 tensors `window.K` [rows, width].
        static func writeDump(_ rows: [(window: Int, rows: Int, width: Int, values: [Float])], to path: String) throws {
            let w = try SafeTensorsWriter(path: path, tensors: rows.map { TensorSpec(name: "window.\($0.window)", dtype: .f32, shape: [$0.rows, $0.width]) })
            for r in rows {
                try r.values.withUnsafeBytes { try w.write("window.\(r.window)", $0) }
            }
            try w.finish(durable: false)
        }
    }
}
