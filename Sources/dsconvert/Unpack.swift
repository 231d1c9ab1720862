import ArgumentParser
import Conversion
import Foundation
import JSON
import Numerics
import SystemIO

extension DSConvert {
    struct Unpack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unpack a .dspack (or a .dspack.zst transport file) back to a safetensors folder: the same shards, tensors, index, config.json and side files it was packed from.",
            discussion: "The header digest is checked on open, every tensor's XXH3-64 while it is copied and every embedded file's when it is read; a mismatch names the tensor (exit 4). The folder is written under a temporary name beside OUT_DIR and renamed when complete: a failure leaves nothing under OUT_DIR. OUT_DIR must not exist or be empty. A transport file is first restored into that temporary folder (needing the pack's size in disk space while it runs).")

        @Argument(help: "The .dspack or .dspack.zst file.")
        var input: String

        @Argument(help: "The safetensors folder to write (must not exist, or be empty).")
        var output: String

        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            Interrupt.install()
            let bar = ByteProgressBar(verb: "unpack", quiet: common.quiet || common.json)
            let start = MonotonicClock.seconds()
            let r = try Unpacker.unpack(input, to: output) { bar.update($0, $1) }
            bar.finish()
            let seconds = MonotonicClock.seconds() - start
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("output", .string(output)), ("tensors", .int(r.tensors)), ("shards", .array(r.shards.map(JSONValue.string))),
                    ("files", .array(r.files.map(JSONValue.string))), ("bytes", .int(r.bytes)), ("restored", .bool(r.restored)),
                    ("verified", .bool(true)), ("seconds", .double(seconds)),
                ])), terminator: "")
            } else if !common.quiet {
                print("unpacked \(r.tensors) tensors into \(r.shards.count) shard\(r.shards.count == 1 ? "" : "s") and \(r.files.count) file\(r.files.count == 1 ? "" : "s") in \(output) (\(formatBytes(r.bytes)), every checksum verified) in \(String(format: "%.2f", seconds)) s")
            }
        }
    }
}
