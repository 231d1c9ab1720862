import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

final class DirectoryContentsTests: XCTestCase {
    /// Top-level regular files are copied; subfolders, other weight formats and hidden files are
    /// not, and the log says so (DESIGN.md §1).
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
        XCTAssertEqual(try CV.files(tmp.sub("out")), ["README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
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
        XCTAssertEqual(ckpt.weights.shards.map(\.name), ["model.safetensors"])
        XCTAssertEqual(ckpt.weights.tensorCount, 35)
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
