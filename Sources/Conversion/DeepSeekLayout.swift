import Checkpoint
import Foundation
import JSON
import Sharding

/// The file layout of DeepSeek-V3's own model-parallel conversion (`inference/convert.py` at
/// deepseek-ai/DeepSeek-V3 9b4e978, read for these rules; its `generate.py` loads rank i's file
/// on GPU i): one file per rank, `model{i}-mp{T}.safetensors`, with its tensor names; the MTP
/// layer dropped; column-parallel tensors (embed, wq, wq_b, wkv_b, w1, w3, head) split on dim 0,
/// row-parallel ones (wo, w2) on dim 1, every other tensor whole on every rank; routed experts
/// whole, experts `[i·E/T, (i+1)·E/T)` on rank i (so EP = TP, PP = 1); and the tokenizer files.
/// Those splits are `ShardRules`' for these names. `generate.py --config` takes a `ModelArgs`
/// JSON, written as `model_args.json` from the model's config.json (its defaults — softmax
/// scoring, rope factor 40 over 4096 — are the 671B model's and wrong for others).
public enum DeepSeekLayout {
    public static let modelArgsFileName = "model_args.json"

    public static func fileName(rank: Int, of n: Int) -> String { "model\(rank)-mp\(n).safetensors" }

    /// convert.py's module renames, keyed by the second-to-last name component.
    static let mapping: [String: String] = [
        "embed_tokens": "embed", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "q_proj": "wq", "q_a_proj": "wq_a", "q_a_layernorm": "q_norm", "q_b_proj": "wq_b",
        "kv_a_proj_with_mqa": "wkv_a", "kv_a_layernorm": "kv_norm", "kv_b_proj": "wkv_b", "o_proj": "wo",
        "gate": "gate", "gate_proj": "w1", "down_proj": "w2", "up_proj": "w3", "norm": "norm", "lm_head": "head",
        "scale": "scale",
    ]

    /// The component renames convert.py applies before the module rename.
    static func renamedComponents(_ name: String) -> String {
        var n = name.hasPrefix("model.") ? String(name.dropFirst("model.".count)) : name
        for (from, to) in [("self_attn", "attn"), ("mlp", "ffn"), ("weight_scale_inv", "scale"), ("e_score_correction_bias", "bias")] {
            n = n.replacingOccurrences(of: from, with: to)
        }
        return n
    }

    static func key(_ renamed: String) -> String? {
        let parts = renamed.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count >= 2 ? String(parts[parts.count - 2]) : nil
    }

    /// The tensor's name in DeepSeek's layout (`model.layers.0.self_attn.q_b_proj.weight_scale_inv`
    /// → `layers.0.attn.wq_b.scale`). The module rename replaces every occurrence of the key in
    /// the name, as convert.py's `str.replace` does.
    public static func name(_ hf: String) -> String {
        let n = renamedComponents(hf)
        guard let k = key(n), let new = mapping[k] else { return n }
        return n.replacingOccurrences(of: k, with: new)
    }

