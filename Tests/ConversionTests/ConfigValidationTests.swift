import Foundation
import TestSupport
import XCTest
import Checkpoint
import Conversion
import Diagnostics
import JSON
import Quantization
import SafeTensors

/// config.json is checked against the tensors (issue 12 item 26): every finding names the key,
/// its value and a tensor that disagrees, and quantize and dequantize refuse it.
final class ConfigValidationTests: XCTestCase {
    /// A copy of `sample` with config keys replaced (nil removes) and tensors edited.
    func synth(_ kind: ModelBlueprint.Kind, to dir: String, shards: Int) throws {
        var o = SyntheticCheckpoint.Options()
        o.seed = 1
        o.shards = shards
        try SyntheticCheckpoint.write(ModelBlueprint(kind: kind, scale: 64, layers: 2), to: dir, options: o)
    }

    func variant(_ tmp: CVTempDir, _ name: String, of sample: String, _ changes: [(String, JSONValue?)],
                 tensors: ((inout Edit.Tensors) throws -> Void)? = nil) throws -> String {
        let dir = tmp.sub(name)
        if let tensors { try Edit.copy(sample, to: dir, tensors) } else { try CV.copyDirectory(sample, to: dir) }
        for (k, v) in changes { try Edit.setConfig(dir, k, v) }
        return dir
    }

    func assertRefused(_ dir: String, key: String, value: String, tensor: String?, mentions: String,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let tmp = try CVTempDir()
        XCTAssertThrowsError(try CV.quantize(dir, tmp.sub("out")), file: file, line: line) { error in
            guard case let CheckpointError.configMismatch(path, k, v, t, why) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(path, dir + "/config.json", file: file, line: line)
            XCTAssertEqual(k, key, file: file, line: line)
            XCTAssertEqual(v, value, file: file, line: line)
            if let tensor { XCTAssertEqual(t, tensor, "\(error)", file: file, line: line) } else { XCTAssertNil(t, "\(error)", file: file, line: line) }
            XCTAssertTrue(why.contains(mentions), "'\(mentions)' not in: \(why)", file: file, line: line)
            let e = error as! CheckpointError
            XCTAssertEqual(e.code, "checkpoint.config_mismatch", file: file, line: line)
            XCTAssertTrue(e.description.contains("\(key) = \(value)"), e.description, file: file, line: line)
        }
        if CV.exists(tmp.sub("out")) {
            XCTAssertEqual(try CV.files(tmp.sub("out")).filter { $0.hasSuffix(".safetensors") }, [], file: file, line: line)
        }
        XCTAssertFalse(try Checkpoint(path: dir).configProblems().isEmpty, "inspect reports it", file: file, line: line)
    }

    func testSamplesAndSyntheticCheckpointsAreConsistent() throws {
        for s in [CV.deepseek, CV.qwen2, CV.llama] {
            XCTAssertEqual(try Checkpoint(path: s).configProblems().map(\.description), [], s)
        }
        let tmp = try CVTempDir()
        for kind in ModelBlueprint.Kind.allCases {
            let dir = tmp.sub(kind.rawValue)
            try synth(kind, to: dir, shards: 2)
            XCTAssertEqual(try Checkpoint(path: dir).configProblems().map(\.description), [], kind.rawValue)
        }
    }

