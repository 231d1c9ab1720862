import Foundation
import XCTest
import Checkpoint
import JSON
import SafeTensors

final class ModelConfigTests: XCTestCase {
    /// llama-tiny: the released Llama-3.1 style (top-level rope_theta + rope_scaling, torch_dtype).
    func testLlamaStyleConfig() throws {
        let c = try ModelConfig.read(directory: CK.llama)
        XCTAssertEqual(try Architecture.detect(c), .llama)
        XCTAssertNotNil(c.json["rope_theta"])
        XCTAssertEqual(c.ropeTheta, 500_000)
        XCTAssertEqual(c.ropeScalingType, "llama3")
        XCTAssertEqual(c.ropeScaling?["factor"]?.doubleValue, 8)
        XCTAssertEqual(c.ropeScaling?["low_freq_factor"]?.doubleValue, 1)
        XCTAssertEqual(c.ropeScaling?["high_freq_factor"]?.doubleValue, 4)
        XCTAssertEqual(c.ropeScaling?["original_max_position_embeddings"]?.intValue, 256)
        XCTAssertEqual(c.dtype, .bf16)
        XCTAssertEqual(c.hiddenSize, 128)
        XCTAssertEqual(c.layerCount, 2)
        XCTAssertEqual(c.headCount, 4)
        XCTAssertEqual(c.kvHeadCount, 2)
        XCTAssertEqual(c.intermediateSize, 352)
        XCTAssertEqual(c.vocabSize, 4096)
        XCTAssertEqual(c.mtpLayers, 0)
        XCTAssertNil(c.quantizationConfig)
    }

    /// qwen2-tiny: transformers 5 style (`rope_parameters`, `dtype`), no top-level rope_theta.
    func testTransformers5StyleConfig() throws {
        let c = try ModelConfig.read(directory: CK.qwen2)
        XCTAssertEqual(try Architecture.detect(c), .qwen2)
        XCTAssertNil(c.json["rope_theta"])
        XCTAssertNil(c.json["torch_dtype"])
        XCTAssertEqual(c.ropeTheta, 10_000)
        // rope_type "default" means no scaling (the accessor may report it or leave it out).
        XCTAssertTrue(c.ropeScalingType == nil || c.ropeScalingType == "default", "\(String(describing: c.ropeScalingType))")
        XCTAssertEqual(c.dtype, .bf16, "from `dtype`")
        XCTAssertEqual(c.kvHeadCount, 2)

        // The same llama3 scaling written the transformers 5 way reads like the 3.1 style.
        let t5 = try JSONParser.parse(#"{"model_type": "llama", "dtype": "float16", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#)
        let c5 = ModelConfig(json: t5, path: "t5/config.json")
        XCTAssertEqual(c5.ropeTheta, 500_000)
        XCTAssertEqual(c5.ropeScalingType, "llama3")
        XCTAssertEqual(c5.ropeScaling?["factor"]?.doubleValue, 8)
        XCTAssertEqual(c5.dtype, .f16)
    }

    func testDeepSeekSampleConfig() throws {
        let c = try ModelConfig.read(directory: CK.deepseek)
        XCTAssertEqual(try Architecture.detect(c), .deepseekV3)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.ropeScalingType, "yarn")
        XCTAssertEqual(c.ropeScaling?["factor"]?.doubleValue, 4)
        XCTAssertEqual(c.routedExperts, 16)
        XCTAssertEqual(c.expertsPerToken, 4)
        XCTAssertEqual(c.firstDenseLayers, 1)
        XCTAssertEqual(c.moeIntermediateSize, 128)
        XCTAssertEqual(c.mtpLayers, 0)
        XCTAssertEqual(c.dtype, .bf16)
    }

