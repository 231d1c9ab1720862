import Foundation
import XCTest
import Checkpoint
import Conversion
import JSON
import Numerics
import Quantization
import SafeTensors

/// `quantize --fp8` of the deepseek sample: the directory, the config, the index, every tensor.
final class QuantizeOutputTests: XCTestCase {
    func testFP8OfDeepSeekSampleIsCompleteAndCorrect() throws {
        let tmp = try CVTempDir()
        let out = tmp.sub("fp8")
        let report = try CV.quantize(CV.deepseek, out)
        XCTAssertTrue(report.finalized)
        XCTAssertEqual(report.converted, CV.deepseekShards)
        XCTAssertEqual(report.skipped, [])

        // Same shard names as the input; the other files copied; of .dsconvert only the lock and
        // the manifest of what was written are left.
        XCTAssertEqual(try CV.files(out + "/.dsconvert"), ["lock", "manifest.json"])
        XCTAssertEqual(try CV.json(out + "/.dsconvert/manifest.json")["files"], .array(try CV.modelFiles(out).map { .string($0) }))
        XCTAssertEqual(try CV.modelFiles(out), ["config.json", "generation_config.json"] + CV.deepseekShards
            + ["model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"])
        XCTAssertEqual(Set(report.copiedFiles), ["generation_config.json", "tokenizer.json", "tokenizer_config.json"])
        for name in report.copiedFiles {
            XCTAssertEqual(try CV.bytes(out + "/" + name), try CV.bytes(CV.deepseek + "/" + name), name)
        }

        // config.json: the input's, plus exactly DeepSeek's quantization_config (docs/reference.md).
        let inConfig = try CV.json(CV.deepseek + "/config.json")
        let outConfig = try CV.json(out + "/config.json")
        XCTAssertEqual(outConfig.removing("quantization_config"), inConfig)
        let expectedQC = try JSONParser.parse(#"{"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}"#)
        XCTAssertEqual(CV.canonical(try XCTUnwrap(outConfig["quantization_config"])), CV.canonical(expectedQC))
        XCTAssertEqual(outConfig["quantization_config"]?["weight_block_size"]?.arrayValue?.compactMap(\.intValue), [128, 128])

        // Every shard: __metadata__ {"format": "pt"}.
        for s in CV.deepseekShards {
            let h = try SafeTensorsHeader.read(path: out + "/" + s)
            XCTAssertEqual(h.metadata?.map { "\($0.0)=\($0.1)" }, ["format=pt"], s)
        }

        // The index: every tensor, in the file that holds it; total_size = sum of tensor bytes;
        // the input's other metadata kept.
        let input = try CV.tensors(CV.deepseek)
        let output = try CV.tensors(out)
        let index = try SafeTensorsIndex.read(path: out + "/model.safetensors.index.json")
        XCTAssertEqual(index.weightMap.count, output.count)
        for (name, file) in index.weightMap { XCTAssertEqual(output[name]?.file, file, name) }
        let totalSize = try CV.json(out + "/model.safetensors.index.json")["metadata"]?["total_size"]?.intValue
        XCTAssertEqual(totalSize, output.values.reduce(0) { $0 + $1.bytes.count })
        XCTAssertEqual(index.metadata.first { $0.0 == "total_parameters" }?.1.intValue, 6_224_192)

        // Tensors: 120 quantized (each with a scale), 19 kept byte for byte.
        let ckpt = try Checkpoint(path: CV.deepseek)
        var quantized = 0
        for (name, t) in input {
            let role = try XCTUnwrap(ckpt.roles[name])
            let o = try XCTUnwrap(output[name], name)
            if !role.quantizedByDefault {
                XCTAssertEqual(o.dtype, t.dtype, name)
                XCTAssertEqual(o.shape, t.shape, name)
                XCTAssertTrue(o.bytes == t.bytes, "\(name) changed")
                XCTAssertNil(output[role.module + ".weight_scale_inv"], name)
                continue
            }
            quantized += 1
            XCTAssertEqual(o.dtype, .f8e4m3, name)
            XCTAssertEqual(o.shape, t.shape, name)
            let s = try XCTUnwrap(output[role.module + ".weight_scale_inv"], name)
            XCTAssertEqual(s.dtype, .f32)
            let rows = t.shape[0], cols = t.shape[1]
            XCTAssertEqual(s.shape, [(rows + 127) / 128, (cols + 127) / 128], name)
            XCTAssertEqual(s.file, o.file, "a scale sits beside its weight")
            // The values, against the plain-Swift reference.
            let ref = referenceBlockFP8(t.floats, rows: rows, cols: cols)
            XCTAssertTrue(o.bytes == ref.q, "\(name): FP8 values differ from the reference")
            XCTAssertTrue(s.bytes == ref.scales.f32Bytes, "\(name): scales differ from the reference")
        }
        XCTAssertEqual(quantized, 120)
        XCTAssertEqual(output.count, 139 + 120)
        // Partial edge blocks (samples README): kv_a_proj_with_mqa [80, 256], q_b_proj [192, 128], kv_b_proj [256, 64].
        XCTAssertEqual(output["model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"]?.shape, [1, 2])
        XCTAssertEqual(output["model.layers.0.self_attn.q_b_proj.weight_scale_inv"]?.shape, [2, 1])
        XCTAssertEqual(output["model.layers.0.self_attn.kv_b_proj.weight_scale_inv"]?.shape, [2, 1])

        // inspect of the result: the same 6,224,224 parameters (scales excluded), state fp8 block.
        let q = try Checkpoint(path: out)
        XCTAssertEqual(CheckpointSummary(q).parameterCount, 6_224_224)
        XCTAssertNoThrow(try q.requireClassified())
        let state = QuantizationState.of(q)
        XCTAssertEqual(state.method, "fp8")
        XCTAssertEqual(state.quantizedWeights, 120)
        XCTAssertEqual(state.groups.map(\.granularity), ["block 128x128"])
    }

    /// The compressed-tensors layouts carry the scale in the model dtype with [out, 1] / [1].
    func testCompressedTensorsLayoutShapesAndConfig() throws {
        let tmp = try CVTempDir()
        for (granularity, format) in [(QuantizationScheme.Granularity.channel, QuantizationScheme.Format.fp8), (.tensor, .fp8), (.channel, .int8)] {
            let out = tmp.sub("\(format)-\(granularity)")
            try CV.quantize(CV.qwen2, out, CV.scheme(format, granularity))
            XCTAssertEqual(try CV.modelFiles(out), ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
                           "a single model.safetensors stays a single file, without an index")
            let t = try CV.tensors(out)
            let w = try XCTUnwrap(t["model.layers.1.mlp.down_proj.weight"])
            XCTAssertEqual(w.dtype, format == .fp8 ? .f8e4m3 : .i8)
            let s = try XCTUnwrap(t["model.layers.1.mlp.down_proj.weight_scale"])
            XCTAssertEqual(s.dtype, .bf16)
            XCTAssertEqual(s.shape, granularity == .channel ? [128, 1] : [1])
            XCTAssertNil(t["model.layers.1.mlp.down_proj.weight_scale_inv"])
            XCTAssertEqual(t["model.layers.1.self_attn.q_proj.bias"]?.dtype, .bf16, "biases are kept")
            let qc = try XCTUnwrap(try CV.json(out + "/config.json")["quantization_config"])
            XCTAssertEqual(qc["quant_method"]?.stringValue, "compressed-tensors")
            XCTAssertEqual(qc["format"]?.stringValue, format == .fp8 ? "float-quantized" : "int-quantized")
            XCTAssertEqual(qc["quantization_status"]?.stringValue, "compressed")
            XCTAssertEqual(qc["ignore"]?.arrayValue?.compactMap(\.stringValue), ["lm_head"])
            let g = try XCTUnwrap(qc["config_groups"]?.objectMembers?.first?.1)
            XCTAssertEqual(g["weights"]?["strategy"]?.stringValue, granularity.rawValue)
            XCTAssertEqual(g["weights"]?["type"]?.stringValue, format == .fp8 ? "float" : "int")
            XCTAssertEqual(g["input_activations"]?["strategy"]?.stringValue, "token")
            XCTAssertEqual(g["input_activations"]?["dynamic"]?.boolValue, true)
        }
    }
}
