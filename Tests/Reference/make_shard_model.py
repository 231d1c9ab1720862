"""Writes a small random DeepSeek-V3 checkpoint (BF16, Hugging Face names) whose split dims are
multiples of 256, so that its block-FP8 quantization (128 x 128 blocks) can be cut at TP 2:
2 decoder layers (layer 0 dense, layer 1 MoE with 4 routed experts + 1 shared) and one MTP layer
(layer 2). numpy + ml_dtypes + safetensors.

usage: make_shard_model.py OUT_DIR [SEED]
"""
import json
import os
import sys

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

HIDDEN, INTER, MOE, VOCAB = 256, 512, 256, 512
HEADS, Q_LORA, KV_LORA, NOPE, ROPE, V = 4, 128, 128, 64, 64, 64
EXPERTS, LAYERS = 4, 2


def main(out, seed=0):
    rng = np.random.default_rng(seed)
    t = {}

    def add(name, shape, dtype=ml_dtypes.bfloat16):
        t[name] = (rng.standard_normal(shape) * 0.05).astype(dtype)

    def block(p, moe):
        add(p + "input_layernorm.weight", [HIDDEN])
        add(p + "self_attn.q_a_proj.weight", [Q_LORA, HIDDEN])
        add(p + "self_attn.q_a_layernorm.weight", [Q_LORA])
        add(p + "self_attn.q_b_proj.weight", [HEADS * (NOPE + ROPE), Q_LORA])
        add(p + "self_attn.kv_a_proj_with_mqa.weight", [KV_LORA + ROPE, HIDDEN])
        add(p + "self_attn.kv_a_layernorm.weight", [KV_LORA])
        add(p + "self_attn.kv_b_proj.weight", [HEADS * (NOPE + V), KV_LORA])
        add(p + "self_attn.o_proj.weight", [HIDDEN, HEADS * V])
        add(p + "post_attention_layernorm.weight", [HIDDEN])
        if moe:
            add(p + "mlp.gate.weight", [EXPERTS, HIDDEN])
            add(p + "mlp.gate.e_score_correction_bias", [EXPERTS], np.float32)
            for e in range(EXPERTS):
                add(p + f"mlp.experts.{e}.gate_proj.weight", [MOE, HIDDEN])
                add(p + f"mlp.experts.{e}.up_proj.weight", [MOE, HIDDEN])
                add(p + f"mlp.experts.{e}.down_proj.weight", [HIDDEN, MOE])
            for n in ("gate_proj", "up_proj"):
                add(p + f"mlp.shared_experts.{n}.weight", [MOE, HIDDEN])
            add(p + "mlp.shared_experts.down_proj.weight", [HIDDEN, MOE])
        else:
            add(p + "mlp.gate_proj.weight", [INTER, HIDDEN])
            add(p + "mlp.up_proj.weight", [INTER, HIDDEN])
            add(p + "mlp.down_proj.weight", [HIDDEN, INTER])

    add("model.embed_tokens.weight", [VOCAB, HIDDEN])
    for layer in range(LAYERS):
        block(f"model.layers.{layer}.", layer >= 1)
    m = f"model.layers.{LAYERS}."
    add(m + "embed_tokens.weight", [VOCAB, HIDDEN])
    add(m + "enorm.weight", [HIDDEN])
    add(m + "hnorm.weight", [HIDDEN])
    add(m + "eh_proj.weight", [HIDDEN, 2 * HIDDEN])
    block(m, True)
    add(m + "shared_head.norm.weight", [HIDDEN])
    add(m + "shared_head.head.weight", [VOCAB, HIDDEN])
    add("model.norm.weight", [HIDDEN])
    add("lm_head.weight", [VOCAB, HIDDEN])

    os.makedirs(out, exist_ok=True)
    names = list(t)
    half = len(names) // 2
    files = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map = {}
    for fn, ns in files.items():
        save_file({n: t[n] for n in ns}, os.path.join(out, fn))
        weight_map.update({n: fn for n in ns})
    total = sum(a.nbytes for a in t.values())
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "torch_dtype": "bfloat16",
        "hidden_size": HIDDEN, "intermediate_size": INTER, "moe_intermediate_size": MOE, "vocab_size": VOCAB,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": HEADS,
        "q_lora_rank": Q_LORA, "kv_lora_rank": KV_LORA, "qk_nope_head_dim": NOPE, "qk_rope_head_dim": ROPE,
        "v_head_dim": V, "n_routed_experts": EXPERTS, "n_shared_experts": 1, "num_experts_per_tok": 2,
        "n_group": 2, "topk_group": 1, "first_k_dense_replace": 1, "num_nextn_predict_layers": 1,
        "routed_scaling_factor": 2.5, "norm_topk_prob": True, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
        "max_position_embeddings": 2048, "rope_theta": 10000.0,
        "rope_scaling": {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 256,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 2048}, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
