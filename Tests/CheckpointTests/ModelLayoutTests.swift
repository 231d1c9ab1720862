import Foundation
import XCTest
@testable import Checkpoint
import JSON
import SafeTensors

final class ModelLayoutTests: XCTestCase {
    // MARK: The samples

    func testDeepSeekSampleEveryTensorClassified() throws {
        let ckpt = try Checkpoint(path: CK.deepseek)
        XCTAssertEqual(ckpt.architecture, .deepseekV3)
        XCTAssertEqual(ckpt.unknownTensors, [])
        XCTAssertNoThrow(try ckpt.requireClassified())
        XCTAssertEqual(ckpt.roles.count, 139)
        let counts = checkRoles(ckpt.weights.tensorNames, .deepseekV3)
        // 3 layers: layer 0 dense, 1–2 MoE with 16 experts + 1 shared (samples README).
        XCTAssertEqual(counts[.expert], 2 * 16 * 3)
        XCTAssertEqual(counts[.sharedExpert], 2 * 3)
        XCTAssertEqual(counts[.router], 2)
        XCTAssertEqual(counts[.routerBias], 2)
        XCTAssertEqual(counts[.mlp], 3)
        XCTAssertEqual(counts[.attention], 3 * 5)
        XCTAssertEqual(counts[.norm], 3 * 4 + 1)
        XCTAssertEqual(counts[.embedding], 1)
        XCTAssertEqual(counts[.lmHead], 1)
        // 120 weights are quantized by default: 5 attention + 3 MLP in layer 0, 5 + 48 + 3 in each MoE layer.
        XCTAssertEqual(ckpt.roles.values.filter(\.quantizedByDefault).count, 8 + 2 * 56)

        let r = try XCTUnwrap(ckpt.roles["model.layers.2.mlp.experts.13.down_proj.weight"])
        XCTAssertEqual(r.kind, .expert)
        XCTAssertEqual(r.layer, 2)
        XCTAssertEqual(r.expert, 13)
        XCTAssertEqual(r.projection, "down_proj")
        XCTAssertEqual(r.module, "model.layers.2.mlp.experts.13.down_proj")
        let gate = try XCTUnwrap(ckpt.roles["model.layers.1.mlp.gate.weight"])
        XCTAssertEqual(gate.kind, .router)
        XCTAssertFalse(gate.quantizedByDefault)
        let bias = try XCTUnwrap(ckpt.roles["model.layers.1.mlp.gate.e_score_correction_bias"])
        XCTAssertEqual(bias.kind, .routerBias)
        XCTAssertEqual(bias.module, "model.layers.1.mlp.gate")
        XCTAssertEqual(ckpt.weights.info("model.layers.1.mlp.gate.e_score_correction_bias")?.dtype, .f32)
        XCTAssertEqual(ckpt.roles["model.layers.1.mlp.shared_experts.up_proj.weight"]?.kind, .sharedExpert)
        XCTAssertEqual(ckpt.roles["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"]?.kind, .attention)
        XCTAssertEqual(ckpt.roles["model.layers.0.self_attn.kv_a_layernorm.weight"]?.kind, .norm)
    }

    func testQwen2SampleEveryTensorClassified() throws {
        let ckpt = try Checkpoint(path: CK.qwen2)
        XCTAssertEqual(ckpt.architecture, .qwen2)
        XCTAssertEqual(ckpt.unknownTensors, [])
        XCTAssertEqual(ckpt.roles.count, 27)
        let counts = checkRoles(ckpt.weights.tensorNames, .qwen2)
        XCTAssertEqual(counts[.bias], 2 * 3)
        XCTAssertEqual(counts[.attention], 2 * 4)
        XCTAssertEqual(counts[.mlp], 2 * 3)
        XCTAssertEqual(counts[.norm], 2 * 2 + 1)
        let b = try XCTUnwrap(ckpt.roles["model.layers.1.self_attn.k_proj.bias"])
        XCTAssertEqual(b.kind, .bias)
        XCTAssertEqual(b.layer, 1)
        XCTAssertEqual(b.projection, "k_proj")
        XCTAssertFalse(b.quantizedByDefault, "biases stay as they are")
    }

