import Numerics
import ArgumentParser
import Conversion
import JSON

extension DSConvert {
    struct MergeIndex: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Complete an output directory written by several --jobs runs: verify every shard, then write the index, config.json and the copied files.")

        @Argument(help: "The output directory the jobs wrote into.")
        var output: String

        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let r = try DirectoryFinisher.finish(outputDirectory: output)
            if common.json {
                print(JSONWriter.pretty(.object([
                    ("output", .string(output)), ("settings", .string(r.settings)), ("settings_digest", .string(r.settingsDigest)),
                    ("shards", .int(r.shards)), ("total_size", .int(r.totalSize)),
                    ("copied_files", .array(r.copied.map { .string($0) })), ("not_copied", .array(r.notCopied.map { .string($0) })),
                ])), terminator: "")
            } else if !common.quiet {
                printError("\(output): \(r.shards) shards verified, \(formatBytes(r.totalSize)) of tensors; "
                           + (r.embedsModelFiles ? "packs embed config.json and the side files, nothing written beside them" : "index, config.json and \(r.copied.count) other file(s) written"))
            }
        }
    }
}
