import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

final class SyntheticCheckpointTests: XCTestCase {
    /// deepseek-v3 at scale 1/256: 163 shards with the release's six-digit total, every tensor name
    /// of the real model (layer 61 included), the router bias F32, values ~ N(0, 0.02), norms 1.
    func testDeepSeekScale256() throws {
        let tmp = try CVTempDir()
        let dir = tmp.sub("ds")
        let bp = ModelBlueprint(kind: .deepseekV3, scale: 256)
        XCTAssertEqual(SyntheticCheckpoint.Options().seed, 0, "seed 0 unless given")
        let names = try SyntheticCheckpoint.write(bp, to: dir)
        XCTAssertEqual(names, (1...163).map { String(format: "model-%05d-of-000163.safetensors", $0) })
        XCTAssertEqual(try CV.files(dir), ["config.json"] + names + ["model.safetensors.index.json"])

        let ckpt = try Checkpoint(path: dir)
        XCTAssertNoThrow(try ckpt.requireClassified())
        XCTAssertEqual(ckpt.weights.tensorCount, 46_183)
        XCTAssertEqual(Set(ckpt.weights.tensorNames), Set(bp.tensors.map(\.name)))
        for t in bp.tensors { XCTAssertEqual(ckpt.weights.info(t.name)?.shape, t.shape, t.name) }
        XCTAssertEqual(ckpt.config?.hiddenSize, 28)
        XCTAssertEqual(ckpt.config?.mtpLayers, 1)
        XCTAssertEqual(ckpt.roles["model.layers.61.eh_proj.weight"]?.kind, .mtpProjection)
        XCTAssertEqual(ckpt.roles.values.filter { $0.layer == 61 }.count, 788)
        XCTAssertEqual(CheckpointSummary(ckpt).parameterCount, bp.tensors.reduce(0) { $0 + $1.elementCount })
        XCTAssertEqual(ckpt.weights.totalTensorBytes, bp.totalBytes)
        let biases = bp.tensors.filter { $0.name.hasSuffix("e_score_correction_bias") }
        XCTAssertEqual(biases.count, 59)
        for b in biases { XCTAssertEqual(ckpt.weights.info(b.name)?.dtype, .f32) }
        XCTAssertEqual(ckpt.weights.tensorNames.filter { ckpt.weights.info($0)?.dtype == .f32 }.count, 59)
        // Every shard carries some tensors (none empty), each file holds what the index says.
        XCTAssertEqual(ckpt.weights.files.count, 163)
        XCTAssertTrue(ckpt.weights.files.allSatisfy { !$0.tensorNames.isEmpty })

        // Values: a 458,752-value BF16 weight has mean ≈ 0 (σ/√n ≈ 3e-5) and std ≈ 0.02.
        let o = try ckpt.weights.view("model.layers.30.self_attn.o_proj.weight")
        let (mean, std) = moments(o)
        XCTAssertEqual(o.info.elementCount, 28 * 16384)
        XCTAssertEqual(mean, 0, accuracy: 2.5e-4)
        XCTAssertEqual(std, 0.02, accuracy: 0.0004)
        // The router biases (59 × 256 F32 values) too, and the norms are 1.
        var all: [Float] = []
        for b in biases {
            let v = try ckpt.weights.view(b.name)
            all += (0..<256).map { v.bytes.load(fromByteOffset: 4 * $0, as: Float.self) }
        }
        let bm = all.reduce(0, +) / Float(all.count)
        let bs = (all.reduce(0) { $0 + ($1 - bm) * ($1 - bm) } / Float(all.count)).squareRoot()
        XCTAssertEqual(bm, 0, accuracy: 0.001)
        XCTAssertEqual(bs, 0.02, accuracy: 0.001)
        for name in ["model.layers.61.enorm.weight", "model.layers.7.self_attn.kv_a_layernorm.weight", "model.norm.weight"] {
            let v = try ckpt.weights.view(name)
            XCTAssertTrue((0..<v.info.elementCount).allSatisfy { v.bytes.load(fromByteOffset: 2 * $0, as: UInt16.self) == 0x3F80 }, name)
        }

    }

