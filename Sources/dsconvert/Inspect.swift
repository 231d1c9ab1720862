import Numerics
import ArgumentParser
import Diagnostics
import Checkpoint
import Foundation
import JSON
import Quantization
import SafeTensors

extension DSConvert {
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe a checkpoint from its headers: architecture, parameters, bytes by dtype, quantization, tensors.")

        @Argument(help: "A model directory, a sharded checkpoint or a .safetensors file.")
        var path: String

        @Option(name: .long, help: "Only list tensors whose name matches this Python regular expression (re.search; re: prefix for re.match).")
        var filter: String?

        @Flag(name: .long, help: "Omit the per-tensor table.")
        var summary = false

        @OptionGroup var load: LoadOptions
        @OptionGroup var common: CommonOptions

        func run() throws {
            try common.apply()
            let pattern = try filter.map { try OptionValue.pattern($0, option: "--filter") }
            let ckpt = try load.checkpoint(path)
            let strays = ckpt.weights.unindexedFiles
            if !strays.isEmpty && !common.quiet {
                printError("warning: \(ckpt.directory) holds \(strays.count) .safetensors file(s) that \(SafeTensorsIndex.fileName) does not name, which are not part of this checkpoint: \(strays.prefix(5).joined(separator: ", "))\(strays.count > 5 ? ", …" : "")")
            }
            // The analyses read only headers and are independent of each other: they run side by
            // side (each pass over ~90k names costs a tenth of a second or more at DeepSeek scale).
            final class Analyses: @unchecked Sendable {
                var summary: CheckpointSummary?
                var quantization: QuantizationState?
                var problems: [CheckpointError] = []
            }
            let a = Analyses()
            DispatchQueue.concurrentPerform(iterations: 3) { i in
                switch i {
                case 0: a.summary = CheckpointSummary(ckpt)
                case 1: a.quantization = QuantizationState.of(ckpt)
                default: a.problems = ckpt.configProblems()
                }
            }
            let s = a.summary!, q = a.quantization!
            let names = ckpt.weights.tensorNames.filter { pattern?.matches($0) ?? true }
            if common.json {
                print(JSONWriter.pretty(report(ckpt, s, q, a.problems, names)), terminator: "")
            } else {
                printText(ckpt, s, q, a.problems, names)
            }
        }

        func report(_ ckpt: Checkpoint, _ s: CheckpointSummary, _ q: QuantizationState, _ problems: [CheckpointError], _ names: [String]) -> JSONValue {
            var members: [(String, JSONValue)] = [
                ("path", .string(path)),
                ("architecture", ckpt.architecture.map { .string($0.rawValue) } ?? .null),
                ("model_type", ckpt.config?.modelType.map { .string($0) } ?? .null),
                ("architectures", .array((ckpt.config?.architectures ?? []).map { .string($0) })),
                ("config", .object(ckpt.config.map(CheckpointSummary.keyConfigValues) ?? [])),
                ("parameters", .int(s.parameterCount)),
                ("tensor_count", .int(s.tensorCount)),
                ("shard_count", .int(s.shardCount)),
                ("tensor_bytes", .int(s.totalTensorBytes)),
                ("file_bytes", .int(s.totalFileBytes)),
                ("bytes_by_dtype", .object(s.bytesByDType.map { ($0.0.rawValue, .object([("bytes", .int($0.bytes)), ("tensors", .int($0.tensors))])) })),
                ("quantization", .object([
                    ("method", .string(q.method)),
                    ("quantized_weights", .int(q.quantizedWeights)),
                    ("groups", .array(q.groups.map { g in .object([
                        ("dtype", .string(g.valueDType.rawValue)), ("scale", .string(g.scaleName)),
                        ("scale_dtype", .string(g.scaleDType.rawValue)), ("granularity", .string(g.granularity)),
                        ("zero_point_dtype", g.zeroPointDType.map { .string($0.rawValue) } ?? .null),
                        ("count", .int(g.count)), ("example", .string(g.example)),
                    ]) })),
                    ("config", q.config ?? .null),
                    ("problem", q.problem.map { .string($0) } ?? .null),
                ])),
                ("unclassified_tensors", .array(ckpt.unknownTensors.prefix(100).map { .string($0) })),
                ("config_problems", .array(problems.map { .string("\($0)") })),
                ("unindexed_files", .array(ckpt.weights.unindexedFiles.map { .string($0) })),
                ("shard_of_index", ckpt.partOfIndex.map { .string($0.indexPath) } ?? .null),
                ("rank", ckpt.rank.map { r in .object([
                    ("rank", .int(r.rank)), ("tp_rank", .int(r.tpRank)), ("pp_stage", .int(r.ppStage)), ("ep_rank", .int(r.epRank)),
                    ("layers", .array(r.layers.map { .int($0) })), ("experts", .array(r.experts.map { .int($0) })),
                    ("sliced_tensors", .int(r.slicedCount)),
                ]) } ?? .null),
            ]
            if !summary {
                members.append(("tensors", .array(names.map { n in
                    let info = ckpt.weights.info(n)!
                    return .object([
                        ("name", .string(n)), ("dtype", .string(info.dtype.rawValue)),
                        ("shape", .array(info.shape.map { .int($0) })), ("bytes", .int(info.byteCount)),
                        ("shard", .string(ckpt.weights.files[ckpt.weights.fileIndex(of: n)!].name)),
                        ("role", ckpt.roles[n].map { .string($0.kind.rawValue) } ?? .null),
                    ])
                })))
            }
            return .object(members)
        }

