import ArgumentParser
import Checkpoint
import Engine
import Foundation
import JSON
import SystemIO

/// Repeated forward passes of one batch of ids through a fresh cache, in one process: the
/// engine's prefill speed with the weights' pages and the allocator warm (what transformers'
/// repeated calls in Scripts/bench_engine.py see), next to the first, cold call.
struct Prefill: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time repeated prefills of ids ([B, T] or [T]) through the CPU engine: each run's seconds, the best, the median and the first.")

    @Argument(help: "A model directory.")
    var model: String

    @Option(name: .long, help: "A .safetensors file with token ids (I32 or I64, [B, T] or [T]).")
    var ids: String

    @Option(name: .long, help: "The ids tensor's name.")
    var key = "input_ids"

    @Option(name: .long, parsing: .unconditional, help: "Repetitions, 1 to 1000.")
    var repeats: Int = 10

    @Flag(name: .long, help: "Compute the logits of every position (default: the last of each sequence, as generate does).")
    var allLogits = false

    @OptionGroup var options: BenchOptions

    /// CPU time of all the process's threads (under load, less noisy than wall time).
    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    func validate() throws {
        if !(1...1000).contains(repeats) { throw ValidationError("--repeats \(repeats) is out of range: expected 1 to 1000") }
    }

    func run() throws {
        let tokens = try TokenIds.read(path: ids, key: key)
        let engine = try Model(checkpoint: Checkpoint(path: model))
        let pool = WorkerPool(threads: options.threads ?? EngineDefaults.threads)
        let cache = KVCache(config: engine.config, batch: tokens.count, capacity: tokens[0].count)
        var times: [Double] = [], cpu: [Double] = []
        for _ in 0..<repeats {
            cache.reset()
            let c0 = Self.processCPUSeconds(), t0 = MonotonicClock.seconds()
            _ = try engine.forward(tokens, cache: cache, logits: allLogits ? .all : .last, pool: pool)
            times.append(MonotonicClock.seconds() - t0)
            cpu.append(Self.processCPUSeconds() - c0)
        }
        let n = Double(tokens.count * tokens[0].count)
        let sorted = times.sorted()
        let best = sorted[0], median = sorted[sorted.count / 2]
        if options.json {
            print(JSONWriter.pretty(.object([
                ("batch", .int(tokens.count)), ("tokens", .int(tokens[0].count)), ("threads", .int(pool.threads)),
                ("seconds", .array(times.map { .double($0) })),
                ("best_tokens_per_second", .double(n / best)), ("median_tokens_per_second", .double(n / median)),
                ("first_tokens_per_second", .double(n / times[0])),
                ("cpu_seconds", .array(cpu.map { .double($0) })), ("best_cpu_seconds", .double(cpu.min()!)),
            ])), terminator: "")
        } else {
            print(String(format: "prefill [%d, %d], %d threads: best %.0f tok/s, median %.0f, first %.0f; least CPU time %.2f ms",
                         tokens.count, tokens[0].count, pool.threads, n / best, n / median, n / times[0], cpu.min()! * 1e3))
        }
    }
}
