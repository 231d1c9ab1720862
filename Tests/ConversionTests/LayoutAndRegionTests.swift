import Checkpoint
@testable import Conversion
import Foundation
import JSON
@testable import Quantization
import SafeTensors
import TestSupport
import XCTest

/// The layout and region seams: output layouts with subfolders (resume, jobs and merge-index on
/// nested names), tensor regions checked against numpy slices (`Tests/Reference/region_reference.py`),
/// and kept tensors streamed in chunks.
final class LayoutAndRegionTests: XCTestCase {
    private static func sample(_ name: String) -> String {
        PythonReference.packageRoot.appendingPathComponent("Samples").appendingPathComponent(name).path
    }

    // MARK: Region arithmetic (hand-computed)

    func testRegionRunsAndScaleGrids() throws {
        // Columns [128, 256) of a [3, 300] BF16 tensor: one run of 256 bytes per row.
        let r = TensorRegion(dimension: 1, range: 128..<256)
        var runs: [[Int]] = []
        r.forEachRun(shape: [3, 300], elementSize: 2) { runs.append([$0, $1]) }
        XCTAssertEqual(runs, [[256, 256], [856, 256], [1456, 256]])
        XCTAssertEqual(r.shape(of: [3, 300]), [3, 128])
        // Rows: one run.
        runs = []
        TensorRegion(dimension: 0, range: 1..<3).forEachRun(shape: [3, 300], elementSize: 2) { runs.append([$0, $1]) }
        XCTAssertEqual(runs, [[600, 1200]])
        // A 3-D tensor (experts × rows × cols) cut along rows.
        runs = []
        TensorRegion(dimension: 1, range: 2..<4).forEachRun(shape: [2, 4, 5], elementSize: 1) { runs.append([$0, $1]) }
        XCTAssertEqual(runs, [[10, 10], [30, 10]])

        // Scale grids of 128-blocks over a 300-wide weight: [256, 300) ends at the tensor's end.
        XCTAssertEqual(try TensorRegion(dimension: 1, range: 256..<300).scaleGrid(weightShape: [3, 300], blocks: [128, 128], tensor: "w").range, 2..<3)
        XCTAssertEqual(try TensorRegion(dimension: 1, range: 0..<256).scaleGrid(weightShape: [3, 300], blocks: [128, 128], tensor: "w").range, 0..<2)
        for bad in [100..<256, 128..<200, 0..<0, 250..<301] {
            XCTAssertThrowsError(try TensorRegion(dimension: 1, range: bad).scaleGrid(weightShape: [3, 300], blocks: [128, 128], tensor: "w"), "\(bad)") { e in
                XCTAssertEqual((e as? TensorRegionError)?.code, "tensor.bad_region")
                XCTAssertEqual((e as? TensorRegionError)?.tensor, "w")
            }
        }
        XCTAssertThrowsError(try TensorRegion(dimension: 2, range: 0..<1).validate([3, 300], tensor: "w"))
    }

    // MARK: Regions against numpy

