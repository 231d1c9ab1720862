import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors
import SystemIO

final class DirectoryContentsTests: XCTestCase {
    /// Top-level regular files are copied; subfolders, other weight formats and hidden files are
    /// not, and the log says so (docs/reference.md).
    func testOtherFilesCopiedOrReported() throws {
        let tmp = try CVTempDir()
        let input = tmp.sub("in")
        try CV.copyDirectory(CV.llama, to: input)
        try CV.write(Array("# model card\n".utf8), to: input + "/README.md")
        try CV.write([0, 1, 2], to: input + "/pytorch_model.bin")
        try CV.write([9], to: input + "/.hidden")
        try FileManager.default.createDirectory(atPath: input + "/original", withIntermediateDirectories: false)
        try CV.write([3], to: input + "/original/consolidated.00.pth")
        let obs = RecordingObserver()
        let r = try CV.quantize(input, tmp.sub("out"), observer: obs)
        XCTAssertEqual(try CV.modelFiles(tmp.sub("out")), ["README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        XCTAssertEqual(try CV.bytes(tmp.sub("out") + "/README.md"), try CV.bytes(input + "/README.md"))
        XCTAssertEqual(r.notCopied, ["original/", "pytorch_model.bin"])
        XCTAssertTrue(obs.notes.contains { $0.contains("original/") && $0.contains("pytorch_model.bin") }, "\(obs.notes)")
    }

    /// An index an earlier run left in the output directory must not outlive a single-file output
    /// (loaders would follow it to the old files); stray shards are reported.
    func testStaleIndexFromAnEarlierRunIsRemoved() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try CV.quantize(CV.llama, out, shardSize: 1 << 30)
        XCTAssertTrue(CV.exists(out + "/model.safetensors.index.json"))
        let obs = RecordingObserver()
        try CV.quantize(CV.llama, out, observer: obs)
        XCTAssertFalse(CV.exists(out + "/model.safetensors.index.json"))
        XCTAssertTrue(obs.notes.contains { $0.contains("model-00001-of-00001.safetensors") }, "\(obs.notes)")
        try FileManager.default.removeItem(atPath: out + "/model-00001-of-00001.safetensors")
        let ckpt = try Checkpoint(path: out)
        XCTAssertEqual(ckpt.weights.files.map(\.name), ["model.safetensors"])
        XCTAssertEqual(ckpt.weights.tensorCount, 35)
    }

    /// Only files in dsconvert's own temporary format are ever removed: a user's dotfiles that
    /// merely look similar (`.notes.tmp-1`, the old `.NAME.tmp-PID` style, a field out of format)
    /// survive a single run and merge-index, while real leftovers (top level and in the state
    /// folder) go.
    func testOnlyDsconvertTemporariesAreRemoved() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try FileManager.default.createDirectory(atPath: out + "/.dsconvert", withIntermediateDirectories: true)
        let lookalikes = [
            ".notes.tmp-1", ".model.safetensors.tmp-123", ".config.json.tmp-host-1-2-abc",
            ".dsconvert-tmp-host-12-0-deadbeef",            // no destination name
            ".dsconvert-tmp-ho_st-1-0-deadbeef-x",          // host not letters and digits
            ".dsconvert-tmp-host-1-0-DEADBEEF-x",           // random not lowercase hex
            ".dsconvert-tmp-host-1-0-deadbee-x",            // 7 hex digits
            ".dsconvert-tmp-host-p1-0-deadbeef-x",          // pid not decimal
            "dsconvert-tmp-host-1-0-deadbeef-x",            // not hidden
        ]
        for n in lookalikes { try CV.write([7], to: out + "/" + n) }
        let leftovers = [out + "/.dsconvert-tmp-otherhost-4242-0-0badc0de-config.json",
                         out + "/.dsconvert-tmp-a1-7-12-00c0ffee-model-00003-of-00005.safetensors",
                         out + "/.dsconvert/.dsconvert-tmp-a1-7-13-00c0ffef-plan.json"]
        for p in leftovers { try CV.write([8], to: p) }
        try CV.quantize(CV.deepseek, out)
        for n in lookalikes { XCTAssertEqual(try CV.bytes(out + "/" + n), [7], "\(n) is the user's, not dsconvert's") }
        for p in leftovers { XCTAssertFalse(CV.exists(p), p) }

        // The same for merge-index after --jobs.
        let jobs = tmp.sub("jobs")
        try CV.quantize(CV.deepseek, jobs, jobs: 2, jobIndex: 0)
        try CV.quantize(CV.deepseek, jobs, jobs: 2, jobIndex: 1)
        for n in lookalikes { try CV.write([7], to: jobs + "/" + n) }
        try CV.write([8], to: leftovers[0].replacingOccurrences(of: out, with: jobs))
        try DirectoryFinisher.finish(outputDirectory: jobs)
        for n in lookalikes { XCTAssertEqual(try CV.bytes(jobs + "/" + n), [7], n) }
        XCTAssertEqual(CV.temporaries(jobs).filter { !lookalikes.contains($0) }, [])
    }

