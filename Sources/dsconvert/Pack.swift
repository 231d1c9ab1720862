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
            let tty = Sys.isTerminal(2) && !common.quiet && !common.json
            var last = 0.0
            let start = MonotonicClock.seconds()
            let w = try Packer.pack(checkpoint, to: output) { done, total in
                let now = MonotonicClock.seconds()
                if tty && now - last > 0.2 {
                    last = now
                    FileHandle.standardError.write(String(format: "\r\u{1B}[2Kpack %5.1f%%  %@ / %@", 100 * Double(done) / Double(max(total, 1)), formatBytes(done), formatBytes(total)).data(using: .utf8)!)
                }
            }
            if tty { FileHandle.standardError.write("\n".data(using: .utf8)!) }
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
