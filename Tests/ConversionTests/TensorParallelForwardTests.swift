import Foundation
import JSON
import SafeTensors
import TestSupport
import XCTest

/// The semantic check of `shard` (issue 17 item 4): `dsconvert forward` on a shard output runs the
/// tensor-parallel split rank by rank on each rank's own slices (column-parallel outputs side by
/// side, row-parallel partial sums added in rank order, never a rebuilt weight) and reproduces
/// the unsharded model's logits within 1e-4 — and transformers' golden logits for the BF16
/// samples: TP 2 and 4 where the heads allow it, on the BF16 samples and on their
/// `--granularity channel` and `--int8` outputs, and on a block-FP8 model whose partitions are
/// multiples of 128 (Tests/Reference/make_shard_model.py, quantized by dsconvert) at TP 2, EP 1 and 2.
final class TensorParallelForwardTests: XCTestCase {
    static let tolerance: Float = 1e-4

    private func logits(_ model: String, _ ids: String, _ tmp: CVTempDir, _ label: String) throws -> [Float] {
        let out = tmp.file(label + ".logits.safetensors")
        let r = try CLI.run(["forward", model, "--ids", ids, "--out", out, "--quiet"])
        XCTAssertEqual(r.status, 0, "forward \(label): \(r.stderr)")
        let t = try XCTUnwrap(try CV.tensors(out)["logits"])
        return (0..<(t.bytes.count / 4)).map { t.float($0) }
    }

    private func maxAbs(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Shards `model` with `args`, checks that the split really cuts weights on both dimensions
    /// (rank.json), and returns the max abs difference of the sharded logits from `want`.
    private func sharded(_ model: String, _ args: [String], ids: String, want: [Float], _ tmp: CVTempDir, _ label: String) throws -> Float {
        let out = tmp.sub(label)
        let r = try CLI.run(["shard", model, out, "-q"] + args)
        XCTAssertEqual(r.status, 0, "shard \(label): \(r.stderr)")
        let rank0 = try CV.files(out).first { $0.hasPrefix("rank-") }!
        let dims = try CV.json(out + "/" + rank0 + "/rank.json")["tensors"]!.objectMembers!.compactMap { $0.1["split_dim"]?.intValue }
        XCTAssertTrue(dims.contains(0) && dims.contains(1), "\(label): column- and row-parallel weights")
        let err = maxAbs(try logits(out, ids, tmp, label), want)
        print("tensor parallel \(label): max abs error \(err) against the reference")
        return err
    }

    func testSamplesAtTP2AndTP4() throws {
        let tmp = try CVTempDir()
        for (sample, tps) in [("deepseek-v3-tiny", ["2", "4"]), ("qwen2-tiny", ["2"]), ("llama-tiny", ["2"])] {
            let model = CV.root + "/Samples/" + sample
            let ids = CV.root + "/Samples/golden/\(sample).safetensors"
            let golden = try XCTUnwrap(try CV.tensors(ids)["logits"])
            let want = (0..<(golden.bytes.count / 4)).map { golden.float($0) }
            let plain = try logits(model, ids, tmp, sample)
            XCTAssertLessThanOrEqual(maxAbs(plain, want), Self.tolerance, "\(sample) unsharded against transformers")
            for tp in tps {
                XCTAssertLessThanOrEqual(try sharded(model, ["--tp", tp], ids: ids, want: want, tmp, "\(sample)-tp\(tp)"), Self.tolerance)
            }
            // The compressed-tensors outputs: against the same output unsharded.
            for (kind, q) in [("channel", ["--fp8", "--granularity", "channel"]), ("int8", ["--int8"])] {
                let qdir = tmp.sub("\(sample)-\(kind)")
                XCTAssertEqual(try CLI.run(["quantize"] + q + [model, qdir, "-q"]).status, 0)
                let ref = try logits(qdir, ids, tmp, "\(sample)-\(kind)")
                for tp in tps {
                    XCTAssertLessThanOrEqual(try sharded(qdir, ["--tp", tp], ids: ids, want: ref, tmp, "\(sample)-\(kind)-tp\(tp)"), Self.tolerance)
                }
            }
        }
    }

    func testBlockFP8SplitAtBlockMultiples() throws {
        let tmp = try CVTempDir()
        let bf16 = tmp.sub("syn"), fp8 = tmp.sub("syn-fp8")
        _ = try PythonReference.run("make_shard_model.py", [bf16])
        XCTAssertEqual(try CLI.run(["quantize", "--fp8", bf16, fp8, "-q"]).status, 0)
        // Ids: the first 12 of the deepseek golden input, within the synthetic vocabulary.
        let config = try CV.json(fp8 + "/config.json")
        let vocab = try XCTUnwrap(config["vocab_size"]?.intValue)
        let idsPath = tmp.file("ids.safetensors")
        var rng = STRandom(seed: 17)
        let ids = (0..<12).map { _ in Int32(rng.below(vocab)) }
        try CV.writeSafetensors(idsPath, [(TensorSpec(name: "input_ids", dtype: .i32, shape: [1, 12]), ids.withUnsafeBytes { Array($0) })])
        let want = try logits(fp8, idsPath, tmp, "syn-fp8")
        XCTAssertGreaterThan(want.map(abs).max() ?? 0, 1e-3, "the logits are not all zero")
        for args in [["--tp", "2"], ["--tp", "2", "--ep", "2"]] {
            XCTAssertLessThanOrEqual(try sharded(fp8, args, ids: idsPath, want: want, tmp, "syn-fp8-" + args.joined()), Self.tolerance)
        }
    }
}