    /// Rows and columns of kept, quantized and dequantized tensors, and an FP8 weight cut with its
    /// scale grid, written as tensors of their own, equal numpy's slices of the input (quantized
    /// and dequantized with the independent reference arithmetic). Kept tensors are streamed in
    /// 4 KiB chunks here, so every chunk boundary case is crossed.
    func testRegionsMatchNumpySlices() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "regions")
        let bf16 = Self.sample("deepseek-v3-tiny")
        let fp8 = tmp.appending("fp8").path
        try CV.quantize(bf16, fp8)

        let saved = (ShardConverter.chunkBytes, ShardConverter.copyBufferBytes, ShardConverter.spanBytes)
        ShardConverter.chunkBytes = 4096
        // The writer's read buffer and the gathers' spans cut tensors at odd places too.
        ShardConverter.copyBufferBytes = 1000
        ShardConverter.spanBytes = 3000
        defer { (ShardConverter.chunkBytes, ShardConverter.copyBufferBytes, ShardConverter.spanBytes) = saved }

        var entries: [JSONValue] = []
        func entry(_ source: String, _ action: String, _ region: TensorRegion, _ outputs: [String], block: Int = 128, dtype: String = "BF16") {
            entries.append(.object([
                ("source", .string(source)), ("action", .string(action)), ("dim", .int(region.dimension)),
                ("start", .int(region.range.lowerBound)), ("end", .int(region.range.upperBound)),
                ("outputs", .array(outputs.map { .string($0) })), ("block", .int(block)), ("dtype", .string(dtype)),
            ]))
        }
        func renamed(_ t: TensorPlan, _ prefix: String) -> TensorPlan {
            var t = t
            for i in t.outputs.indices { t.outputs[i].name = prefix + t.outputs[i].name }
            return t
        }

        // From the BF16 sample: kept and quantized tensors.
        let ck = try Checkpoint(path: bf16)
        let qplan = try PlanBuilder.quantize(ck, scheme: CV.scheme(), ignore: [], shardSize: nil)
        let byName = Dictionary(qplan.shards.flatMap(\.tensors).map { ($0.source, $0) }, uniquingKeysWith: { a, _ in a })
        var tensors: [TensorPlan] = []
        func add(_ source: String, _ region: TensorRegion, _ prefix: String, _ action: String) throws {
            let t = renamed(try byName[source]!.restricted(to: region, fullShape: ck.weights.info(source)!.shape), prefix)
            tensors.append(t)
            entry(source, action, region, t.outputs.map(\.name))
        }
        try add("model.embed_tokens.weight", TensorRegion(dimension: 0, range: 1000..<3001), "rows.", "copy")
        try add("model.embed_tokens.weight", TensorRegion(dimension: 1, range: 64..<192), "cols.", "copy")
        try add("model.layers.0.input_layernorm.weight", TensorRegion(dimension: 0, range: 10..<100), "rows.", "copy")
        try add("model.layers.0.mlp.gate_proj.weight", TensorRegion(dimension: 0, range: 100..<400), "rows.", "quantize")
        try add("model.layers.0.mlp.gate_proj.weight", TensorRegion(dimension: 1, range: 0..<200), "cols.", "quantize")
        let out = tmp.appending("out").path
        try run(ck, tensors, into: out, name: "plain.safetensors")
        try check(input: bf16, output: out + "/plain.safetensors", entries: entries)

        // From the FP8 output: block-FP8 weights dequantized by region, and cut as they are.
        entries = []
        tensors = []
        let fk = try Checkpoint(path: fp8)
        let dplan = try PlanBuilder.dequantize(fk, to: .bf16, shardSize: nil)
        let dq = Dictionary(dplan.shards.flatMap(\.tensors).map { ($0.source, $0) }, uniquingKeysWith: { a, _ in a })
        let down = "model.layers.0.mlp.down_proj.weight"  // [256, 512], scale grid [2, 4]
        for region in [TensorRegion(dimension: 0, range: 128..<256), TensorRegion(dimension: 1, range: 128..<512)] {
            let prefix = "d\(region.dimension)."
            let t = renamed(try dq[down]!.restricted(to: region, fullShape: [256, 512]), prefix)
            tensors.append(t)
            entry(down, "dequantize", region, t.outputs.map(\.name))
        }
        XCTAssertThrowsError(try dq[down]!.restricted(to: TensorRegion(dimension: 0, range: 100..<256), fullShape: [256, 512])) { e in
            XCTAssertEqual((e as? TensorRegionError)?.code, "tensor.bad_region")
        }
        // An FP8 weight kept as it is, cut together with its scale grid.
        let wRegion = TensorRegion(dimension: 1, range: 256..<512)
        let sRegion = try wRegion.scaleGrid(weightShape: [256, 512], blocks: [128, 128], tensor: down)
        for (name, region, full) in [(down, wRegion, [256, 512]), (down + "_scale_inv", sRegion, [2, 4])] {
            let info = fk.weights.info(name)!
            let t = try TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: "k." + name, dtype: info.dtype, shape: full)])
                .restricted(to: region, fullShape: full)
            tensors.append(t)
            entry(name, "copy", region, t.outputs.map(\.name))
        }
        let out2 = tmp.appending("out2").path
        try run(fk, tensors, into: out2, name: "fp8.safetensors")
        try check(input: fp8, output: out2 + "/fp8.safetensors", entries: entries)
    }

    /// The reference must notice a region that is off by one row.
    func testRegionReferenceDetectsAnOffByOne() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "regions-off")
        let ck = try Checkpoint(path: Self.sample("qwen2-tiny"))
        let name = "model.embed_tokens.weight"
        let shape = ck.weights.info(name)!.shape
        let t = try TensorPlan(source: name, action: .copy, outputs: [TensorSpec(name: name, dtype: .bf16, shape: shape)])
            .restricted(to: TensorRegion(dimension: 0, range: 11..<20), fullShape: shape)
        let out = tmp.appending("out").path
        try run(ck, [t], into: out, name: "off.safetensors")
        let spec: JSONValue = .object([
            ("input", .string(Self.sample("qwen2-tiny"))), ("output", .string(out + "/off.safetensors")),
            ("entries", .array([.object([("source", .string(name)), ("action", .string("copy")), ("dim", .int(0)),
                                         ("start", .int(10)), ("end", .int(19)), ("outputs", .array([.string(name)]))])])),
        ])
        let specPath = tmp.appending("spec.json").path
        try CV.writeJSON(spec, to: specPath)
        XCTAssertThrowsError(try PythonReference.run("region_reference.py", [specPath]))
    }

    private func run(_ ck: Checkpoint, _ tensors: [TensorPlan], into out: String, name: String) throws {
        let files = Set(tensors.map { ck.weights.fileIndex(of: $0.source)! })
        let plan = ConversionPlan(
            shards: [OutputShardPlan(name: name, inputShards: files.sorted(), tensors: tensors, inputBytes: 0)],
            format: SafeTensorsFormat(), config: nil, writesIndex: false, indexMetadata: [], settings: "regions test", counts: [:])
        _ = try ConversionRunner(checkpoint: ck, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
    }

    private func check(input: String, output: String, entries: [JSONValue]) throws {
        let spec: JSONValue = .object([("input", .string(input)), ("output", .string(output)), ("entries", .array(entries))])
        let specPath = output + ".spec.json"
        try CV.writeJSON(spec, to: specPath)
        let r = try PythonReference.run("region_reference.py", [specPath])
        XCTAssertTrue(r.hasPrefix("ok "), r)
        var want = 0
        for e in entries { want += e["action"]?.stringValue == "quantize" ? 2 : 1 }
        XCTAssertEqual(r.trimmingCharacters(in: .whitespacesAndNewlines), "ok \(want)")
    }

    // MARK: Layouts with subfolders

    /// A layout that writes two subfolders: each is a loadable checkpoint (index, config, side
    /// files) holding exactly its tensors with the bytes of the flat layout; `--jobs 2` +
    /// merge-index gives the same bytes, and a re-run after a lost shard redoes only that shard.
    func testNestedLayoutResumesAndMergesByteIdentically() throws {
        let tmp = try PythonReference.TemporaryDirectory(prefix: "nested")
        let input = Self.sample("qwen2-tiny")
        let layout = OutputLayout(chunking: .maxFileSize(1 << 20), folderRule: "test-halves") { t in
            t.source.contains(".layers.0.") || t.source.contains("embed") ? "part-a" : "part-b"
        }
        func convert(_ out: String, jobs: Int = 1, index: Int = 0, observer: ConversionObserver = SilentObserver()) throws -> ConversionReport {
            let ck = try Checkpoint(path: input)
            let plan = try PlanBuilder.quantize(ck, scheme: CV.scheme(), ignore: [], layout: layout)
            return try ConversionRunner(checkpoint: ck, plan: plan, options: ConversionOptions(outputDirectory: out, jobs: jobs, jobIndex: index), observer: observer).run()
        }
        let single = tmp.appending("single").path
        let r = try convert(single)
        XCTAssertTrue(r.converted.allSatisfy { $0.hasPrefix("part-a/") || $0.hasPrefix("part-b/") }, "\(r.converted)")
        XCTAssertGreaterThan(r.converted.filter { $0.hasPrefix("part-b/") }.count, 1, "part-b is cut into several files")

        // The flat layout's tensors, split between the two folders.
        let flat = tmp.appending("flat").path
        try CV.quantize(input, flat)
        let flatTensors = try CV.tensors(flat)
        var seen = Set<String>()
        for part in ["part-a", "part-b"] {
            let dir = single + "/" + part
            let names = try CV.files(dir)
            XCTAssertTrue(names.contains("config.json") && names.contains("model.safetensors.index.json") && names.contains("tokenizer.json"), "\(part): \(names)")
            let ck = try Checkpoint(path: dir)  // validates the index against the files
            for (name, t) in try CV.tensors(dir) {
                XCTAssertTrue(seen.insert(name).inserted, name)
                XCTAssertEqual(t.bytes, flatTensors[name]?.bytes, name)
                XCTAssertEqual(part == "part-a", name.contains(".layers.0.") || name.contains("embed"), name)
            }
            XCTAssertEqual(ck.config?.json["quantization_config"] != nil, true)
        }
        XCTAssertEqual(seen, Set(flatTensors.keys))

        // Two jobs + merge-index: the same bytes, also when job 1 is re-run after losing a shard
        // (only that shard is redone).
        let jobs = tmp.appending("jobs").path
        _ = try convert(jobs, jobs: 2, index: 0)
        let job1 = try convert(jobs, jobs: 2, index: 1)
        let lost = job1.converted.last { $0.hasPrefix("part-b/") }!
        try FileManager.default.removeItem(atPath: jobs + "/" + lost)
        let again = try convert(jobs, jobs: 2, index: 1)
        XCTAssertEqual(again.converted, [lost])
        XCTAssertEqual(Set(again.skipped), Set(job1.converted).subtracting([lost]))
        try DirectoryFinisher.finish(outputDirectory: jobs)
        for part in ["", "/part-a", "/part-b"] { try CV.assertSameDirectory(single + part, jobs + part, part) }
        XCTAssertEqual(CV.temporaries(single) + CV.temporaries(jobs), [])
    }
}
