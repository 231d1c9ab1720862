import ArgumentParser
import Calibration
import CalibrationRun
import Engine
import Eval
import Foundation
import JSON
import SystemIO

/// Calibration throughput beside the plain forward pass on the same windows, in one process:
/// rounds alternate a plain pass (no observer), an observed pass with every token through every
/// routed expert (calibrate's default) and one observing routed tokens only; then the time of the
/// KL search (INT8 and FP8) over every collected histogram.
struct CalibrateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Tokens/s of calibrate's observed forward passes (all experts, routed only) against the plain forward pass on the same windows, alternating, and the KL search time.")

    @Argument(help: "A model directory.")
    var model: String

    @Option(name: .long, help: "The calibration text.")
    var text: String

    @Option(name: .long, help: "Windows (default: every full window).")
    var samples: Int?

    @Option(name: .long, help: "Tokens per window.")
    var ctx = 256

    @Option(name: .long, help: "Windows per forward call.")
    var batch = 1

    @Option(name: .long, help: "Rounds of the three passes, 1 to 100.")
    var rounds = 3

    @OptionGroup var options: BenchOptions

    func validate() throws {
        if !(2...1_000_000).contains(ctx) { throw ValidationError("--ctx \(ctx) is out of range: expected 2 to 1000000") }
        if !(1...64).contains(batch) { throw ValidationError("--batch \(batch) is out of range: expected 1 to 64") }
        if let samples, samples < batch { throw ValidationError("--samples \(samples) is fewer than one batch of \(batch)") }
    }

    func run() throws {
        let em = try EvalModel(path: model)
        let pool = WorkerPool(threads: options.threads ?? EngineDefaults.threads)
        var o = CalibrationPass.Options()
        o.context = ctx
        o.samples = samples
        o.batch = batch
        let pass = CalibrationPass(model: em, options: o, pool: pool)
        let (windows, _, _) = try pass.windows(of: try Evaluation.readText(text), file: text)
        guard windows.count >= batch else { throw ValidationError("\(text) holds \(windows.count) window(s), fewer than one batch of \(batch)") }
        let cache = KVCache(config: em.model.config, batch: batch, capacity: ctx)
        func once(_ observer: HistogramCollector?) throws -> Double {
            let t0 = MonotonicClock.seconds()
            var k = 0
            while k + batch <= windows.count {
                cache.reset()
                observer?.windowBase = k
                _ = try em.model.forward(Array(windows[k ..< k + batch]), cache: cache, logits: .last, pool: pool, observer: observer)
                k += batch
            }
            return MonotonicClock.seconds() - t0
        }
        let tokens = Double((windows.count / batch) * batch * ctx)
        var plain: [Double] = [], all: [Double] = [], routed: [Double] = []
        var last: HistogramCollector?
        for _ in 0..<max(1, min(rounds, 100)) {
            plain.append(try once(nil))
            let a = try HistogramCollector(model: em.model, experts: .allExperts)
            all.append(try once(a))
            routed.append(try once(try HistogramCollector(model: em.model, experts: .routedOnly)))
            last = a
        }
        let file = HistogramFile(model: model, ctx: ctx, windows: windows.count, expertMode: "all", inputs: last!.observedInputs())
        let k0 = MonotonicClock.seconds()
        _ = RangeSelection.ranges(file, method: .kl, target: .int8)
        let klInt8 = MonotonicClock.seconds() - k0
        let k1 = MonotonicClock.seconds()
        _ = RangeSelection.ranges(file, method: .kl, target: .fp8)
        let klFP8 = MonotonicClock.seconds() - k1
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        let p = tokens / median(plain), a = tokens / median(all), r = tokens / median(routed)
        if options.json {
            print(JSONWriter.pretty(.object([
                ("windows", .int(windows.count)), ("ctx", .int(ctx)), ("batch", .int(batch)), ("threads", .int(pool.threads)),
                ("inputs", .int(file.inputs.count)), ("rounds", .int(plain.count)),
                ("plain_tokens_per_second", .double(p)), ("all_experts_tokens_per_second", .double(a)),
                ("routed_only_tokens_per_second", .double(r)),
                ("all_experts_ratio", .double(a / p)), ("routed_only_ratio", .double(r / p)),
                ("kl_int8_seconds", .double(klInt8)), ("kl_fp8_seconds", .double(klFP8)),
            ])), terminator: "")
        } else {
            print(String(format: "%d windows x %d tokens, batch %d, %d threads, median of %d rounds:", windows.count, ctx, batch, pool.threads, plain.count))
            print(String(format: "  plain forward      %8.0f tokens/s", p))
            print(String(format: "  calibrate (all)    %8.0f tokens/s  %.3fx plain", a, a / p))
            print(String(format: "  calibrate (routed) %8.0f tokens/s  %.3fx plain", r, r / p))
            print(String(format: "  KL search over %d histograms: int8 %.3f s, fp8 %.3f s", file.inputs.count, klInt8, klFP8))
        }
    }
}