    /// Refuses what convert.py's layout cannot express: another architecture, PP > 1, EP ≠ TP,
    /// round-robin experts, a kept MTP layer, or a tensor whose module it has no name for.
    static func check(_ ckpt: Checkpoint, _ o: ShardOptions) throws {
        let p = o.parallel
        guard ckpt.architecture == .deepseekV3 else {
            throw ShardError(code: "shard.layout_unsupported", "--layout deepseek is DeepSeek-V3's own layout (model_type deepseek_v3); this model is \(ckpt.config?.modelType ?? "unknown")")
        }
        guard p.pp == 1 else { throw ShardError(code: "shard.layout_unsupported", "--layout deepseek has no pipeline stages: use --pp 1 (got --pp \(p.pp))") }
        guard p.ep == p.tp || (p.tp == 1 && p.ep == 1) else {
            throw ShardError(code: "shard.layout_unsupported", "--layout deepseek places whole experts on every rank (EP = TP): use --ep \(p.tp) (got --ep \(p.ep))")
        }
        guard o.placement == .contiguous else { throw ShardError(code: "shard.layout_unsupported", "--layout deepseek places experts contiguously, not round-robin") }
        guard !o.keepMTP else { throw ShardError(code: "shard.layout_unsupported", "--layout deepseek drops the MTP layer (DeepSeek's inference code does not load it); leave out --keep-mtp") }
        let layers = ckpt.config?.layerCount ?? 0
        for t in ckpt.weights.tensorNames {
            if let l = ckpt.roles[t]?.layer, l >= layers { continue }
            guard let k = key(renamedComponents(t)), mapping[k] != nil else {
                throw ShardError(code: "shard.layout_unsupported", tensor: t, "--layout deepseek has no name for this tensor's module (DeepSeek's convert.py maps \(mapping.keys.sorted().joined(separator: ", ")))")
            }
        }
    }

    /// The `ModelArgs` JSON (inference/model.py) of the model, from its config.json.
    static func modelArgs(_ ckpt: Checkpoint, quantized: Bool) throws -> JSONValue {
        let c = ckpt.config!
        func int(_ key: String) throws -> JSONValue {
            guard let v = c.int(key) else { throw ShardError(.input, code: "shard.config_missing", "config.json has no integer \(key), which DeepSeek's ModelArgs needs") }
            return .int(v)
        }
        var members: [(String, JSONValue)] = [
            ("vocab_size", try int("vocab_size")), ("dim", try int("hidden_size")), ("inter_dim", try int("intermediate_size")),
            ("moe_inter_dim", try int("moe_intermediate_size")), ("n_layers", try int("num_hidden_layers")),
            ("n_dense_layers", try int("first_k_dense_replace")), ("n_heads", try int("num_attention_heads")),
            ("n_routed_experts", try int("n_routed_experts")), ("n_shared_experts", try int("n_shared_experts")),
            ("n_activated_experts", try int("num_experts_per_tok")),
            ("n_expert_groups", .int(c.int("n_group") ?? 1)), ("n_limited_groups", .int(c.int("topk_group") ?? 1)),
            // Hugging Face's DeepseekV3 routes with sigmoid scores (its config has no other choice
            // unless scoring_func says so); ModelArgs' default is softmax.
            ("score_func", .string(c.string("scoring_func") ?? "sigmoid")),
            ("route_scale", .double(c.double("routed_scaling_factor") ?? 1)),
            ("q_lora_rank", .int(c.int("q_lora_rank") ?? 0)), ("kv_lora_rank", try int("kv_lora_rank")),
            ("qk_nope_head_dim", try int("qk_nope_head_dim")), ("qk_rope_head_dim", try int("qk_rope_head_dim")),
            ("v_head_dim", try int("v_head_dim")),
            ("rope_theta", .double(c.ropeTheta ?? 10000)),
            ("dtype", .string(quantized ? "fp8" : "bf16")),
        ]
        if let rs = c.ropeScaling, (rs["type"]?.stringValue ?? rs["rope_type"]?.stringValue) == "yarn" {
            members += [
                ("original_seq_len", .int(rs["original_max_position_embeddings"]?.intValue ?? 4096)),
                ("rope_factor", .double(rs["factor"]?.doubleValue ?? 1)),
                ("beta_fast", .int(rs["beta_fast"]?.intValue ?? 32)), ("beta_slow", .int(rs["beta_slow"]?.intValue ?? 1)),
                ("mscale", .double(rs["mscale"]?.doubleValue ?? 1)),
            ]
        } else {
            // No YaRN: model.py applies it only past original_seq_len, so that is the whole context.
            members += [("original_seq_len", .int(c.int("max_position_embeddings") ?? 4096)), ("rope_factor", .double(1))]
        }
        return .object(members)
    }
}