    func testWidthsAndSizes() throws {
        let tmp = try CVTempDir()
        let hidden = try CV.json(CV.llama + "/config.json")["hidden_size"]!.intValue!
        try assertRefused(try variant(tmp, "h256", of: CV.llama, [("hidden_size", .int(256))]),
                          key: "hidden_size", value: "256", tensor: "lm_head.weight", mentions: "columns, not 256")
        // A norm narrower than hidden_size (the first finding in storage order names it).
        try assertRefused(try variant(tmp, "h-norm", of: CV.llama, [], tensors: { t in
            t[Edit.index(t, "model.layers.1.input_layernorm.weight")] = (TensorSpec(name: "model.layers.1.input_layernorm.weight", dtype: .bf16, shape: [hidden / 2]), Edit.bf16([Float](repeating: 1, count: hidden / 2)))
        }), key: "hidden_size", value: "\(hidden)", tensor: "model.layers.1.input_layernorm.weight", mentions: "not [\(hidden)]")
        try assertRefused(try variant(tmp, "frac", of: CV.llama, [("hidden_size", .number("128.5"))]),
                          key: "hidden_size", value: "128.5", tensor: nil, mentions: "must be an integer")
        try assertRefused(try variant(tmp, "neg", of: CV.llama, [("intermediate_size", .int(-352))]),
                          key: "intermediate_size", value: "-352", tensor: nil, mentions: "positive")
        try assertRefused(try variant(tmp, "str", of: CV.llama, [("num_attention_heads", .string("4"))]),
                          key: "num_attention_heads", value: "\"4\"", tensor: nil, mentions: "integer")
        try assertRefused(try variant(tmp, "inter", of: CV.llama, [("intermediate_size", .int(353))]),
                          key: "intermediate_size", value: "353", tensor: "model.layers.0.mlp.down_proj.weight", mentions: "not 353 wide")
        try assertRefused(try variant(tmp, "vocab", of: CV.llama, [("vocab_size", .int(4097))]),
                          key: "vocab_size", value: "4097", tensor: "lm_head.weight", mentions: "rows, not 4097")
        try assertRefused(try variant(tmp, "int8", of: CV.llama, [("torch_dtype", .string("int8"))]),
                          key: "torch_dtype", value: "\"int8\"", tensor: nil, mentions: "not a model dtype")
        // Attention projections against the head counts and dims.
        try assertRefused(try variant(tmp, "kv-heads", of: CV.llama, [("num_key_value_heads", .int(4))]),
                          key: "num_key_value_heads", value: "4", tensor: "model.layers.0.self_attn.k_proj.weight", mentions: "not num_key_value_heads × head_dim = 128")
        try assertRefused(try variant(tmp, "v-head", of: CV.deepseek, [("v_head_dim", .int(64))]),
                          key: "num_attention_heads", value: "4", tensor: "model.layers.0.self_attn.kv_b_proj.weight", mentions: "(qk_nope_head_dim + v_head_dim)")
        // DeepSeek's q_a_layernorm / kv_a_layernorm have the LoRA ranks' widths, not hidden_size.
        let qLora = try CV.json(CV.deepseek + "/config.json")["q_lora_rank"]!.intValue!
        try assertRefused(try variant(tmp, "qlora", of: CV.deepseek, [("q_lora_rank", .int(qLora + 1))]),
                          key: "q_lora_rank", value: "\(qLora + 1)", tensor: "model.layers.0.self_attn.q_a_layernorm.weight", mentions: "not [\(qLora + 1)]")
    }

