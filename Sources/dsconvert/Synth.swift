import Numerics
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
            discussion: "--scale 1/K divides the widths (hidden, intermediate, MoE intermediate, q/kv LoRA ranks, vocab) by K and keeps layers, heads, experts, head dims and the MTP layer; --align N then rounds each of those widths up to a multiple of N (e.g. --scale 1/10 --align 8: a ~16 GB deepseek-v3 whose widths TP 8 divides, with the tensor count of every scale). Values are BF16 N(0, 0.02) (the router bias F32; norms 1.0).")

        @Option(name: .long, help: "deepseek-v3, qwen2 or llama.")
        var arch: ModelBlueprint.Kind

        @Option(name: .long, parsing: .unconditional, help: "Width divisor as 1/K (or K), K from 1 to 65536 (default 1/64).",
                transform: { try Synth.divisor($0) })
        var scale: Int = 64

        @Option(name: .long, parsing: .unconditional, help: "Override the number of layers, 1 to 10000 (same tensor shapes, different checkpoint size).",
                transform: { try OptionValue.integer($0, option: "--layers", in: OptionValue.layers) })
        var layers: Int?

        @Option(name: .long, parsing: .unconditional, help: "Round every scaled width up to a multiple of N, 1 to 65536 (default 1: as divided).",
                transform: { try OptionValue.integer($0, option: "--align", in: OptionValue.scale) })
        var align: Int = 1

        @Option(name: .long, parsing: .unconditional, help: "Random seed, 0 to 2^64-1 (default 0).",
                transform: { try OptionValue.uint64($0, option: "--seed") })
        var seed: UInt64 = 0

        @Option(name: .long, parsing: .unconditional, help: "Number of shard files, 1 to 100000 (default: 163 for deepseek-v3, as released; otherwise by --shard-size).",
                transform: { try OptionValue.integer($0, option: "--shards", in: OptionValue.shards) })
        var shards: Int?

        @Option(name: .long, parsing: .unconditional, help: "Target shard size when --shards is not given (e.g. 2GB).",
                transform: { try OptionValue.byteSize($0, option: "--shard-size") })
        var shardSize: Int?

        @Flag(name: .long, help: "Headers only: the data of every file is a hole (sparse files), for planning and inspecting the real shapes without their bytes.")
        var sparse = false

        @Flag(name: .long, help: "The block-FP8 release layout: quantized linear weights F8_E4M3 with F32 weight_scale_inv 128x128 grids, quantization_config as DeepSeek's.")
        var fp8 = false

        @Argument(help: "Output directory.")
        var output: String

        @OptionGroup var common: CommonOptions

        /// `1/K` or `K`.
        static func divisor(_ text: String) throws -> Int {
            let t = text.trimmingCharacters(in: .whitespaces)
            let r = OptionValue.scale
            do {
                return try OptionValue.integer(t.hasPrefix("1/") ? String(t.dropFirst(2)) : t, option: "--scale", in: r)
            } catch let e as UsageError {
                throw UsageError.invalid("--scale", text, e.message.contains("out of range") ? "is out of range" : "is not 1/K or K",
                                         allowed: "1/K or K with K an integer from \(r.lowerBound) to \(r.upperBound)")
            }
        }

        func run() throws {
            try common.apply()
            var bp = ModelBlueprint(kind: arch, scale: scale, layers: layers, align: align)
            if fp8 { bp = bp.blockFP8() }
            var o = SyntheticCheckpoint.Options()
            o.seed = seed
            o.shards = shards
            o.shardSize = shardSize
            o.sparse = sparse
            let bar = ByteProgressBar(verb: "synth", quiet: common.quiet || common.json)
            let start = MonotonicClock.seconds()
            let names = try SyntheticCheckpoint.write(bp, to: output, options: o) { done, total in bar.update(done, total) }
            bar.finish()
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("output", .string(output)), ("arch", .string(arch.rawValue)), ("scale", .int(scale)), ("align", .int(align)),
                    ("tensors", .int(bp.tensors.count)), ("bytes", .int(bp.totalBytes)), ("shards", .int(names.count)),
                    ("seconds", .double(MonotonicClock.seconds() - start)),
                ])), terminator: "")
            } else if !common.quiet {
                printError("wrote \(output): \(bp.tensors.count) tensors, \(formatBytes(bp.totalBytes)) in \(names.count) file(s)")
            }
        }
    }
}
