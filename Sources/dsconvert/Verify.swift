import Numerics
import ArgumentParser
import DSPack
import Diagnostics
import Foundation
import JSON
import SystemIO

extension DSConvert {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check .dspack files completely: header digest and structure, every tensor's and file's XXH3-64, zero padding (all cores).",
            discussion: "Names every corrupted tensor or byte range. Exit status 4 when any check fails.")

        @Argument(help: "The .dspack files.")
        var files: [String]

        @Option(name: .long, help: "Require a signature by this Ed25519 public key (PEM, as `openssl pkey -pubout` writes): an unsigned pack or one signed by another key fails (exit 4).")
        var pubkey: String?

        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let trusted = try pubkey.map { try DSPackSignature.publicKey(pemFile: $0) }
            var reports: [JSONValue] = []
            var failures: [DSPackError] = []
            for f in files {
                let start = MonotonicClock.seconds()
                let pack: DSPackFile
                do { pack = try DSPackFile(path: f) } catch let e as DSPackError where e.category == .input {
                    // A pack that does not even open is a failed verification of that file.
                    var v = e
                    v.kind = e.kind
                    failures.append(v)
                    reports.append(.object([("file", .string(f)), ("ok", .bool(false)), ("errors", .array([.string(e.description)]))]))
                    if !common.json { FileHandle.standardError.write((e.description + "\n").data(using: .utf8)!) }
                    continue
                }
                // §7.2: the data, then the signature trailer (against the trusted key when given).
                let errors = DSPackVerifier.verify(pack) + [DSPackSignature.check(pack, trustedKey: trusted)].compactMap { $0 }
                let seconds = MonotonicClock.seconds() - start
                failures += errors
                if common.json {
                    reports.append(.object([
                        ("file", .string(f)), ("ok", .bool(errors.isEmpty)), ("entries", .int(pack.entries.count)),
                        ("bytes", .int(pack.mapping.size)), ("seconds", .double(seconds)),
                        ("signed", .bool(pack.trailer != nil)),
                        ("errors", .array(errors.map { .object([("code", .string($0.specCode)), ("tensor", $0.tensor.map(JSONValue.string) ?? .null),
                                                                 ("offset", $0.offset.map(JSONValue.int) ?? .null), ("message", .string($0.description))]) })),
                    ]))
                } else {
                    for e in errors { FileHandle.standardError.write((e.description + "\n").data(using: .utf8)!) }
                    if !common.quiet {
                        let gbps = Double(pack.mapping.size) / max(seconds, 1e-9) / 1e9
                        print("\(f): \(errors.isEmpty ? "ok" : "\(errors.count) failure\(errors.count == 1 ? "" : "s")"), \(pack.entries.count) entries, \(formatBytes(pack.mapping.size)) in \(String(format: "%.2f", seconds)) s (\(String(format: "%.2f", gbps)) GB/s)\(pack.trailer != nil ? "; signed" : "")")
                    }
                }
            }
            if common.json { print(JSONWriter.pretty(.object([("files", .array(reports))])), terminator: "") }
            if !failures.isEmpty {
                let first = failures.first(where: { $0.category == .verification }) ?? failures[0]
                throw Diagnostic(.verification, code: first.code, file: first.path, tensor: first.tensor, offset: first.offset,
                                 "\(failures.count) check\(failures.count == 1 ? "" : "s") failed in \(files.count) file\(files.count == 1 ? "" : "s")")
            }
        }
    }
}