    /// The blueprint's config is the released DeepSeek-V3 config.json (docs/reference.md).
    func testDeepSeekBlueprintConfig() throws {
        let c = ModelConfig(json: ModelBlueprint(kind: .deepseekV3, scale: 1).config, path: "bp")
        XCTAssertEqual(try Architecture.detect(c), .deepseekV3)
        XCTAssertEqual(c.hiddenSize, 7168)
        XCTAssertEqual(c.layerCount, 61)
        XCTAssertEqual(c.vocabSize, 129_280)
        XCTAssertEqual(c.headCount, 128)
        XCTAssertEqual(c.intermediateSize, 18_432)
        XCTAssertEqual(c.moeIntermediateSize, 2048)
        XCTAssertEqual(c.routedExperts, 256)
        XCTAssertEqual(c.expertsPerToken, 8)
        XCTAssertEqual(c.firstDenseLayers, 3)
        XCTAssertEqual(c.mtpLayers, 1)
        XCTAssertEqual(c.int("q_lora_rank"), 1536)
        XCTAssertEqual(c.int("kv_lora_rank"), 512)
        XCTAssertEqual(c.int("qk_nope_head_dim"), 128)
        XCTAssertEqual(c.int("qk_rope_head_dim"), 64)
        XCTAssertEqual(c.int("v_head_dim"), 128)
        XCTAssertEqual(c.int("n_group"), 8)
        XCTAssertEqual(c.int("topk_group"), 4)
        XCTAssertEqual(c.string("topk_method"), "noaux_tc")
        XCTAssertEqual(c.string("scoring_func"), "sigmoid")
        XCTAssertEqual(c.double("routed_scaling_factor"), 2.5)
        XCTAssertEqual(c.ropeTheta, 10_000)
        XCTAssertEqual(c.ropeScalingType, "yarn")
        XCTAssertEqual(c.ropeScaling?["factor"]?.doubleValue, 40)
        XCTAssertEqual(c.ropeScaling?["original_max_position_embeddings"]?.intValue, 4096)
        XCTAssertEqual(c.ropeScaling?["beta_fast"]?.doubleValue, 32)
        XCTAssertEqual(c.ropeScaling?["beta_slow"]?.doubleValue, 1)
        XCTAssertEqual(c.ropeScaling?["mscale"]?.doubleValue, 1)
        XCTAssertEqual(c.ropeScaling?["mscale_all_dim"]?.doubleValue, 1)
        XCTAssertEqual(c.dtype, .bf16)
        // Scaled down: widths divided, counts and head dims kept.
        let s = ModelConfig(json: ModelBlueprint(kind: .deepseekV3, scale: 256).config, path: "bp")
        XCTAssertEqual(s.hiddenSize, 28)
        XCTAssertEqual(s.intermediateSize, 72)
        XCTAssertEqual(s.moeIntermediateSize, 8)
        XCTAssertEqual(s.vocabSize, 505)
        XCTAssertEqual(s.int("q_lora_rank"), 6)
        XCTAssertEqual(s.int("kv_lora_rank"), 2)
        XCTAssertEqual(s.layerCount, 61)
        XCTAssertEqual(s.headCount, 128)
        XCTAssertEqual(s.routedExperts, 256)
        XCTAssertEqual(s.int("qk_rope_head_dim"), 64)
    }

    func testArchitectureDetection() throws {
        func config(_ text: String) throws -> ModelConfig { ModelConfig(json: try JSONParser.parse(text), path: "x/config.json") }
        XCTAssertEqual(try Architecture.detect(config(#"{"model_type": "qwen2"}"#)), .qwen2)
        XCTAssertEqual(try Architecture.detect(config(#"{"architectures": ["DeepseekV3ForCausalLM"]}"#)), .deepseekV3)
        XCTAssertEqual(try Architecture.detect(config(#"{"architectures": ["LlamaForCausalLM"]}"#)), .llama)
        for text in [#"{"model_type": "mistral", "architectures": ["MistralForCausalLM"]}"#, #"{"model_type": "deepseek_v2"}"#, "{}"] {
            XCTAssertThrowsError(try Architecture.detect(config(text)), text) { error in
                guard case let CheckpointError.unknownArchitecture(path, _, _) = error else { return XCTFail("\(error)") }
                XCTAssertEqual(path, "x/config.json")
                XCTAssertTrue("\(error)".contains("deepseek_v3, qwen2 and llama"), "\(error)")
            }
        }
        XCTAssertThrowsError(try Architecture.detect(config(#"{"model_type": "mistral"}"#))) { error in
            XCTAssertTrue("\(error)".contains("'mistral'"), "\(error)")
        }
    }

    /// A checkpoint opens with an unknown model_type (inspect still works) but refuses to be classified.
    func testCheckpointWithUnknownModelType() throws {
        let tmp = try CKTempDir()
        let dir = tmp.path + "/m"
        try CK.copyDirectory(CK.llama, to: dir)
        let c = try ModelConfig.read(directory: dir)
        try CK.writeJSON(c.json.setting("model_type", .string("mistral")).setting("architectures", .array([.string("MistralForCausalLM")])), to: dir + "/config.json")
        let ckpt = try Checkpoint(path: dir)
        XCTAssertNil(ckpt.architecture)
        XCTAssertTrue(ckpt.roles.isEmpty)
        XCTAssertThrowsError(try ckpt.requireClassified()) { error in
            guard case let CheckpointError.unknownArchitecture(_, modelType, archs) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(modelType, "mistral")
            XCTAssertEqual(archs, ["MistralForCausalLM"])
        }
    }

    func testBrokenConfigIsReported() throws {
        let tmp = try CKTempDir()
        let dir = tmp.path + "/m"
        try CK.copyDirectory(CK.llama, to: dir)
        try Data("{\"model_type\": \"llama\",".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertThrowsError(try Checkpoint(path: dir)) { error in
            guard case let CheckpointError.invalidConfig(path, msg) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, dir + "/config.json")
            XCTAssertTrue(msg.contains("invalid JSON"), msg)
        }
        try Data("[1, 2]".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertThrowsError(try Checkpoint(path: dir)) { error in
            guard case let CheckpointError.invalidConfig(path, msg) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, dir + "/config.json")
            XCTAssertEqual(msg, "not a JSON object")
        }
        // No config at all: opens, but cannot be classified.
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        let bare = try Checkpoint(path: dir)
        XCTAssertNil(bare.config)
        XCTAssertThrowsError(try bare.requireClassified()) { error in
            guard case CheckpointError.invalidConfig = error else { return XCTFail("\(error)") }
        }
    }
}
