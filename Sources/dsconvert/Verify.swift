import Numerics
import ArgumentParser
import Checkpoint
import DSPack
import Diagnostics
import Foundation
import JSON
import SystemIO

extension DSConvert {
    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check .dspack files completely: header digest and structure, every tensor's and file's XXH3-64, zero padding (all cores).",
            discussion: """
            Names every corrupted tensor or byte range. A directory stands for the packs in it and in its \
            rank-…/ folders (`shard --format dspack`): those are also checked to be exactly the ranks of one \
            parallel plan (metadata.parallel, Formats/dspack.md §6: one plan, every rank once). Exit status 4 \
            when any check fails.
            """)

        @Argument(help: "The .dspack files, or directories holding them (a sharded model's output directory).")
        var files: [String]

        @Option(name: .long, help: "Require a signature by this Ed25519 public key (PEM, as `openssl pkey -pubout` writes): an unsigned pack or one signed by another key fails (exit 4).")
        var pubkey: String?

        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let trusted = try pubkey.map { try DSPackSignature.publicKey(pemFile: $0) }
            var reports: [JSONValue] = []
            var failures: [DSPackError] = []
            var groups: [[String]] = []
            var all: [String] = []
            for f in files {
                if (try? Sys.stat(f))?.isDirectory == true {
                    let packs = try Self.packs(in: f)
                    groups.append(packs)
                    all += packs
                } else {
                    all.append(f)
                }
            }
            var opened: [String: JSONValue] = [:]
            for f in all {
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
                opened[f] = pack.metadata
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
            // A directory's packs: the ranks of one plan, each once (only among packs that opened).
            var planErrors: [DSPackError] = []
            for g in groups where g.count > 1 || g.contains(where: { DSPackParallel(metadata: opened[$0] ?? .null).map { $0.worldSize > 1 } ?? false }) {
                planErrors += DSPackParallel.checkRanks(g.compactMap { p in opened[p].map { (p, $0) } })
            }
            failures += planErrors
            if !common.json { for e in planErrors { FileHandle.standardError.write((e.description + "\n").data(using: .utf8)!) } }
            let report: [(String, JSONValue)] = [
                ("files", .array(reports)),
                ("plan_errors", .array(planErrors.map { .object([("file", .string($0.path)), ("code", .string($0.specCode)), ("message", .string($0.description))]) })),
            ]
            if !failures.isEmpty {
                let first = failures.first(where: { $0.category == .verification }) ?? failures[0]
                let error = Diagnostic(.verification, code: first.code, file: first.path, tensor: first.tensor, offset: first.offset,
                                       "\(failures.count) check\(failures.count == 1 ? "" : "s") failed in \(all.count) file\(all.count == 1 ? "" : "s")")
                // With --json: one document, the report with the error in it.
                if common.json { ExitStatus.exit(with: error, json: true, report: report) }
                throw error
            }
            if common.json { print(JSONWriter.pretty(.object(report)), terminator: "") }
        }

        /// The packs of a directory: its own `.dspack` files and each `rank-…/model.dspack`, sorted.
        static func packs(in directory: String) throws -> [String] {
            var out: [String] = []
            for n in try Sys.listDirectory(directory).sorted() where !n.hasPrefix(".") {
                let p = directory + "/" + n
                if n.hasSuffix(".dspack"), (try? Sys.stat(p))?.isRegular == true { out.append(p) }
                if n.hasPrefix("rank-"), (try? Sys.stat(p + "/" + RankManifest.packName))?.isRegular == true { out.append(p + "/" + RankManifest.packName) }
            }
            guard !out.isEmpty else {
                throw Diagnostic(.input, code: "dspack.no_packs", file: directory, tensor: nil, offset: nil, "holds no .dspack files (nor rank-…/model.dspack)")
            }
            return out
        }
    }
}