    /// The temporary name format parses strictly and round-trips; record names of shards in
    /// subfolders are percent-encoded into the one flat state folder and decode back.
    func testTemporaryAndRecordNames() throws {
        let t = TemporaryName(host: "node7", pid: 1, sequence: 12, random: 0xab, target: "model-00001-of-00002.safetensors")
        XCTAssertEqual(t.fileName, ".dsconvert-tmp-node7-1-12-000000ab-model-00001-of-00002.safetensors")
        XCTAssertEqual(TemporaryName(parsing: t.fileName), t)
        XCTAssertNil(TemporaryName(parsing: ".dsconvert-tmp-node7-1-12-000000ab-"))
        XCTAssertNil(TemporaryName(parsing: ".dsconvert-tmp-node-7-1-12-000000ab-x"), "a dash in the host shifts every field")
        XCTAssertEqual(ResumeRecord.fileName(shard: "rank-00000-of-00008/model%1.safetensors"), "rank-00000-of-00008%2Fmodel%251.safetensors.json")
        XCTAssertEqual(ResumeRecord.shard(fromFileName: "rank-00000-of-00008%2Fmodel%251.safetensors.json"), "rank-00000-of-00008/model%1.safetensors")
        XCTAssertNil(ResumeRecord.shard(fromFileName: "plan.json"))
        XCTAssertNil(ResumeRecord.shard(fromFileName: "manifest.json"))
        XCTAssertNil(ResumeRecord.shard(fromFileName: "bad%2.json"))
    }

    /// A user's own index in the output folder is not "left by an earlier run": a single-file
    /// conversion refuses to start (nothing written, the index untouched) and removes it only
    /// with `force`.
    func testUsersOwnIndexIsNotDeleted() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let index = Array(#"{"metadata": {}, "weight_map": {"x": "mine.safetensors"}}"#.utf8)
        try CV.write(index, to: out + "/model.safetensors.index.json")
        XCTAssertThrowsError(try CV.quantize(CV.llama, out)) { error in
            guard case let ConversionError.wouldOverwrite(_, files) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(files, ["model.safetensors.index.json"])
            XCTAssertEqual((error as? ConversionError)?.code, "conversion.would_overwrite")
        }
        XCTAssertEqual(try CV.modelFiles(out), ["model.safetensors.index.json"], "nothing written")
        XCTAssertEqual(try CV.files(out + "/.dsconvert"), ["lock"], "but the lock taken first")
        XCTAssertEqual(try CV.bytes(out + "/model.safetensors.index.json"), index)

        let ckpt = try Checkpoint(path: CV.llama)
        let plan = try PlanBuilder.quantize(ckpt, scheme: CV.scheme(), ignore: [], shardSize: nil)
        try ConversionRunner(checkpoint: ckpt, plan: plan, options: ConversionOptions(outputDirectory: out, force: true)).run()
        XCTAssertFalse(CV.exists(out + "/model.safetensors.index.json"))
        try CV.quantize(CV.llama, tmp.sub("clean"))
        try CV.assertSameDirectory(out, tmp.sub("clean"))

        // Nor is it overwritten by a sharded conversion's own index without consent.
        let sharded = tmp.sub("sharded")
        try FileManager.default.createDirectory(atPath: sharded, withIntermediateDirectories: true)
        try CV.write(index, to: sharded + "/model.safetensors.index.json")
        XCTAssertThrowsError(try CV.quantize(CV.deepseek, sharded)) { error in
            guard case let ConversionError.wouldOverwrite(_, files) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(files, ["model.safetensors.index.json"])
        }
        XCTAssertEqual(try CV.bytes(sharded + "/model.safetensors.index.json"), index)
    }

    /// A non-empty output folder no dsconvert run owns: same-named files of the user stop the
    /// run before anything is written (exit 1, `conversion.would_overwrite`, the files named and
    /// `--force` suggested); other files are no obstacle and stay; `--force` replaces. Once a
    /// folder is completed, its manifest lets a re-run replace what dsconvert wrote; without the
    /// manifest (`.dsconvert/` deleted) the files are the user's again.
    func testUsersSameNamedFilesNeedForce() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("out")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try CV.write(Array("{}".utf8), to: out + "/config.json")
        try CV.write([1], to: out + "/tokenizer.json")
        try CV.write([2], to: out + "/notes.txt")
        let r = try CLI.expect(["quantize", "--fp8", CV.llama, out, "--json"], status: 1, code: "conversion.would_overwrite")
        XCTAssertTrue(r.stderr.contains("config.json, tokenizer.json") && r.stderr.contains("--force"), r.stderr)
        XCTAssertFalse(r.stderr.contains("notes.txt"), r.stderr)
        XCTAssertEqual(try CV.modelFiles(out), ["config.json", "notes.txt", "tokenizer.json"], "nothing written")
        XCTAssertEqual(try CV.bytes(out + "/tokenizer.json"), [1])

