import Foundation
import XCTest
import Checkpoint
import JSON
import SafeTensors

final class ModelBlueprintTests: XCTestCase {
    /// DeepSeek-V3 at scale 1 has the real tensor shapes (docs/reference.md) and every layer.
    func testDeepSeekV3RealShapes() throws {
        let bp = ModelBlueprint(kind: .deepseekV3, scale: 1)
        let shapes = Dictionary(uniqueKeysWithValues: bp.tensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes.count, bp.tensors.count, "names are unique")
        XCTAssertEqual(bp.releaseShardCount, 163)
        for l in [0, 2, 3, 60, 61] {
            let p = "model.layers.\(l)."
            XCTAssertEqual(shapes[p + "self_attn.q_a_proj.weight"], [1536, 7168], "layer \(l)")
            XCTAssertEqual(shapes[p + "self_attn.q_b_proj.weight"], [24576, 1536])
            XCTAssertEqual(shapes[p + "self_attn.kv_a_proj_with_mqa.weight"], [576, 7168])
            XCTAssertEqual(shapes[p + "self_attn.kv_b_proj.weight"], [32768, 512])
            XCTAssertEqual(shapes[p + "self_attn.o_proj.weight"], [7168, 16384])
            XCTAssertEqual(shapes[p + "self_attn.q_a_layernorm.weight"], [1536])
            XCTAssertEqual(shapes[p + "self_attn.kv_a_layernorm.weight"], [512])
            XCTAssertEqual(shapes[p + "input_layernorm.weight"], [7168])
            if l < 3 {
                XCTAssertEqual(shapes[p + "mlp.gate_proj.weight"], [18432, 7168])
                XCTAssertEqual(shapes[p + "mlp.down_proj.weight"], [7168, 18432])
                XCTAssertNil(shapes[p + "mlp.gate.weight"])
            } else {
                XCTAssertNil(shapes[p + "mlp.gate_proj.weight"])
                XCTAssertEqual(shapes[p + "mlp.gate.weight"], [256, 7168])
                XCTAssertEqual(shapes[p + "mlp.gate.e_score_correction_bias"], [256])
                for e in [0, 17, 255] {
                    XCTAssertEqual(shapes[p + "mlp.experts.\(e).gate_proj.weight"], [2048, 7168])
                    XCTAssertEqual(shapes[p + "mlp.experts.\(e).up_proj.weight"], [2048, 7168])
                    XCTAssertEqual(shapes[p + "mlp.experts.\(e).down_proj.weight"], [7168, 2048])
                }
                XCTAssertNil(shapes[p + "mlp.experts.256.gate_proj.weight"])
                XCTAssertEqual(shapes[p + "mlp.shared_experts.down_proj.weight"], [7168, 2048])
            }
        }
        XCTAssertNil(shapes["model.layers.62.input_layernorm.weight"])
        XCTAssertEqual(shapes["model.layers.61.eh_proj.weight"], [7168, 14336])
        XCTAssertEqual(shapes["model.layers.61.embed_tokens.weight"], [129_280, 7168])
        XCTAssertEqual(shapes["model.layers.61.shared_head.head.weight"], [129_280, 7168])
        XCTAssertEqual(shapes["model.layers.61.enorm.weight"], [7168])
        XCTAssertEqual(shapes["model.embed_tokens.weight"], [129_280, 7168])
        XCTAssertEqual(shapes["lm_head.weight"], [129_280, 7168])
        // Layers 0–61 all present; 256 experts in each MoE layer.
        let layers = Set(bp.tensors.compactMap { t -> Int? in
            let parts = t.name.split(separator: ".")
            return parts.count > 3 && parts[1] == "layers" ? Int(parts[2]) : nil
        })
        XCTAssertEqual(layers, Set(0...61))
        XCTAssertEqual(bp.tensors.filter { $0.name.hasSuffix("experts.255.down_proj.weight") }.count, 59)
        XCTAssertEqual(bp.tensors.filter { $0.dtype == .f32 }.map(\.name).allSatisfy { $0.hasSuffix("e_score_correction_bias") }, true)
        XCTAssertEqual(bp.tensors.filter { $0.dtype == .f32 }.count, 59)
    }

