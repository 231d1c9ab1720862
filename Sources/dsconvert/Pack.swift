import ArgumentParser
import Checkpoint
import Conversion
import Foundation
import JSON
import SystemIO

extension DSConvert {
    struct Pack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pack a checkpoint folder into one .dspack (Formats/dspack.md): 4096-aligned tensors, XXH3-64 per tensor, SHA-256 header digest, side files embedded.")

        @Argument(help: "Model directory (or a .safetensors file).")
        var input: String

        @Argument(help: "Output .dspack file (written to a temporary and renamed into place when complete).")
        var output: String

        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let checkpoint = try Checkpoint(path: input)
            let bar = ByteProgressBar(verb: "pack", quiet: common.quiet || common.json)
            let start = MonotonicClock.seconds()
            let w = try Packer.pack(checkpoint, to: output) { done, total in bar.update(done, total) }
            bar.finish()
            let seconds = MonotonicClock.seconds() - start
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("output", .string(output)), ("tensors", .int(w.specs.count)), ("entries", .int(w.entries.count)),
                    ("bytes", .int(w.fileSize)), ("seconds", .double(seconds)),
                ])), terminator: "")
            } else if !common.quiet {
                print("packed \(w.specs.count) tensors and \(w.entries.count - w.specs.count) files into \(output) (\(formatBytes(w.fileSize))) in \(String(format: "%.2f", seconds)) s")
            }
        }
    }
}
