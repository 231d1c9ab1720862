import ArgumentParser
import Checkpoint
import Conversion
import Foundation
import JSON
import SystemIO

extension ModelBlueprint.Kind: ExpressibleByArgument {}

extension DSConvert {
    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a random checkpoint with the real tensor names and layout of an architecture (for tests and benchmarks).",
            discussion: "--scale 1/K divides the widths (hidden, intermediate, MoE intermediate, q/kv LoRA ranks, vocab) by K and keeps layers, heads, experts, head dims and the MTP layer. Values are BF16 N(0, 0.02) (the router bias F32; norms 1.0).")

        @Option(name: .long, help: "deepseek-v3, qwen2 or llama.")
        var arch: ModelBlueprint.Kind

        @Option(name: .long, help: "Width divisor as 1/K (or K).")
        var scale: String = "1/64"

        @Option(name: .long, help: "Override the number of layers (same tensor shapes, different checkpoint size).")
        var layers: Int?

        @Option(name: .long, help: "Random seed.")
        var seed: UInt64 = 0

        @Option(name: .long, help: "Number of shard files (default: 163 for deepseek-v3, as released; otherwise by --shard-size).")
        var shards: Int?

        @Option(name: .long, help: "Target shard size when --shards is not given (e.g. 2GB).")
        var shardSize: ByteSize?

        @Argument(help: "Output directory.")
        var output: String

        @OptionGroup var common: CommonOptions

        func divisor() throws -> Int {
            let s = scale.hasPrefix("1/") ? String(scale.dropFirst(2)) : scale
            guard let k = Int(s), k >= 1 else { throw ValidationError("--scale must look like 1/64") }
            return k
        }

        func run() throws {
            try common.apply()
            if let layers, layers < 1 { throw ValidationError("--layers must be at least 1") }
            let bp = ModelBlueprint(kind: arch, scale: try divisor(), layers: layers)
            var o = SyntheticCheckpoint.Options()
            o.seed = seed
            o.shards = shards
            o.shardSize = shardSize?.bytes
            let tty = Sys.isTerminal(2) && !common.quiet && !common.json
            var last = 0.0
            let start = MonotonicClock.seconds()
            let names = try SyntheticCheckpoint.write(bp, to: output, options: o) { done, total in
                let now = MonotonicClock.seconds()
                if tty && now - last > 0.2 {
                    last = now
                    FileHandle.standardError.write(String(format: "\r\u{1B}[2Ksynth %5.1f%%  %@ / %@", 100 * Double(done) / Double(max(total, 1)), formatBytes(done), formatBytes(total)).data(using: .utf8)!)
                }
            }
            if tty { FileHandle.standardError.write("\n".data(using: .utf8)!) }
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("output", .string(output)), ("arch", .string(arch.rawValue)), ("scale", .int(try divisor())),
                    ("tensors", .int(bp.tensors.count)), ("bytes", .int(bp.totalBytes)), ("shards", .int(names.count)),
                    ("seconds", .double(MonotonicClock.seconds() - start)),
                ])), terminator: "")
            } else if !common.quiet {
                printError("wrote \(output): \(bp.tensors.count) tensors, \(formatBytes(bp.totalBytes)) in \(names.count) file(s)")
            }
        }
    }
}
