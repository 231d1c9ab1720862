"""What DeepSeek-V3's inference/convert.py (deepseek-ai/DeepSeek-V3 @ 9b4e978) writes for
`--model-parallel MP`, re-implemented from a reading of its rules (not its code), compared with
`dsconvert shard --layout deepseek` output. numpy, ml_dtypes, safetensors.

usage: deepseek_layout_reference.py SOURCE_DIR OUT_DIR MP

The rules, as read:
- every tensor of the source's safetensors files except the MTP layer (the script skips
  `model.layers.61`, the 671B model's MTP layer: here every layer >= num_hidden_layers);
- its name loses a leading `model.`; `self_attn` becomes `attn`, `mlp` `ffn`, `weight_scale_inv`
  `scale`, `e_score_correction_bias` `bias`; then the second-to-last component (the module) is
  renamed by a fixed table (embed_tokens→embed, input_layernorm→attn_norm,
  post_attention_layernorm→ffn_norm, q_proj→wq, q_a_proj→wq_a, q_a_layernorm→q_norm,
  q_b_proj→wq_b, kv_a_proj_with_mqa→wkv_a, kv_a_layernorm→kv_norm, kv_b_proj→wkv_b, o_proj→wo,
  gate→gate, gate_proj→w1, down_proj→w2, up_proj→w3, norm→norm, lm_head→head), every occurrence
  of it in the name replaced;
- a routed expert (`experts` in the name, not `shared_experts`) goes whole to rank
  i = idx // (n_experts / MP) only; otherwise the table's split dim applies (0 for embed, wq,
  wq_b, wkv_b, w1, w3, head; 1 for wo, w2; none else) to weights and scales alike: rank i gets
  `narrow(dim, i * size/MP, size/MP)`, whole tensors go to every rank;
- rank i's tensors are saved as `model{i}-mp{MP}.safetensors`; files matching `*token*` copied.
Also checked: model_args.json holds the ModelArgs fields from config.json (sigmoid scoring when
the config names none; YaRN factor and original length from rope_scaling).
Prints a JSON summary, exit 1 with the differences otherwise (names, dtypes, shapes, bytes;
header order and metadata are not compared).
"""
import glob
import json
import os
import re
import sys

import ml_dtypes
import numpy as np
from safetensors.numpy import load_file

for _n in ("float8_e4m3fn", "float8_e5m2"):
    if not hasattr(np, _n):
        setattr(np, _n, getattr(ml_dtypes, _n))

RENAME = {"embed_tokens": "embed", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
          "q_proj": "wq", "q_a_proj": "wq_a", "q_a_layernorm": "q_norm", "q_b_proj": "wq_b",
          "kv_a_proj_with_mqa": "wkv_a", "kv_a_layernorm": "kv_norm", "kv_b_proj": "wkv_b", "o_proj": "wo",
          "gate": "gate", "gate_proj": "w1", "down_proj": "w2", "up_proj": "w3", "norm": "norm", "lm_head": "head"}
DIM = {"embed": 0, "wq": 0, "wq_b": 0, "wkv_b": 0, "w1": 0, "w3": 0, "head": 0, "wo": 1, "w2": 1}


def expected(src, mp):
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    layers, n_experts = config["num_hidden_layers"], config["n_routed_experts"]
    per_rank = n_experts // mp
    ranks = [{} for _ in range(mp)]
    for path in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
        for name, a in load_file(path).items():
            m = re.match(r"model\.layers\.(\d+)\.", name)
            if m and int(m.group(1)) >= layers:
                continue
            n = name[len("model."):] if name.startswith("model.") else name
            for old, new in (("self_attn", "attn"), ("mlp", "ffn"), ("weight_scale_inv", "scale"), ("e_score_correction_bias", "bias")):
                n = n.replace(old, new)
            module = n.split(".")[-2]
            new_module = RENAME[module]
            n = n.replace(module, new_module)
            parts = n.split(".")
            routed = "experts" in parts and "shared_experts" not in n
            for i in range(mp):
                if routed:
                    if int(parts[parts.index("experts") + 1]) // per_rank == i:
                        ranks[i][n] = a
                    continue
                d = DIM.get(new_module)
                if d is None:
                    ranks[i][n] = a
                else:
                    k = a.shape[d] // mp
                    ranks[i][n] = np.take(a, range(i * k, (i + 1) * k), axis=d)
    return config, ranks


def main(argv):
    src, out, mp = argv[0], argv[1], int(argv[2])
    config, ranks = expected(src, mp)
    problems = []
    files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    want_files = sorted(f"model{i}-mp{mp}.safetensors" for i in range(mp))
    if files != want_files:
        problems.append(f"files {files}, expected {want_files}")
    compared = 0
    for i in range(mp):
        path = os.path.join(out, f"model{i}-mp{mp}.safetensors")
        if not os.path.exists(path):
            continue
        got = load_file(path)
        if set(got) != set(ranks[i]):
            problems.append(f"rank {i}: names differ: extra {sorted(set(got) - set(ranks[i]))[:5]}, missing {sorted(set(ranks[i]) - set(got))[:5]}")
        for n, want in ranks[i].items():
            g = got.get(n)
            if g is None:
                continue
            if g.dtype != want.dtype or g.shape != want.shape:
                problems.append(f"rank {i}: {n} {g.dtype} {g.shape}, expected {want.dtype} {want.shape}")
            elif np.ascontiguousarray(want).tobytes() != g.tobytes():
                problems.append(f"rank {i}: {n}: data differs")
            compared += 1
    for p in glob.glob(os.path.join(src, "*token*")):
        q = os.path.join(out, os.path.basename(p))
        if not os.path.exists(q) or open(p, "rb").read() != open(q, "rb").read():
            problems.append(f"{os.path.basename(p)} not copied unchanged")
    with open(os.path.join(out, "model_args.json")) as f:
        args = json.load(f)
    rs = config.get("rope_scaling") or {}
    want_args = {
        "vocab_size": config["vocab_size"], "dim": config["hidden_size"], "inter_dim": config["intermediate_size"],
        "moe_inter_dim": config["moe_intermediate_size"], "n_layers": config["num_hidden_layers"],
        "n_dense_layers": config["first_k_dense_replace"], "n_heads": config["num_attention_heads"],
        "n_routed_experts": config["n_routed_experts"], "n_shared_experts": config["n_shared_experts"],
        "n_activated_experts": config["num_experts_per_tok"], "n_expert_groups": config["n_group"],
        "n_limited_groups": config["topk_group"], "score_func": config.get("scoring_func", "sigmoid"),
        "route_scale": config["routed_scaling_factor"], "q_lora_rank": config["q_lora_rank"],
        "kv_lora_rank": config["kv_lora_rank"], "qk_nope_head_dim": config["qk_nope_head_dim"],
        "qk_rope_head_dim": config["qk_rope_head_dim"], "v_head_dim": config["v_head_dim"],
        "rope_theta": config["rope_theta"], "original_seq_len": rs["original_max_position_embeddings"],
        "rope_factor": rs["factor"], "beta_fast": rs["beta_fast"], "beta_slow": rs["beta_slow"], "mscale": rs["mscale"],
        "dtype": "fp8" if "quantization_config" in config else "bf16",
    }
    if args != want_args:
        problems.append(f"model_args.json {args}, expected {want_args}")
    if problems:
        sys.stderr.write("\n".join(problems[:50]) + "\n")
        sys.exit(1)
    print(json.dumps({"ranks": mp, "tensors": compared}))


if __name__ == "__main__":
    main(sys.argv[1:])
