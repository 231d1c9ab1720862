import ArgumentParser
import Checkpoint
import Conversion
import DSPack
import Foundation
import JSON
import Numerics
import SystemIO

extension DSConvert {
    struct Pack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pack a checkpoint folder into one .dspack (Formats/dspack.md): 4096-aligned tensors, XXH3-64 per tensor, SHA-256 header digest, side files embedded.",
            discussion: "With --zstd the output is the compressed transport file (.dspack.zst, spec §10) instead; `dsconvert decompress` restores the identical pack. The input may then also be a .dspack.")

        @Argument(help: "Model directory (or a .safetensors file; with --zstd also a .dspack).")
        var input: String

        @Argument(help: "Output .dspack file, or .dspack.zst with --zstd (written to a temporary and renamed into place when complete).")
        var output: String

        @Flag(name: .long, help: "Write the zstd-compressed transport file (libzstd, --threads workers; float bytes split into planes).")
        var zstd = false

        @Option(name: .long, help: "zstd level with --zstd, -7 to 19 (default 3).",
                transform: { try OptionValue.integer($0, option: "--level", in: -7...19) })
        var level: Int?

        @Flag(name: .long, help: "With --zstd: compress every entry's bytes as they are (no byte planes).")
        var noPlanes = false

        @Option(name: .long, help: "Sign the pack with this Ed25519 private key (PEM, as `openssl genpkey -algorithm ed25519` writes): a 128-byte trailer over the header digest (spec §2.7); `verify --pubkey` checks it.")
        var sign: String?

        @OptionGroup var common: CommonOptions

        func validate() throws {
            if !zstd && (level != nil || noPlanes) { throw ValidationError("--level and --no-planes need --zstd") }
        }

        func run() throws {
            try common.apply()
            let key = try sign.map { try DSPackSignature.PrivateKey(pemFile: $0) }  // a bad key fails before any work
            let bar = ByteProgressBar(verb: zstd ? "compress" : "pack", quiet: common.quiet || common.json)
            let start = MonotonicClock.seconds()
            var fields: [(String, JSONValue)] = [("output", .string(output))]
            var summary: String
            if zstd {
                let options = DSPackTransport.Options(level: Int32(level ?? 3), threads: Parallel.threads, planes: !noPlanes)
                let r: DSPackTransport.Report
                if DSPackFile.isPack(path: input) && key == nil {
                    r = try DSPackTransport.compress(try DSPackFile(path: input), to: output, options: options) { bar.update($0, $1) }
                } else {
                    // The pack is written first, under a registered temporary name beside the output
                    // (removed on every exit path), then compressed.
                    let scratch = try AtomicFile(output + ".dspack")
                    defer { scratch.abort() }
                    _ = try Packer.pack(try Checkpoint(path: input), to: scratch.temporaryPath) { bar.update($0 / 2, $1) }
                    if let key { try DSPackSignature.sign(packAt: scratch.temporaryPath, key: key) }
                    r = try DSPackTransport.compress(try DSPackFile(path: scratch.temporaryPath), to: output, options: options) { bar.update(($1 + $0) / 2, $1) }
                }
                bar.finish()
                fields += [("pack_bytes", .int(r.packBytes)), ("bytes", .int(r.transportBytes)), ("ratio", .double(r.ratio)),
                           ("level", .int(level ?? 3)), ("planes", .bool(!noPlanes)),
                           ("by_dtype", .object(r.byDType.sorted { $0.key < $1.key }.map { ($0.key, .object([("raw", .int($0.value.raw)), ("stored", .int($0.value.stored))])) }))]
                summary = "compressed \(formatBytes(r.packBytes)) of pack into \(output) (\(formatBytes(r.transportBytes)), ratio \(String(format: "%.3f", r.ratio)))"
            } else {
                let w: DSPackWriter
                if let key {
                    // Packed under the output's temporary name, signed there, then renamed into place:
                    // no unsigned pack ever appears under the output's name.
                    let out = try AtomicFile(output)
                    defer { out.abort() }  // nothing once committed
                    w = try Packer.pack(try Checkpoint(path: input), to: out.temporaryPath) { done, total in bar.update(done, total) }
                    try DSPackSignature.sign(packAt: out.temporaryPath, key: key)
                    try out.commit()
                } else {
                    w = try Packer.pack(try Checkpoint(path: input), to: output) { done, total in bar.update(done, total) }
                }
                bar.finish()
                fields += [("tensors", .int(w.specs.count)), ("entries", .int(w.entries.count)), ("bytes", .int(w.fileSize + (key == nil ? 0 : DSPackLayout.trailerSize)))]
                summary = "packed \(w.specs.count) tensors and \(w.entries.count - w.specs.count) files into \(output) (\(formatBytes(w.fileSize)))"
            }
            if let key {
                fields.append(("public_key", .string(key.publicKey.map { String(format: "%02x", $0) }.joined())))
                summary += ", signed"
            }
            let seconds = MonotonicClock.seconds() - start
            if common.json {
                print(JSONWriter.pretty(.object(fields + [("seconds", .double(seconds))])), terminator: "")
            } else if !common.quiet {
                print(summary + " in \(String(format: "%.2f", seconds)) s")
            }
        }
    }

    struct Decompress: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore the .dspack of a .dspack.zst transport file (written by pack --zstd), byte for byte.",
            discussion: "The restored pack is verified (header digest, every XXH3-64, every gap) before it is renamed into place; exit status 4 when it does not verify, 1 when the transport file is malformed.")

        @Argument(help: "The .dspack.zst transport file.")
        var input: String

        @Argument(help: "The .dspack to write.")
        var output: String

        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let bar = ByteProgressBar(verb: "decompress", quiet: common.quiet || common.json)
            let start = MonotonicClock.seconds()
            let r = try DSPackTransport.restore(input, to: output) { bar.update($0, $1) }
            bar.finish()
            let seconds = MonotonicClock.seconds() - start
            if common.json {
                print(JSONWriter.pretty(.object([("output", .string(output)), ("bytes", .int(r.packBytes)), ("transport_bytes", .int(r.transportBytes)),
                                                 ("entries", .int(r.entries)), ("verified", .bool(true)), ("seconds", .double(seconds))])), terminator: "")
            } else if !common.quiet {
                print("restored \(output) (\(formatBytes(r.packBytes)), \(r.entries) entries, verified) from \(formatBytes(r.transportBytes)) in \(String(format: "%.2f", seconds)) s")
            }
        }
    }
}