    /// Quantized, a release-shaped checkpoint (3 dense layers, 1 MoE layer, the MTP layer as
    /// layer 4, 163 files) keeps its six-digit shard names; the MTP layer's experts are FP8 while
    /// its eh_proj, embed_tokens and shared_head.head stay BF16 (docs/reference.md).
    func quantizeMirrorsTheReleaseLayout(_ dir: String, _ out: String) throws {
        let names = try CV.files(dir).filter { $0.hasSuffix(".safetensors") }
        XCTAssertEqual(names, (1...163).map { String(format: "model-%05d-of-000163.safetensors", $0) })
        let r = try CV.quantize(dir, out)
        XCTAssertEqual(r.converted, names)
        XCTAssertEqual(try CV.modelFiles(out), ["config.json"] + names + ["model.safetensors.index.json"])
        let q = try Checkpoint(path: out)
        func dtype(_ n: String) -> DType? { q.weights.info(n)?.dtype }
        XCTAssertEqual(dtype("model.layers.4.mlp.experts.200.down_proj.weight"), .f8e4m3)
        XCTAssertEqual(q.weights.info("model.layers.4.mlp.experts.200.down_proj.weight_scale_inv")?.shape, [1, 1])
        XCTAssertEqual(q.weights.info("model.layers.4.self_attn.q_b_proj.weight_scale_inv")?.shape, [192, 1])
        XCTAssertEqual(dtype("model.layers.4.eh_proj.weight"), .bf16)
        XCTAssertEqual(dtype("model.layers.4.shared_head.head.weight"), .bf16)
        XCTAssertEqual(dtype("model.layers.4.embed_tokens.weight"), .bf16)
        XCTAssertEqual(dtype("model.layers.3.mlp.gate.weight"), .bf16)
        XCTAssertEqual(dtype("model.layers.3.mlp.gate.e_score_correction_bias"), .f32)
        XCTAssertEqual(dtype("lm_head.weight"), .bf16)
        XCTAssertNil(q.weights.info("model.layers.4.eh_proj.weight_scale_inv"))
        // 5 layers × 5 attention + 3 × 3 dense + 2 × (256 + 1) × 3 expert weights.
        XCTAssertEqual(QuantizationState.of(q).quantizedWeights, 5 * 5 + 9 + 2 * 257 * 3)
        XCTAssertEqual(CheckpointSummary(q).parameterCount, CheckpointSummary(try Checkpoint(path: dir)).parameterCount)
    }

    func moments(_ v: TensorView) -> (Double, Double) {
        precondition(v.dtype == .bf16)
        var s = 0.0, s2 = 0.0
        let n = v.info.elementCount
        let p = v.bytes.bindMemory(to: UInt16.self)
        for i in 0..<n {
            let x = Double(FloatBits.bf16ToF32(p[i]))
            s += x
            s2 += x * x
        }
        let mean = s / Double(n)
        return (mean, (s2 / Double(n) - mean * mean).squareRoot())
    }

    /// The same seed writes the same bytes; another seed other values (same names and shapes).
    func testDeterministicForASeed() throws {
        let tmp = try CVTempDir()
        let bp = ModelBlueprint(kind: .deepseekV3, scale: 256, layers: 4)
        var o = SyntheticCheckpoint.Options()
        try SyntheticCheckpoint.write(bp, to: tmp.sub("a"), options: o)
        try SyntheticCheckpoint.write(bp, to: tmp.sub("b"), options: o)
        try CV.assertSameDirectory(tmp.sub("a"), tmp.sub("b"))
        XCTAssertEqual(try CV.files(tmp.sub("a")).filter { $0.hasSuffix(".safetensors") }.count, 163)
        o.shards = 7
        o.seed = 1
        try SyntheticCheckpoint.write(bp, to: tmp.sub("c"), options: o)
        let a = try CV.tensors(tmp.sub("a")), c = try CV.tensors(tmp.sub("c"))
        XCTAssertEqual(Set(a.keys), Set(c.keys))
        for (name, t) in a {
            XCTAssertEqual(t.info.shape, c[name]!.info.shape)
            if name.hasSuffix("norm.weight") { XCTAssertTrue(t.bytes == c[name]!.bytes, name) }
            else { XCTAssertFalse(t.bytes == c[name]!.bytes, "\(name) is the same for seeds 0 and 1") }
        }
        try quantizeMirrorsTheReleaseLayout(tmp.sub("a"), tmp.sub("a-fp8"))
        // Tensors do not share values (each has its own stream).
        XCTAssertFalse(a["model.layers.1.mlp.up_proj.weight"]!.bytes == a["model.layers.1.mlp.gate_proj.weight"]!.bytes)
        // A dense blueprint as a single file when asked for one.
        var one = SyntheticCheckpoint.Options()
        one.shards = 1
        let names = try SyntheticCheckpoint.write(ModelBlueprint(kind: .qwen2, scale: 512), to: tmp.sub("q"), options: one)
        XCTAssertEqual(names, ["model.safetensors"])
        XCTAssertEqual(try CV.files(tmp.sub("q")), ["config.json", "model.safetensors"])
        XCTAssertNoThrow(try Checkpoint(path: tmp.sub("q")).requireClassified())
    }

