import JSON
import SafeTensors

/// The full tensor list and config.json of a real architecture, with widths divided by a
/// scale, so synthetic checkpoints have every tensor name of the real model.
///
/// `scale` K divides hidden, intermediate and MoE intermediate sizes, the q/kv LoRA ranks and the
/// vocabulary (integer division, at least 1); counts (layers, heads, experts, the MTP layer) and
/// head dims are kept. `align` N then rounds each of those scaled widths up to a multiple of N,
/// so a scale that does not divide the real widths evenly still gives widths a tensor-parallel
/// split accepts (1/10 with N 8: hidden 720, intermediate 1848, MoE intermediate 208, q/kv LoRA
/// 160/56, vocab 12928, all divisible by TP 8); N 1 (the default) leaves them as divided.
public struct ModelBlueprint: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case deepseekV3 = "deepseek-v3"
        case qwen2 = "qwen2"
        case llama = "llama"
    }

    public var kind: Kind
    public var config: JSONValue
    /// Tensors in the order they are written.
    public var tensors: [TensorSpec]
    /// The shard count the real release uses (for file naming), if it has one.
    public var releaseShardCount: Int?

    /// - Parameter layers: overrides the layer count (tests and memory benchmarks use it to make
    ///   checkpoints of different sizes with identical tensor shapes); nil keeps the real count.
    ///   `align`: the multiple every scaled width is rounded up to (1: none).
    public init(kind: Kind, scale: Int, layers layerOverride: Int? = nil, align: Int = 1) {
        self.kind = kind
        let k = max(1, scale), a = max(1, align)
        func d(_ n: Int) -> Int { (max(1, n / k) + a - 1) / a * a }
        var t: [TensorSpec] = []
        func add(_ name: String, _ shape: [Int], _ dtype: DType = .bf16) { t.append(TensorSpec(name: name, dtype: dtype, shape: shape)) }
        switch kind {
        case .deepseekV3:
            let hidden = d(7168), inter = d(18432), moe = d(2048), vocab = d(129280), qLora = d(1536), kvLora = d(512)
            let heads = 128, nope = 128, rope = 64, vHead = 128, experts = 256, layers = layerOverride ?? 61, dense = min(3, layers)
            add("model.embed_tokens.weight", [vocab, hidden])
            func block(_ p: String, moeLayer: Bool) {
                add(p + "input_layernorm.weight", [hidden])
                add(p + "self_attn.q_a_proj.weight", [qLora, hidden])
                add(p + "self_attn.q_a_layernorm.weight", [qLora])
                add(p + "self_attn.q_b_proj.weight", [heads * (nope + rope), qLora])
                add(p + "self_attn.kv_a_proj_with_mqa.weight", [kvLora + rope, hidden])
                add(p + "self_attn.kv_a_layernorm.weight", [kvLora])
                add(p + "self_attn.kv_b_proj.weight", [heads * (nope + vHead), kvLora])
                add(p + "self_attn.o_proj.weight", [hidden, heads * vHead])
                add(p + "post_attention_layernorm.weight", [hidden])
                if moeLayer {
                    add(p + "mlp.gate.weight", [experts, hidden])
                    add(p + "mlp.gate.e_score_correction_bias", [experts], .f32)
                    for e in 0..<experts {
                        add(p + "mlp.experts.\(e).gate_proj.weight", [moe, hidden])
                        add(p + "mlp.experts.\(e).up_proj.weight", [moe, hidden])
                        add(p + "mlp.experts.\(e).down_proj.weight", [hidden, moe])
                    }
                    add(p + "mlp.shared_experts.gate_proj.weight", [moe, hidden])
                    add(p + "mlp.shared_experts.up_proj.weight", [moe, hidden])
                    add(p + "mlp.shared_experts.down_proj.weight", [hidden, moe])
                } else {
                    add(p + "mlp.gate_proj.weight", [inter, hidden])
                    add(p + "mlp.up_proj.weight", [inter, hidden])
                    add(p + "mlp.down_proj.weight", [hidden, inter])
                }
            }
            for l in 0..<layers { block("model.layers.\(l).", moeLayer: l >= dense) }
            // The multi-token-prediction module, stored as layer 61.
            let m = "model.layers.\(layers)."
            add(m + "embed_tokens.weight", [vocab, hidden])
            add(m + "enorm.weight", [hidden])
            add(m + "hnorm.weight", [hidden])
            add(m + "eh_proj.weight", [hidden, 2 * hidden])
            block(m, moeLayer: true)
            add(m + "shared_head.norm.weight", [hidden])
            add(m + "shared_head.head.weight", [vocab, hidden])
            add("model.norm.weight", [hidden])
            add("lm_head.weight", [vocab, hidden])
            releaseShardCount = 163
            config = .object([
                ("architectures", .array([.string("DeepseekV3ForCausalLM")])),
                ("attention_bias", .bool(false)), ("attention_dropout", .number("0.0")),
                ("bos_token_id", .int(0)), ("eos_token_id", .int(1)), ("first_k_dense_replace", .int(dense)),
                ("hidden_act", .string("silu")), ("hidden_size", .int(hidden)), ("initializer_range", .number("0.02")),
                ("intermediate_size", .int(inter)), ("kv_lora_rank", .int(kvLora)), ("max_position_embeddings", .int(163840)),
                ("model_type", .string("deepseek_v3")), ("moe_intermediate_size", .int(moe)), ("moe_layer_freq", .int(1)),
                ("n_group", .int(8)), ("n_routed_experts", .int(experts)), ("n_shared_experts", .int(1)),
                ("norm_topk_prob", .bool(true)), ("num_attention_heads", .int(heads)), ("num_experts_per_tok", .int(8)),
                ("num_hidden_layers", .int(layers)), ("num_key_value_heads", .int(heads)), ("num_nextn_predict_layers", .int(1)),
                ("q_lora_rank", .int(qLora)), ("qk_nope_head_dim", .int(nope)), ("qk_rope_head_dim", .int(rope)),
                ("rms_norm_eps", .number("1e-06")), ("rope_theta", .int(10000)),
                ("rope_scaling", .object([
                    ("beta_fast", .int(32)), ("beta_slow", .int(1)), ("factor", .int(40)), ("mscale", .number("1.0")),
                    ("mscale_all_dim", .number("1.0")), ("original_max_position_embeddings", .int(4096)), ("type", .string("yarn")),
                ])),
                ("routed_scaling_factor", .number("2.5")), ("scoring_func", .string("sigmoid")), ("tie_word_embeddings", .bool(false)),
                ("topk_group", .int(4)), ("topk_method", .string("noaux_tc")), ("torch_dtype", .string("bfloat16")),
                ("transformers_version", .string("4.46.3")), ("use_cache", .bool(true)), ("v_head_dim", .int(vHead)),
                ("vocab_size", .int(vocab)),
            ])
        case .qwen2, .llama:
            let isQwen = kind == .qwen2
            let hidden = d(isQwen ? 3584 : 4096), inter = d(isQwen ? 18944 : 14336), vocab = d(isQwen ? 152064 : 128256)
            let layers = layerOverride ?? (isQwen ? 28 : 32), heads = isQwen ? 28 : 32, kvHeads = isQwen ? 4 : 8, headDim = 128
            add("model.embed_tokens.weight", [vocab, hidden])
            for l in 0..<layers {
                let p = "model.layers.\(l)."
                add(p + "input_layernorm.weight", [hidden])
                add(p + "self_attn.q_proj.weight", [heads * headDim, hidden])
                add(p + "self_attn.k_proj.weight", [kvHeads * headDim, hidden])
                add(p + "self_attn.v_proj.weight", [kvHeads * headDim, hidden])
                if isQwen {
                    add(p + "self_attn.q_proj.bias", [heads * headDim])
                    add(p + "self_attn.k_proj.bias", [kvHeads * headDim])
                    add(p + "self_attn.v_proj.bias", [kvHeads * headDim])
                }
                add(p + "self_attn.o_proj.weight", [hidden, heads * headDim])
                add(p + "post_attention_layernorm.weight", [hidden])
                add(p + "mlp.gate_proj.weight", [inter, hidden])
                add(p + "mlp.up_proj.weight", [inter, hidden])
                add(p + "mlp.down_proj.weight", [hidden, inter])
            }
            add("model.norm.weight", [hidden])
            add("lm_head.weight", [vocab, hidden])
            releaseShardCount = nil
            var members: [(String, JSONValue)] = [
                ("architectures", .array([.string(isQwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM")])),
                ("attention_dropout", .number("0.0")), ("bos_token_id", .int(isQwen ? 151643 : 128000)),
                ("eos_token_id", .int(isQwen ? 151643 : 128001)), ("head_dim", .int(headDim)), ("hidden_act", .string("silu")),
                ("hidden_size", .int(hidden)), ("initializer_range", .number("0.02")), ("intermediate_size", .int(inter)),
                ("max_position_embeddings", .int(131072)), ("model_type", .string(isQwen ? "qwen2" : "llama")),
                ("num_attention_heads", .int(heads)), ("num_hidden_layers", .int(layers)), ("num_key_value_heads", .int(kvHeads)),
                ("rms_norm_eps", .number(isQwen ? "1e-06" : "1e-05")),
                ("rope_theta", .number(isQwen ? "10000" : "500000.0")),
            ]
            if !isQwen {
                members.append(("rope_scaling", .object([
                    ("factor", .number("8.0")), ("high_freq_factor", .number("4.0")), ("low_freq_factor", .number("1.0")),
                    ("original_max_position_embeddings", .int(8192)), ("rope_type", .string("llama3")),
                ])))
            }
            members += [
                ("tie_word_embeddings", .bool(false)), ("torch_dtype", .string("bfloat16")),
                ("use_cache", .bool(true)), ("vocab_size", .int(vocab)),
            ]
            config = .object(members)
        }
        tensors = t
    }

    public var totalBytes: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    /// The same model as DeepSeek's FP8 release stores it: every linear weight dsconvert
    /// quantizes by default (`TensorRole.quantizedByDefault`) as F8_E4M3 followed by its F32
    /// `weight_scale_inv` grid of ceil(out/128) × ceil(in/128), the rest unchanged, and
    /// config.json's `quantization_config` as the release has it.
    public func blockFP8(block: Int = 128) -> ModelBlueprint {
        var b = self
        let layout = ModelLayout(architecture: kind == .deepseekV3 ? .deepseekV3 : kind == .qwen2 ? .qwen2 : .llama)
        b.tensors = tensors.flatMap { t -> [TensorSpec] in
            guard t.shape.count == 2, layout.role(of: t.name)?.quantizedByDefault == true else { return [t] }
            let grid = [(t.shape[0] + block - 1) / block, (t.shape[1] + block - 1) / block]
            return [TensorSpec(name: t.name, dtype: .f8e4m3, shape: t.shape), TensorSpec(name: t.name + "_scale_inv", dtype: .f32, shape: grid)]
        }
        b.config = config.setting("quantization_config", .object([
            ("activation_scheme", .string("dynamic")), ("fmt", .string("e4m3")), ("quant_method", .string("fp8")),
            ("weight_block_size", .array([.int(block), .int(block)])),
        ]))
        return b
    }
}
