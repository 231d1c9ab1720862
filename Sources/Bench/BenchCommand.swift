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
        abstract: "Benchmarks: `kernel` (BF16 → block FP8 vs memcpy) and `read` (iterate all tensors of a checkpoint).",
        subcommands: [Kernel.self, Read.self])
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

/// `12.4 MB` style (decimal units), as dsconvert prints sizes.
func formatBytes(_ n: Int) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"]
    var v = Double(n)
    var i = 0
    while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
    return i == 0 ? "\(n) B" : String(format: v >= 100 ? "%.0f %@" : v >= 10 ? "%.1f %@" : "%.2f %@", v, units[i])
}