        func printText(_ ckpt: Checkpoint, _ s: CheckpointSummary, _ q: QuantizationState, _ problems: [CheckpointError], _ names: [String]) {
            print("checkpoint    \(path)  (\(s.shardCount) file\(s.shardCount == 1 ? "" : "s"), \(formatBytes(s.totalFileBytes)))")
            if let part = ckpt.partOfIndex {
                print("part of       \(part.indexPath): this file is 1 of \(part.shardCount) shards (\(grouped(s.tensorCount)) of \(grouped(part.tensorCount)) tensors); inspect \(ckpt.directory) for the whole model (quantize and dequantize refuse a lone shard)")
            }
            if let r = ckpt.rank {
                print("rank          \(r.rank) (tp_rank \(r.tpRank), pp_stage \(r.ppStage), ep_rank \(r.epRank)) of a dsconvert shard output: "
                      + "layers \(IndexRanges.text(r.layers))\(r.experts.isEmpty ? "" : ", experts \(IndexRanges.text(r.experts))"); \(grouped(r.slicedCount)) tensors are slices, checked against rank.json's global shapes")
            }
            if let c = ckpt.config {
                let arch = ckpt.architecture?.rawValue ?? "unsupported (model_type \(c.modelType ?? "missing"))"
                print("architecture  \(arch)  \(c.architectures.joined(separator: ", "))")
                let kv = CheckpointSummary.keyConfigValues(c).map { "\($0.0)=\(JSONWriter.compact($0.1))" }
                var line = "config       "
                for item in kv {
                    if line.count + item.count > 100 { print(line); line = "             " }
                    line += " " + item
                }
                print(line)
            } else {
                print("architecture  unknown (no config.json beside the weights)")
            }
            print("parameters    \(grouped(s.parameterCount))  (stored values, scales excluded)")
            print("tensors       \(grouped(s.tensorCount)), \(formatBytes(s.totalTensorBytes)) of data")
            for (dtype, bytes, count) in s.bytesByDType {
                let d = dtype.rawValue, b = formatBytes(bytes)
                print("  " + d + String(repeating: " ", count: max(1, 12 - d.count)) + b + String(repeating: " ", count: max(1, 11 - b.count)) + "\(grouped(count)) tensors")
            }
            if q.groups.isEmpty {
                print("quantization  none" + (q.config != nil ? " (config.json has a quantization_config, but no quantized weights were found)" : ""))
            } else {
                print("quantization  \(q.method): \(grouped(q.quantizedWeights)) weights")
                for g in q.groups {
                    let zero = g.zeroPointDType.map { ", zero point \($0.rawValue)" } ?? ""
                    print("  \(g.count) × \(g.valueDType.rawValue) with \(g.scaleName) (\(g.scaleDType.rawValue), \(g.granularity)\(zero)), e.g. \(Diagnostic.escaped(g.example))")
                }
            }
            if let problem = q.problem {
                print("  refused by quantize and dequantize: \(problem)")
            }
            for p in problems.prefix(10) {
                print("config error  \(p.message)\(p.tensor.map { " (tensor '\(Diagnostic.escaped($0))')" } ?? "")")
            }
            if problems.count > 10 { print("              … and \(problems.count - 10) more (--json lists them all)") }
            if !ckpt.unknownTensors.isEmpty {
                print("unclassified  \(ckpt.unknownTensors.count) tensors do not fit the \(ckpt.architecture?.rawValue ?? "") layout, e.g. \(ckpt.unknownTensors.prefix(3).map { Diagnostic.escaped($0) }.joined(separator: ", "))")
            }
            guard !summary else { return }
            print("")
            // Every column as wide as its widest cell (names capped at 72; a longer one widens
            // only its own row), nothing cut; names escaped so control characters cannot reach
            // the terminal.
            let multi = s.shardCount > 1
            let rows: [[String]] = names.map { n in
                let info = ckpt.weights.info(n)!
                var row = [Diagnostic.escaped(n), info.dtype.rawValue, info.shapeText, String(info.byteCount)]
                if multi { row.append(Diagnostic.escaped(ckpt.weights.files[ckpt.weights.fileIndex(of: n)!].name)) }
                return row
            }
            let header = ["name", "dtype", "shape", "bytes"] + (multi ? ["shard"] : [])
            var widths = header.map(\.count)
            for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
            widths[0] = min(72, widths[0])
            func render(_ row: [String]) -> String {
                var line = ""
                for (i, cell) in row.enumerated() {
                    let gap = String(repeating: " ", count: max(0, widths[i] - cell.count))
                    if i > 0 { line += "  " }
                    // Bytes right-aligned; the last column is not padded.
                    line += i == 3 ? gap + cell : i == row.count - 1 ? cell : cell + gap
                }
                return line
            }
            print(render(header))
            for row in rows { print(render(row)) }
            if let filter { print("(\(names.count) of \(s.tensorCount) tensors match '\(Diagnostic.escaped(filter))')") }
        }
    }
}
