import ArgumentParser
import Foundation
import Numerics
import SystemIO

/// `dsconvert-bench`: the micro-benchmarks behind Scripts/bench.sh (which adds the cat / cp /
/// numpy / torch references). Kept out of the `dsconvert` product: nothing a user converts with
/// depends on it.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsconvert-bench",
        abstract: "Benchmarks: `kernel` (BF16 → block FP8 vs memcpy), `read` (iterate all tensors of a checkpoint), `prefill` (engine forward passes), `open` (.dspack open to first tensor) and `gemm` (the engine's matmul GFLOP/s).",
        subcommands: [Kernel.self, Read.self, Prefill.self, Open.self, Gemm.self, Hash.self, CalibrateBench.self, KLSearchBench.self])
}

/// Flags both benchmarks have.
struct BenchOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the result as JSON on standard output.")
    var json = false

    @Option(name: .long, parsing: .unconditional, help: "Worker threads, 1 to 1024 (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let t = threads, !(1...1024).contains(t) {
            throw ValidationError("--threads \(t) is out of range: expected an integer from 1 to 1024")
        }
    }

    func apply() {
        if let t = threads { Parallel.threads = t }
    }
}