    func testLlamaSampleEveryTensorClassified() throws {
        let ckpt = try Checkpoint(path: CK.llama)
        XCTAssertEqual(ckpt.architecture, .llama)
        XCTAssertEqual(ckpt.unknownTensors, [])
        XCTAssertEqual(ckpt.roles.count, 21)
        let counts = checkRoles(ckpt.weights.tensorNames, .llama)
        XCTAssertEqual(counts[.attention], 2 * 4)
        XCTAssertEqual(counts[.mlp], 2 * 3)
        XCTAssertEqual(counts[.bias], nil)
    }

    // MARK: Blueprints (every name of the real releases)

    func testDeepSeekBlueprintEveryTensorClassified() {
        let bp = ModelBlueprint(kind: .deepseekV3, scale: 256)
        XCTAssertEqual(bp.tensors.count, 46_183)
        let counts = checkRoles(bp.tensors.map(\.name), .deepseekV3)
        // 58 MoE layers (3–60) + the MTP layer 61, 256 experts each; 3 dense layers (0–2).
        XCTAssertEqual(counts[.expert], 59 * 256 * 3)
        XCTAssertEqual(counts[.sharedExpert], 59 * 3)
        XCTAssertEqual(counts[.router], 59)
        XCTAssertEqual(counts[.routerBias], 59)
        XCTAssertEqual(counts[.mlp], 3 * 3)
        XCTAssertEqual(counts[.attention], 62 * 5)
        // per layer input/post-attention/q_a/kv_a norms, model.norm, MTP enorm, hnorm, shared_head.norm
        XCTAssertEqual(counts[.norm], 62 * 4 + 1 + 3)
        XCTAssertEqual(counts[.embedding], 2)
        XCTAssertEqual(counts[.lmHead], 2)
        XCTAssertEqual(counts[.mtpProjection], 1)
        XCTAssertEqual(counts.values.reduce(0, +), 46_183)

        let layout = ModelLayout(architecture: .deepseekV3)
        let eh = layout.role(of: "model.layers.61.eh_proj.weight")
        XCTAssertEqual(eh?.kind, .mtpProjection)
        XCTAssertEqual(eh?.layer, 61)
        XCTAssertEqual(eh?.quantizedByDefault, false, "eh_proj is BF16 in the release (docs/reference.md)")
        XCTAssertEqual(layout.role(of: "model.layers.61.shared_head.head.weight")?.kind, .lmHead)
        XCTAssertEqual(layout.role(of: "model.layers.61.shared_head.head.weight")?.quantizedByDefault, false)
        XCTAssertEqual(layout.role(of: "model.layers.61.embed_tokens.weight")?.kind, .embedding)
        XCTAssertEqual(layout.role(of: "model.layers.61.enorm.weight")?.kind, .norm)
        XCTAssertEqual(layout.role(of: "model.layers.61.shared_head.norm.weight")?.kind, .norm)
        XCTAssertEqual(layout.role(of: "model.layers.61.mlp.experts.255.up_proj.weight")?.expert, 255)
        XCTAssertEqual(layout.role(of: "model.layers.61.mlp.experts.255.up_proj.weight")?.layer, 61)
    }

    func testDenseBlueprintsEveryTensorClassified() {
        let q = ModelBlueprint(kind: .qwen2, scale: 64)
        XCTAssertEqual(q.tensors.count, 28 * 12 + 3)
        let qc = checkRoles(q.tensors.map(\.name), .qwen2)
        XCTAssertEqual(qc[.bias], 28 * 3)
        let l = ModelBlueprint(kind: .llama, scale: 64)
        XCTAssertEqual(l.tensors.count, 32 * 9 + 3)
        let lc = checkRoles(l.tensors.map(\.name), .llama)
        XCTAssertEqual(lc[.attention], 32 * 4)
        XCTAssertEqual(lc[.bias], nil)
    }

    // MARK: Names that do not fit