    /// The parameter count of DeepSeek-V3, derived by hand from the shapes of docs/reference.md:
    ///
    ///     attention per layer  q_a 1536·7168 = 11,010,048   q_b 24576·1536 = 37,748,736
    ///                          kv_a 576·7168 = 4,128,768    kv_b 32768·512 = 16,777,216
    ///                          o 7168·16384 = 117,440,512   q_a/kv_a norms 1536 + 512
    ///                          → 187,107,328
    ///     layer norms          2·7168 = 14,336
    ///     dense MLP            3·18432·7168 = 396,361,728            → dense layer 583,483,392
    ///     MoE MLP              experts 256·3·2048·7168 = 11,274,289,152
    ///                          shared 3·2048·7168 = 44,040,192, router 256·7168 = 1,835,008, bias 256
    ///                          → 11,320,164,608                       → MoE layer 11,507,286,272
    ///     main model           3·583,483,392 + 58·11,507,286,272 + embed and lm_head 2·129280·7168
    ///                          (1,853,358,080) + norm 7168 = 671,026,419,200   ("671B")
    ///     MTP layer 61         MoE layer + embed + head (1,853,358,080) + eh_proj 7168·14336
    ///                          (102,760,448) + enorm, hnorm, shared_head.norm (21,504)
    ///                          = 13,463,426,304
    ///     total                684,489,845,504
    ///
    /// Hugging Face reports 684,531,386,000 for the FP8 release (its `safetensors.parameters`:
    /// BF16 3,918,786,560, F8_E4M3 680,571,043,840, F32 41,555,600), which also counts the block
    /// scales: per 128×128 block of every quantized weight (attention 11,448 per layer, dense MLP
    /// 24,192, 256 experts 688,128 + shared 2,688 per MoE layer: 3·35,640 + 59·702,264 =
    /// 41,540,496) — 684,489,845,504 + 41,540,496 = 684,531,386,000 exactly.
    func testDeepSeekV3ParameterCountMatchesTheRelease() {
        let bp = ModelBlueprint(kind: .deepseekV3, scale: 1)
        let elements = bp.tensors.reduce(0) { $0 + $1.elementCount }
        XCTAssertEqual(elements, 684_489_845_504)
        let main = bp.tensors.filter { !$0.name.hasPrefix("model.layers.61.") }.reduce(0) { $0 + $1.elementCount }
        XCTAssertEqual(main, 671_026_419_200)
        XCTAssertEqual(elements - main, 13_463_426_304)

        // The FP8 release's per-dtype counts, from the layout's quantize-by-default rule and
        // DeepSeek's block scales.
        let layout = ModelLayout(architecture: .deepseekV3)
        var byDType: [String: Int] = [:]
        for t in bp.tensors {
            let role = layout.role(of: t.name)!
            if role.quantizedByDefault {
                byDType["F8_E4M3", default: 0] += t.elementCount
                byDType["F32", default: 0] += ((t.shape[0] + 127) / 128) * ((t.shape[1] + 127) / 128)
            } else {
                byDType[t.dtype.rawValue, default: 0] += t.elementCount
            }
        }
        XCTAssertEqual(byDType, ["BF16": 3_918_786_560, "F8_E4M3": 680_571_043_840, "F32": 41_555_600])
        XCTAssertEqual(byDType.values.reduce(0, +), 684_531_386_000)
        XCTAssertEqual(bp.totalBytes, 2 * 684_489_845_504 - 2 * 59 * 256 + 4 * 59 * 256, "BF16 everywhere but the F32 router bias")
    }