    /// `--align N` rounds every scaled width up to a multiple of N. Scale 1/10 divides 7168,
    /// 18432, 2048, 1536, 512 and 129280 into 716, 1843, 204, 153, 51 and 12928 (TP 8 divides only
    /// the vocabulary); with N 8 they are 720, 1848, 208, 160, 56 and 12928, the tensor count is
    /// that of every scale (46,183) and `shard --plan --tp 8 --ep 8` accepts the split that it
    /// refuses unaligned.
    func testAlignedWidths() throws {
        let bp = ModelBlueprint(kind: .deepseekV3, scale: 10, align: 8)
        let shapes = Dictionary(uniqueKeysWithValues: bp.tensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(bp.tensors.count, 46_183)
        XCTAssertEqual(shapes["model.embed_tokens.weight"], [12928, 720])
        XCTAssertEqual(shapes["model.layers.5.self_attn.q_a_proj.weight"], [160, 720])
        XCTAssertEqual(shapes["model.layers.5.self_attn.q_b_proj.weight"], [24576, 160])
        XCTAssertEqual(shapes["model.layers.5.self_attn.kv_a_proj_with_mqa.weight"], [120, 720])
        XCTAssertEqual(shapes["model.layers.5.self_attn.kv_b_proj.weight"], [32768, 56])
        XCTAssertEqual(shapes["model.layers.5.self_attn.o_proj.weight"], [720, 16384])
        XCTAssertEqual(shapes["model.layers.1.mlp.down_proj.weight"], [720, 1848])
        XCTAssertEqual(shapes["model.layers.5.mlp.experts.3.up_proj.weight"], [208, 720])
        XCTAssertEqual(shapes["model.layers.61.eh_proj.weight"], [720, 1440])
        XCTAssertEqual(shapes["lm_head.weight"], [12928, 720])
        // 1/64 unaligned has a vocabulary of 2020; N 8 makes it 2024 (and leaves 112 / 288 / 32).
        let s64 = Dictionary(uniqueKeysWithValues: ModelBlueprint(kind: .deepseekV3, scale: 64, align: 8).tensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(s64["lm_head.weight"], [2024, 112])
        XCTAssertEqual(s64["model.layers.0.mlp.gate_proj.weight"], [288, 112])
        XCTAssertEqual(s64["model.layers.3.mlp.experts.0.gate_proj.weight"], [32, 112])
        XCTAssertEqual(ModelBlueprint(kind: .qwen2, scale: 3, align: 16).tensors.first { $0.name == "model.layers.0.mlp.up_proj.weight" }?.shape,
                       [6320, 1200], "18944 / 3 = 6314 -> 6320, 3584 / 3 = 1194 -> 1200")
        // Align 1 is the plain division.
        XCTAssertEqual(ModelBlueprint(kind: .deepseekV3, scale: 256, align: 1).tensors.map(\.shape),
                       ModelBlueprint(kind: .deepseekV3, scale: 256).tensors.map(\.shape))

        // The CLI: headers only (sparse), then the TP 8 plan.
        let tmp = try CVTempDir()
        for (align, status) in [(nil, 64), ("8", 0)] as [(String?, Int32)] {
            let dir = tmp.sub("a\(align ?? "1")")
            let w = try CLI.run(["synth", "--arch", "deepseek-v3", "--scale", "1/10", "--sparse", "-q", dir] + (align.map { ["--align", $0] } ?? []))
            XCTAssertEqual(w.status, 0, w.stderr)
            let r = try CLI.run(["shard", dir, "--plan", "--tp", "8", "--ep", "8", "--gpu", "H100", "--json"])
            XCTAssertEqual(r.status, status, r.stderr)
            if align == nil {
                XCTAssertEqual(r.code, "shard.indivisible", r.stdout)
                XCTAssertTrue(r.stdout.contains("1843"), r.stdout)
            } else {
                let ranks = try JSONParser.parse(Array(r.stdout.utf8))["plan"]?["ranks"]?.arrayValue ?? []
                XCTAssertEqual(ranks.count, 8)
                // Every rank holds the same bytes: an even split.
                XCTAssertEqual(Set(ranks.compactMap { $0["weight_bytes"]?.intValue }).count, 1, r.stdout)
            }
        }
    }
}