    func testNamesOutsideTheLayout() {
        let ds = ModelLayout(architecture: .deepseekV3)
        let llama = ModelLayout(architecture: .llama)
        let qwen = ModelLayout(architecture: .qwen2)
        for name in [
            "model.layers.0.foo.weight", "model.layers.x.self_attn.q_proj.weight", "model.layers.-1.mlp.up_proj.weight",
            "model.layers.0.self_attn.q_proj.weight.extra", "lm_head.bias", "model.embed_tokens.bias", "transformer.h.0.attn.weight",
            "model.layers.0.mlp.experts.x.up_proj.weight", "model.layers.0.mlp.experts.0.w1.weight", "weight", "",
            "model.layers.0.mlp.gate.bias", "model.layers.0.self_attn.q_a_layernorm.bias",
        ] {
            XCTAssertNil(ds.role(of: name), name)
        }
        // MoE, MLA and MTP names are DeepSeek's only.
        for name in [
            "model.layers.0.mlp.gate.weight", "model.layers.0.mlp.experts.0.up_proj.weight",
            "model.layers.0.mlp.shared_experts.up_proj.weight", "model.layers.0.self_attn.q_a_layernorm.weight",
            "model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.kv_b_proj.weight",
            "model.layers.3.eh_proj.weight", "model.layers.3.enorm.weight", "model.layers.3.shared_head.head.weight",
        ] {
            XCTAssertNil(llama.role(of: name), "llama: \(name)")
            XCTAssertNil(qwen.role(of: name), "qwen2: \(name)")
        }
        // An MLP bias fits qwen2 (it may carry biases) but not llama or deepseek.
        XCTAssertNil(llama.role(of: "model.layers.0.mlp.up_proj.bias"))
        XCTAssertNil(ds.role(of: "model.layers.0.mlp.up_proj.bias"))
    }

    func testQuantizationParametersAndQuantizedByDefault() throws {
        let ds = ModelLayout(architecture: .deepseekV3)
        for suffix in ["weight_scale_inv", "weight_scale", "input_scale"] {
            let r = try XCTUnwrap(ds.role(of: "model.layers.4.mlp.experts.7.gate_proj." + suffix))
            XCTAssertEqual(r.kind, .quantizationParameter)
            XCTAssertEqual(r.module, "model.layers.4.mlp.experts.7.gate_proj")
            XCTAssertEqual(r.layer, 4)
            XCTAssertFalse(r.quantizedByDefault)
        }
        // quantizedByDefault is true exactly for attention / mlp / expert / shared-expert `.weight`.
        let names = ModelBlueprint(kind: .deepseekV3, scale: 256).tensors.map(\.name)
            + ModelBlueprint(kind: .qwen2, scale: 256).tensors.map(\.name)
        for name in names {
            for arch in Architecture.allCases {
                guard let r = ModelLayout(architecture: arch).role(of: name) else { continue }
                let expected = r.parameter == "weight" && [.attention, .mlp, .expert, .sharedExpert].contains(r.kind)
                XCTAssertEqual(r.quantizedByDefault, expected, name)
            }
        }
    }

    /// A directory with one tensor the layout does not explain is refused, naming the tensor.
    func testUnknownTensorIsRefusedByName() throws {
        let tmp = try CKTempDir()
        let dir = tmp.path + "/model"
        try CK.copyDirectory(CK.llama, to: dir)
        let w = try SafeTensorsWriter(path: dir + "/extra.safetensors", tensors: [TensorSpec(name: "model.layers.0.foo.weight", dtype: .bf16, shape: [4])])
        try w.write("model.layers.0.foo.weight", [UInt8](repeating: 0, count: 8))
        try w.finish()

        let ckpt = try Checkpoint(path: dir)
        XCTAssertEqual(ckpt.architecture, .llama)
        XCTAssertEqual(ckpt.unknownTensors, ["model.layers.0.foo.weight"])
        XCTAssertEqual(ckpt.roles.count, 21)
        XCTAssertThrowsError(try ckpt.requireClassified()) { error in
            guard case let CheckpointError.unknownTensors(arch, names, total) = error else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(arch, "llama")
            XCTAssertEqual(names, ["model.layers.0.foo.weight"])
            XCTAssertEqual(total, 1)
            XCTAssertTrue("\(error)".contains("'model.layers.0.foo.weight'"), "\(error)")
        }
    }

    /// The byte-wise split of ASCII names gives String.split's parts (empty ones kept); other
    /// names, where a "." may join a combining mark, take String.split itself.
    func testComponentsAgreeWithSplit() {
        for name in ["model.layers.0.mlp.experts.12.down_proj.weight", "lm_head.weight", "a", "", ".", "..", "a.", ".a", "a..b",
                     "model.layers.x\r\n.y", "é.b", "a.\u{301}b.c", "a\u{301}.b", "mödel.layers.0.weight"] {
            XCTAssertEqual(ModelLayout.components(name), name.split(separator: ".", omittingEmptySubsequences: false), name)
        }
    }
}
