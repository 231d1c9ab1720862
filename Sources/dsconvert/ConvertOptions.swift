import Numerics
import ArgumentParser
import Checkpoint
import Conversion
import Diagnostics
import Foundation
import JSON
import Quantization
import SystemIO

/// The file format a conversion writes.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case safetensors, dspack
}

/// Options shared by `quantize` and `dequantize`: the input and output folders, the output format and how to run.
struct ConvertOptions: ParsableArguments {
    @Argument(help: "The input model directory (or a .safetensors file).")
    var input: String

    @Argument(help: "The output directory (created if needed; must differ from the input).")
    var output: String

    @OptionGroup var how: RunOptions

    @Option(name: .long, help: "Output format: safetensors (default: shards, index, config.json and side files) or dspack (one OUT/model.dspack embedding config.json and the side files; Formats/dspack.md).")
    var format: OutputFormat = .safetensors

    func validate() throws {
        if format == .dspack, how.shardSize != nil {
            throw UsageError.conflict("--shard-size applies to --format safetensors: a .dspack is one file (OUT/model.dspack)")
        }
    }

    /// Where the output tensors go: safetensors files (mirrored or cut at `--shard-size`), or one pack.
    var layout: OutputLayout {
        format == .dspack ? PackedOutput.layout : OutputLayout(shardSize: how.shardSize)
    }

    var shardSize: Int? { how.shardSize }

    /// Opens the input for a conversion (see `RunOptions.checkpoint`).
    func checkpoint() throws -> Checkpoint { try how.checkpoint(input) }

    /// Runs `plan` (made with `layout`) with a progress display and prints the report.
    func run(_ ckpt: Checkpoint, _ plan: ConversionPlan, verb: String, common: CommonOptions) throws {
        let plan = format == .dspack ? try PackedOutput.prepare(plan, checkpoint: ckpt) : plan
        try how.run(ckpt, plan, input: input, output: output, verb: verb, common: common)
    }
}

/// How a conversion runs: file size, jobs, fsync, --force (quantize, dequantize, shard).
struct RunOptions: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "Re-chunk the output into files of at most this size (e.g. 5GB, 1.5GiB; 1 B to 1 PiB), named model-00001-of-0000N.safetensors. Default: one output file per input file, same names.",
            transform: { try OptionValue.byteSize($0, option: "--shard-size") })
    var shardSize: Int?

    @Option(name: .long, parsing: .unconditional, help: "Split the work into N disjoint sets of shards (for a job array), 1 to 100000 (default 1).",
            transform: { try OptionValue.integer($0, option: "--jobs", in: OptionValue.jobs) })
    var jobs: Int = 1

    @Option(name: .long, parsing: .unconditional, help: "Convert only set I (0 to N-1, default 0) of --jobs N; finish with `dsconvert merge-index OUT`.",
            transform: { try OptionValue.integer($0, option: "--job-index", in: 0...(OptionValue.jobs.upperBound - 1)) })
    var jobIndex: Int = 0

    @Flag(name: .long, help: "fsync every output file before renaming it into place.")
    var fsync = false

    @OptionGroup var load: LoadOptions

    @Flag(name: .long, help: "Replace files in a non-empty output directory that no dsconvert run wrote (same-named shards, config.json, copies; a stale index). Without it such files stop the run before anything is written.")
    var force = false

    func validate() throws {
        guard jobIndex < jobs else {
            throw UsageError.invalid("--job-index", String(jobIndex), "is out of range for --jobs \(jobs)", allowed: "an integer from 0 to \(jobs - 1)")
        }
    }

    /// Opens the input for a conversion (`--verify` applied): a whole checkpoint with tensors
    /// (not one shard of an indexed one), refused before any planning.
    func checkpoint(_ input: String) throws -> Checkpoint {
        let ckpt = try load.checkpoint(input)
        try ckpt.weights.requireWhole()
        return ckpt
    }

    /// Runs `plan` with a progress display and prints the report.
    /// `concurrentFiles`: output files written at once (see `ConversionOptions.concurrentFiles`).
    func run(_ ckpt: Checkpoint, _ plan: ConversionPlan, input: String, output: String, verb: String, common: CommonOptions, concurrentFiles: Int = 1) throws {
        Interrupt.install()
        let progress = TerminalProgress(verb: verb, quiet: common.quiet || common.json)
        let runner = ConversionRunner(
            checkpoint: ckpt, plan: plan,
            options: ConversionOptions(outputDirectory: output, jobs: jobs, jobIndex: jobIndex, durable: fsync, force: force,
                                       concurrentFiles: concurrentFiles),
            observer: progress)
        let report: ConversionReport
        do {
            report = try runner.run()
        } catch let e as ConversionError {
            progress.finish()
            if case .wouldOverwrite = e {
                throw Diagnostic(e.category, code: e.code, file: e.file, e.message + "; or pass --force to replace them")
            }
            throw e
        } catch {
            progress.finish()
            throw error
        }
        progress.finish()
        let gbps = report.seconds > 0 ? Double(report.inputBytes) / report.seconds / 1e9 : 0
        if common.json {
            let v = JSONValue.object([
                ("input", .string(input)), ("output", .string(output)), ("settings", .string(plan.settings)),
                ("settings_digest", .string(plan.settingsDigestHex)),
                ("converted_shards", .array(report.converted.map { .string($0) })),
                ("skipped_shards", .array(report.skipped.map { .string($0) })),
                ("counts", .object(plan.counts.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("input_bytes", .int(report.inputBytes)), ("output_bytes", .int(report.outputBytes)),
                ("seconds", .double(report.seconds)), ("gb_per_s", .double(gbps)),
                ("complete", .bool(report.finalized)), ("job_index", .int(jobIndex)), ("jobs", .int(jobs)),
                ("copied_files", .array(report.copiedFiles.map { .string($0) })),
                ("not_copied", .array(report.notCopied.map { .string($0) })),
            ] + (plan.smoothing.map { [("smoothing", $0.json)] } ?? []))
            print(JSONWriter.pretty(v), terminator: "")
        } else if !common.quiet {
            let counts = plan.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            printError("\(counts); \(report.converted.count) shard(s) written, \(report.skipped.count) skipped; "
                + "\(formatBytes(report.inputBytes)) → \(formatBytes(report.outputBytes)) in \(String(format: "%.2f", report.seconds)) s (\(String(format: "%.2f", gbps)) GB/s)")
            for line in plan.smoothing?.lines ?? [] { printError(line) }
            if report.finalized { printError("wrote \(output)") }
        }
    }
}