        try CLI.expect(["quantize", "--fp8", CV.llama, out, "--quiet", "--force"], status: 0)
        XCTAssertEqual(try CV.bytes(out + "/tokenizer.json"), try CV.bytes(CV.llama + "/tokenizer.json"))
        XCTAssertEqual(try CV.bytes(out + "/notes.txt"), [2], "a file the conversion does not write stays")
        try CV.quantize(CV.llama, tmp.sub("clean"))
        XCTAssertEqual(try CV.modelFiles(out), (try CV.modelFiles(tmp.sub("clean")) + ["notes.txt"]).sorted())

        // Completed: the manifest says dsconvert wrote these, so the same command runs again.
        try CLI.expect(["quantize", "--fp8", CV.llama, out, "--quiet"], status: 0)
        try FileManager.default.removeItem(atPath: out + "/.dsconvert")
        try CLI.expect(["quantize", "--fp8", CV.llama, out, "--quiet", "--json"], status: 1, code: "conversion.would_overwrite")
    }

    /// Rewrites shard `file` of `dir` with `transform` applied to its tensor list.
    static func rewrite(_ dir: String, _ file: String, _ transform: ([(TensorSpec, [UInt8])]) -> [(TensorSpec, [UInt8])]) throws {
        let f = try SafeTensorsFile(path: dir + "/" + file)
        let items = f.tensors.map { (TensorSpec(name: $0.name, dtype: $0.dtype, shape: $0.shape), Array(f.view($0).bytes)) }
        try FileManager.default.removeItem(atPath: dir + "/" + file)
        try CV.writeSafetensors(dir + "/" + file, transform(items))
    }

    /// A scale stored in another file than its weight: dequantize reads it there, and resume
    /// redoes the weight's output when the scale's file changes.
    func testScaleInAnotherShard() throws {
        let tmp = try CVTempDir()
        let fp8 = tmp.sub("fp8"), moved = tmp.sub("moved")
        try CV.quantize(CV.deepseek, fp8)
        try CV.copyDirectory(fp8, to: moved)
        let scale = "model.layers.0.self_attn.o_proj.weight_scale_inv"
        let shards = CV.deepseekShards
        XCTAssertEqual(try CV.tensors(fp8)[scale]?.file, shards[2])
        var taken: (TensorSpec, [UInt8])?
        try Self.rewrite(moved, shards[2]) { items in
            taken = items.first { $0.0.name == scale }
            return items.filter { $0.0.name != scale }
        }
        try Self.rewrite(moved, shards[0]) { $0 + [taken!] }
        let index = try SafeTensorsIndex.read(path: moved + "/model.safetensors.index.json")
        let map = index.weightMap.map { ($0.0, $0.0 == scale ? shards[0] : $0.1) }
        let total = try CV.json(fp8 + "/model.safetensors.index.json")["metadata"]!["total_size"]!.intValue!
        try CV.write(SafeTensorsIndex(metadata: index.metadata, weightMap: map).serialized(totalSize: total), to: moved + "/model.safetensors.index.json")
        XCTAssertEqual(try CV.tensors(moved)[scale]?.file, shards[0])

        // Same result as from the unmodified FP8 checkpoint.
        try CV.dequantize(fp8, tmp.sub("ref"))
        let out = tmp.sub("out")
        let r0 = try CV.dequantize(moved, out, jobs: 2, jobIndex: 0)
        XCTAssertEqual(r0.converted, [shards[0], shards[2], shards[4]])
        for s in [shards[0], shards[2], shards[4]] {
            XCTAssertEqual(try CV.bytes(out + "/" + s), try CV.bytes(tmp.sub("ref") + "/" + s), s)
        }
        // The scale's file changes (a newer mtime): both outputs that read it are redone.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 60)], ofItemAtPath: moved + "/" + shards[0])
        let r1 = try CV.dequantize(moved, out, jobs: 2, jobIndex: 0)
        XCTAssertEqual(r1.converted, [shards[0], shards[2]])
        XCTAssertEqual(r1.skipped, [shards[4]])
        // Job 1 and merge: the same directory as from the unmodified checkpoint, but for the index
        // (built from the output shards, identical too) — everything.
        try CV.dequantize(moved, out, jobs: 2, jobIndex: 1)
        try DirectoryFinisher.finish(outputDirectory: out)
        try CV.assertSameDirectory(out, tmp.sub("ref"))
    }

    /// A Hugging Face cache snapshot is a folder of symlinks into `blobs/`: it converts like the
    /// real files, and the copies are regular files with the targets' bytes.
    func testSymlinkedInput() throws {
        let tmp = try CVTempDir()
        let snapshot = tmp.sub("snapshot")
        try FileManager.default.createDirectory(atPath: snapshot, withIntermediateDirectories: false)
        for name in try CV.files(CV.deepseek) {
            try FileManager.default.createSymbolicLink(atPath: snapshot + "/" + name, withDestinationPath: CV.deepseek + "/" + name)
        }
        try CV.quantize(snapshot, tmp.sub("a"))
        try CV.quantize(CV.deepseek, tmp.sub("b"))
        try CV.assertSameDirectory(tmp.sub("a"), tmp.sub("b"))
        let attrs = try FileManager.default.attributesOfItem(atPath: tmp.sub("a") + "/tokenizer.json")
        XCTAssertEqual(attrs[.type] as? FileAttributeType, .typeRegular)
    }
}