    func testLayerAndExpertCounts() throws {
        let tmp = try CVTempDir()
        let layers = try CV.json(CV.llama + "/config.json")["num_hidden_layers"]!.intValue!
        try assertRefused(try variant(tmp, "more", of: CV.llama, [("num_hidden_layers", .int(layers + 1))]),
                          key: "num_hidden_layers", value: "\(layers + 1)", tensor: nil, mentions: "no layer \(layers)")
        try assertRefused(try variant(tmp, "fewer", of: CV.llama, [("num_hidden_layers", .int(layers - 1))]),
                          key: "num_hidden_layers", value: "\(layers - 1)", tensor: "model.layers.\(layers - 1).input_layernorm.weight", mentions: "decoder layer \(layers - 1)")
        let experts = try CV.json(CV.deepseek + "/config.json")["n_routed_experts"]!.intValue!
        try assertRefused(try variant(tmp, "experts", of: CV.deepseek, [("n_routed_experts", .int(experts - 1))]),
                          key: "n_routed_experts", value: "\(experts - 1)", tensor: "model.layers.1.mlp.gate.e_score_correction_bias", mentions: "not [\(experts - 1)]")
        // The per-layer expert count is reported as well.
        let lessExperts = try Checkpoint(path: try variant(tmp, "experts-2", of: CV.deepseek, [("n_routed_experts", .int(experts - 1))])).configProblems()
        XCTAssertTrue(lessExperts.contains { $0.message.contains("stores \(experts) experts") && $0.tensor == "model.layers.1.mlp.experts.\(experts - 1).down_proj.weight" }, "\(lessExperts)")

        // DeepSeek's MTP layer sits at index num_hidden_layers: a synthetic checkpoint has one.
        let ds = tmp.sub("ds")
        try synth(.deepseekV3, to: ds, shards: 1)
        XCTAssertEqual(try Checkpoint(path: ds).configProblems().map(\.description), [])
        try Edit.setConfig(ds, "num_nextn_predict_layers", .int(0))
        let p = try Checkpoint(path: ds).configProblems()
        XCTAssertEqual(p.first?.tensor.map { $0.hasPrefix("model.layers.2.") }, true, "\(p)")
        XCTAssertTrue(p.first?.message.contains("multi-token-prediction layer is stored at index 2") == true, "\(p)")
        try Edit.setConfig(ds, "num_nextn_predict_layers", .int(1))
        try Edit.setConfig(ds, "num_hidden_layers", .int(3))
        XCTAssertTrue(try Checkpoint(path: ds).configProblems().first?.message.contains("no layer 2") == true)
    }

    func testModelTypeAgainstNames() throws {
        let tmp = try CVTempDir()
        try assertRefused(try variant(tmp, "qwen-over-llama", of: CV.llama, [("model_type", .string("qwen2")), ("architectures", .array([.string("Qwen2ForCausalLM")]))]),
                          key: "model_type", value: "\"qwen2\"", tensor: "model.layers.0.self_attn.q_proj.weight", mentions: "q/k/v biases")
        try assertRefused(try variant(tmp, "llama-over-qwen", of: CV.qwen2, [("model_type", .string("llama")), ("architectures", .array([.string("LlamaForCausalLM")]))]),
                          key: "model_type", value: "\"llama\"", tensor: "model.layers.0.self_attn.k_proj.bias", mentions: "no biases")
        // Llama with attention_bias true may have biases.
        let biased = try variant(tmp, "llama-bias", of: CV.qwen2, [("model_type", .string("llama")), ("attention_bias", .bool(true))])
        XCTAssertEqual(try Checkpoint(path: biased).configProblems().map(\.description), [])
    }

    func testTiedEmbeddings() throws {
        let tmp = try CVTempDir()
        let noHead: (inout Edit.Tensors) throws -> Void = { t in t.remove(at: Edit.index(t, "lm_head.weight")) }
        try assertRefused(try variant(tmp, "untied", of: CV.llama, [("tie_word_embeddings", .bool(false))], tensors: noHead),
                          key: "tie_word_embeddings", value: "false", tensor: nil, mentions: "no lm_head.weight")
        try assertRefused(try variant(tmp, "absent", of: CV.llama, [("tie_word_embeddings", nil)], tensors: noHead),
                          key: "tie_word_embeddings", value: "(absent)", tensor: nil, mentions: "default is false")
        let tied = try variant(tmp, "tied", of: CV.llama, [("tie_word_embeddings", .bool(true))], tensors: noHead)
        XCTAssertTrue(try CV.quantize(tied, tmp.sub("tied-out")).finalized)
    }

    /// dequantize refuses a contradicting config as quantize does.
    func testDequantizeRefusesToo() throws {
        let tmp = try CVTempDir()
        let fp8 = tmp.sub("fp8")
        try CV.quantize(CV.llama, fp8)
        try Edit.setConfig(fp8, "hidden_size", .int(64))
        XCTAssertThrowsError(try CV.dequantize(fp8, tmp.sub("bf16"))) { error in
            guard case let CheckpointError.configMismatch(_, key, value, tensor, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "hidden_size")
            XCTAssertEqual(value, "64")
            XCTAssertNotNil(tensor)
        }
    }
}