    /// Qwen2-7B (R1-Distill-Qwen-7B): 28 layers of hidden 3584, intermediate 18944, 28 heads /
    /// 4 KV heads of 128, q/k/v biases, vocab 152064:
    /// per layer q 3584² + k, v 512·3584 each + o 3584² + biases 4608 + MLP 3·18944·3584 + norms 7168
    /// = 233,057,792; ×28 + embed and lm_head 2·152064·3584 + norm 3584 = 7,615,616,512.
    /// Llama-3.1-8B: per layer 2·4096² + 2·1024·4096 + 3·14336·4096 + 8192 = 218,112,000; ×32 +
    /// 2·128256·4096 + 4096 = 8,030,261,248.
    func testDenseParameterCounts() {
        XCTAssertEqual(ModelBlueprint(kind: .qwen2, scale: 1).tensors.reduce(0) { $0 + $1.elementCount }, 7_615_616_512)
        XCTAssertEqual(ModelBlueprint(kind: .llama, scale: 1).tensors.reduce(0) { $0 + $1.elementCount }, 8_030_261_248)
        let q = Dictionary(uniqueKeysWithValues: ModelBlueprint(kind: .qwen2, scale: 1).tensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(q["model.layers.27.self_attn.k_proj.weight"], [512, 3584])
        XCTAssertEqual(q["model.layers.27.self_attn.k_proj.bias"], [512])
        let l = Dictionary(uniqueKeysWithValues: ModelBlueprint(kind: .llama, scale: 1).tensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(l["model.layers.31.mlp.down_proj.weight"], [4096, 14336])
        XCTAssertNil(l["model.layers.0.self_attn.q_proj.bias"])
    }

    /// Scale 1/256 divides widths (hidden 28, MoE intermediate 8, q/kv LoRA 6/2, vocab 505) and
    /// keeps heads and head dims.
    func testScaledShapes() {
        let shapes = Dictionary(uniqueKeysWithValues: ModelBlueprint(kind: .deepseekV3, scale: 256).tensors.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["model.layers.5.self_attn.q_a_proj.weight"], [6, 28])
        XCTAssertEqual(shapes["model.layers.5.self_attn.q_b_proj.weight"], [24576, 6])
        XCTAssertEqual(shapes["model.layers.5.self_attn.kv_a_proj_with_mqa.weight"], [66, 28])
        XCTAssertEqual(shapes["model.layers.5.self_attn.kv_b_proj.weight"], [32768, 2])
        XCTAssertEqual(shapes["model.layers.5.self_attn.o_proj.weight"], [28, 16384])
        XCTAssertEqual(shapes["model.layers.5.mlp.experts.3.down_proj.weight"], [28, 8])
        XCTAssertEqual(shapes["model.layers.1.mlp.up_proj.weight"], [72, 28])
        XCTAssertEqual(shapes["model.layers.61.eh_proj.weight"], [28, 56])
        XCTAssertEqual(shapes["lm_head.weight"], [505, 28])
    }

    /// inspect's parameter count: stored values, scales excluded (docs/reference.md: 6,224,224 for the
    /// deepseek sample, 32 of them router-bias buffers).
    func testInspectParameterCount() throws {
        let ckpt = try Checkpoint(path: CK.deepseek)
        let s = CheckpointSummary(ckpt)
        XCTAssertEqual(s.parameterCount, 6_224_224)
        XCTAssertEqual(ckpt.indexMetadata.first { $0.0 == "total_parameters" }?.1.intValue, 6_224_224 - 32)
        XCTAssertEqual(s.tensorCount, 139)
        XCTAssertEqual(s.shardCount, 5)
        XCTAssertEqual(s.totalTensorBytes, 12_448_512, "the index's total_size")
        XCTAssertEqual(s.totalTensorBytes, 2 * (6_224_224 - 32) + 4 * 32)
        XCTAssertEqual(s.bytesByDType.first { $0.0 == .f32 }?.tensors, 2)
        // Dense samples: 1.42 M parameters each (README), qwen2 with 2·(128 + 64 + 64) bias values more.
        let l = CheckpointSummary(try Checkpoint(path: CK.llama)).parameterCount
        let q = CheckpointSummary(try Checkpoint(path: CK.qwen2)).parameterCount
        XCTAssertEqual(q - l, 2 * 256)
        let expectedLlama = 2 * 4096 * 128 + 128 + 2 * (2 * 128 * 128 + 2 * 64 * 128 + 3 * 352 * 128 + 2 * 128)
        XCTAssertEqual(l, expectedLlama)
    }
}
