import Checkpoint
import Conversion
import DSPack
import Foundation
import JSON
import Numerics
import Quantization
import SystemIO
import TestSupport
import XCTest

/// `quantize` / `dequantize --format dspack`: the pack holds exactly what the safetensors output
/// of the same conversion holds (tensors, config.json, side files), checked by the independent
/// parser Tests/Reference/dspack_check.py (struct, hashlib, xxhash; the safetensors folder read by
/// the safetensors layout), and keeps the converter's resume, jobs and interruption guarantees.
final class DSPackConversionTests: XCTestCase {
    private static let deepseek = STFixtures.samplesDirectory + "/deepseek-v3-tiny"

    override func tearDown() {
        Interrupt.reset()
        super.tearDown()
    }

    private final class Observer: ConversionObserver {
        var tensors = 0
        var afterTensor: ((Int) -> Void)?
        func started(shards: Int, tensors: Int, inputBytes: Int) {}
        func skipped(shard: String, tensors: Int, inputBytes: Int) {}
        func tensorDone(_ name: String, inputBytes: Int) { tensors += 1; afterTensor?(tensors) }
        func shardDone(_ name: String, bytes: Int) {}
        func note(_ message: String) {}
    }

    @discardableResult
    private func quantize(_ input: String, _ out: String, pack: Bool, granularity: QuantizationScheme.Granularity? = nil,
                          jobs: Int = 1, jobIndex: Int = 0, observer: ConversionObserver = SilentObserver()) throws -> ConversionReport {
        let ckpt = try Checkpoint(path: input)
        let scheme = try QuantizationScheme(format: .fp8, granularity: granularity)
        var plan = try PlanBuilder.quantize(ckpt, scheme: scheme, ignore: [], layout: pack ? PackedOutput.layout : OutputLayout())
        if pack { plan = try PackedOutput.prepare(plan, checkpoint: ckpt) }
        return try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out, jobs: jobs, jobIndex: jobIndex),
                                    observer: observer).run()
    }

    private func dequantize(_ input: String, _ out: String, pack: Bool) throws {
        let ckpt = try Checkpoint(path: input)
        var plan = try PlanBuilder.dequantize(ckpt, to: .bf16, layout: pack ? PackedOutput.layout : OutputLayout())
        if pack { plan = try PackedOutput.prepare(plan, checkpoint: ckpt) }
        _ = try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out)).run()
    }

    private func listing(_ dir: String) throws -> [String] { try Sys.listDirectory(dir).sorted() }

    /// The pack equals the safetensors output of the same conversion, tensor by tensor and file by
    /// file; a pack is also a conversion's input (dequantize reads the FP8 pack, side files
    /// included, and its pack equals dequantize's safetensors output of the safetensors FP8 folder).
    func testPackHoldsWhatTheSafetensorsOutputHolds() throws {
        let dir = try STTemporaryDirectory("dspack-quantize")
        for g in [QuantizationScheme.Granularity.block, .channel] {
            let st = dir.file("st-\(g)"), pk = dir.file("pk-\(g)")
            try quantize(Self.deepseek, st, pack: false, granularity: g)
            let r = try quantize(Self.deepseek, pk, pack: true, granularity: g)
            XCTAssertEqual(r.converted, ["model.dspack"])
            XCTAssertTrue(r.finalized)
            // Nothing beside the pack: config.json and the tokenizer are inside it.
            XCTAssertEqual(try listing(pk), [".dsconvert", "model.dspack"])
            let out = try PythonReference.run("dspack_check.py", [pk + "/model.dspack", st])
            let report = try JSONParser.parse(out)
            XCTAssertEqual(report["files"], .array(["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"].map { .string($0) }), out)
            let pack = try DSPackFile(path: pk + "/model.dspack")
            XCTAssertEqual(DSPackVerifier.verify(pack).map(\.description), [])
            XCTAssertEqual(pack.metadata["quantization"]?["method"], .string(g == .block ? "fp8" : "compressed-tensors"))
            // §2.4: the source shards take the tensor entries in table order, as quantize names them.
            let shards = pack.metadata["source"]?["shards"]?.arrayValue ?? []
            XCTAssertEqual(shards.compactMap { $0["name"]?.stringValue }, (1...5).map { "model-0000\($0)-of-00005.safetensors" })
            var at = 0
            for s in shards {
                let n = s["tensors"]?.intValue ?? -1
                let expected = try Checkpoint.openStore(path: st + "/" + s["name"]!.stringValue!).tensorNames
                XCTAssertEqual(Array(pack.tensorNames[at..<min(at + n, pack.tensorNames.count)]), expected)
                at += n
            }
            XCTAssertEqual(at, pack.tensorNames.count)
            XCTAssertEqual(pack.metadata["source"]?["index"], .bool(true))
            // Scales are linked to their weights and have the quantization-parameter role.
            let w = pack.entries.first { $0.name == "model.layers.0.mlp.down_proj.weight" }!
            let scale = pack.entries[Int(w.weightScale)]
            XCTAssertEqual(scale.name, g == .block ? "model.layers.0.mlp.down_proj.weight_scale_inv" : "model.layers.0.mlp.down_proj.weight_scale")
            XCTAssertEqual(scale.role, DSPackLayout.Role.quantizationParameter.rawValue)
        }
        // A pack as the input of a conversion.
        try dequantize(dir.file("st-block"), dir.file("deq-st"), pack: false)
        try dequantize(dir.file("pk-block") + "/model.dspack", dir.file("deq-pk"), pack: true)
        let out = try PythonReference.run("dspack_check.py", [dir.file("deq-pk") + "/model.dspack", dir.file("deq-st")])
        XCTAssertNotNil(try? JSONParser.parse(out), out)
    }

    /// Ctrl-C after the k-th tensor leaves no temporary and no pack; the re-run writes the bytes
    /// of a clean run. A resume record's checksum is the XXH64 of the finished file (its header
    /// is written last), so a complete pack is skipped and a damaged one rewritten.
    func testInterruptionResumeAndJobs() throws {
        let dir = try STTemporaryDirectory("dspack-resume")
        let clean = dir.file("clean")
        try quantize(Self.deepseek, clean, pack: true)
        let cleanBytes = try Sys.readFile(clean + "/model.dspack", limit: 1 << 30)
        for k in [1, 70, 139] {
            let out = dir.file("out-\(k)")
            let obs = Observer()
            obs.afterTensor = { n in if n == k { Interrupt.request() } }
            XCTAssertThrowsError(try quantize(Self.deepseek, out, pack: true, observer: obs)) { XCTAssertTrue($0 is Interrupted, "k=\(k): \($0)") }
            Interrupt.reset()
            XCTAssertEqual(try listing(out), [".dsconvert"], "k=\(k): no pack, no temporary")
            let r = try quantize(Self.deepseek, out, pack: true)
            XCTAssertEqual(r.converted, ["model.dspack"])
            XCTAssertEqual(try Sys.readFile(out + "/model.dspack", limit: 1 << 30), cleanBytes, "k=\(k)")
        }

        // Jobs: the one pack belongs to job 0; job 1 has nothing to write; merge-index completes.
        let jobs = dir.file("jobs")
        let j1 = try quantize(Self.deepseek, jobs, pack: true, jobs: 2, jobIndex: 1)
        XCTAssertEqual(j1.converted, [])
        let j0 = try quantize(Self.deepseek, jobs, pack: true, jobs: 2, jobIndex: 0)
        XCTAssertEqual(j0.converted, ["model.dspack"])
        let rec = try XCTUnwrap(ResumeRecord.read(jobs + "/.dsconvert/model.dspack.json"))
        XCTAssertEqual(rec.size, cleanBytes.count)
        XCTAssertEqual(rec.xxh3, cleanBytes.withUnsafeBytes { XXH3.hash($0) }, "the record hashes the whole file, header included")
        let again = try quantize(Self.deepseek, jobs, pack: true, jobs: 2, jobIndex: 0)
        XCTAssertEqual(again.skipped, ["model.dspack"])
        // One data byte changed: the record no longer verifies and the job rewrites the pack.
        var bytes = cleanBytes
        bytes[bytes.count / 2] ^= 0x10
        try AtomicFile.write(bytes, to: jobs + "/model.dspack")
        let fixed = try quantize(Self.deepseek, jobs, pack: true, jobs: 2, jobIndex: 0)
        XCTAssertEqual(fixed.converted, ["model.dspack"])
        let fin = try DirectoryFinisher.finish(outputDirectory: jobs)
        XCTAssertEqual(fin.copied, [], "nothing is copied beside a pack")
        XCTAssertEqual(try listing(jobs), [".dsconvert", "model.dspack"])
        XCTAssertEqual(try Sys.readFile(jobs + "/model.dspack", limit: 1 << 30), cleanBytes)

        // Another embedded file (a changed tokenizer) changes the settings digest: no reuse.
        let input = dir.file("in")
        try Sys.makeDirectory(input)
        for n in try listing(Self.deepseek) { try Sys.copyFile(from: Self.deepseek + "/" + n, to: input + "/" + n) }
        let p0 = try quantize(input, dir.file("tok"), pack: true, jobs: 2, jobIndex: 0)
        XCTAssertEqual(p0.converted, ["model.dspack"])
        try AtomicFile.write(Array("{}".utf8), to: input + "/generation_config.json")
        XCTAssertThrowsError(try quantize(input, dir.file("tok"), pack: true, jobs: 2, jobIndex: 0)) { e in
            guard case ConversionError.settingsConflict = e else { return XCTFail("\(e)") }
        }
    }
}
