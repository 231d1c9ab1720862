"""Independent per-GPU memory plan for `dsconvert shard --plan`, from safetensors headers only
(json + struct; works on sparse files).

usage: plan_reference.py MODEL_DIR SPEC.json
SPEC: {"tp": T, "pp": P, "ep": E, "engine": "vllm" | "sglang", "gpu_bytes": B, "mem_util": U,
       "reserve": R, "kv_bytes": 1 | 2}

Rules, written from the engines' documented behaviour:
- weights: column-parallel q/k/v/q_b/kv_b/gate/up/embed/lm_head and row-parallel o/down are
  divided by TP (their weight_scale_inv grids too), everything else is whole on every rank;
  with EP > 1 a routed expert is whole on one rank (contiguous: E/EP experts per rank), so each
  rank holds 1/EP of the experts; the MTP layer (>= num_hidden_layers) is not loaded;
- stages: vLLM gives each stage L // P layers and the L % P extra ones to stages P-2, P-3, ...;
  SGLang to the last L % P stages; the embedding is on stage 0, norm and lm_head on the last;
- KV per token per GPU: MLA (deepseek_v3) caches kv_lora_rank + qk_rope_head_dim per layer on
  every TP rank; GQA caches 2 * kv_heads / TP * head_dim;
- tokens = (gpu_bytes * mem_util - reserve - weights) // kv_per_token, per rank.
Prints {"ranks": [{"rank", "weight_bytes", "kv_bytes_per_token", "kv_tokens"}...]}.
"""
import json
import os
import re
import struct
import sys

SIZES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1}
COLUMN = {"q_proj", "k_proj", "v_proj", "q_b_proj", "kv_b_proj", "gate_proj", "up_proj", "embed_tokens", "lm_head"}
ROW = {"o_proj", "down_proj"}


def headers(d):
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            with open(os.path.join(d, fn), "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                h = json.loads(f.read(n))
            h.pop("__metadata__", None)
            for name, e in h.items():
                count = 1
                for x in e["shape"]:
                    count *= x
                yield name, count * SIZES[e["dtype"]]


def stages(layers, pp, engine):
    counts = [layers // pp] * pp
    extra = layers % pp
    if engine == "vllm":
        for i in range(2, extra + 2):
            counts[-i] += 1
    else:
        for i in range(1, extra + 1):
            counts[-i] += 1
    out, start = [], 0
    for c in counts:
        out.append(range(start, start + c))
        start += c
    return out


def main(model, spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    tp, pp, ep = spec["tp"], spec["pp"], spec["ep"]
    with open(os.path.join(model, "config.json")) as f:
        c = json.load(f)
    layers = c["num_hidden_layers"]
    st = stages(layers, pp, spec["engine"])
    stage_of = {l: s for s, r in enumerate(st) for l in r}
    per_stage = [0] * pp  # bytes on each rank of a stage (TP ranks hold equal shares)
    for name, b in headers(model):
        m = re.match(r"model\.layers\.(\d+)\.", name)
        if m and int(m.group(1)) >= layers:
            continue
        s = stage_of[int(m.group(1))] if m else (0 if "embed_tokens" in name else pp - 1)
        module = re.sub(r"\.(weight_scale_inv|weight|bias|e_score_correction_bias)$", "", name)
        proj = module.split(".")[-1]
        if ".mlp.experts." in name:
            per_stage[s] += b // ep if ep > 1 else b // tp
        elif proj in COLUMN or proj in ROW:
            per_stage[s] += b // tp
        else:
            per_stage[s] += b
    if c.get("model_type") == "deepseek_v3":
        per_layer = (c["kv_lora_rank"] + c["qk_rope_head_dim"]) * spec["kv_bytes"]
    else:
        hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        per_layer = 2 * (c["num_key_value_heads"] // tp) * hd * spec["kv_bytes"]
    usable = int(spec["gpu_bytes"] * spec["mem_util"]) - spec["reserve"]
    ranks = []
    for r in range(tp * pp):
        s = r // tp
        w = int(per_stage[s])
        kv = len(st[s]) * per_layer
        room = usable - w
        ranks.append({"rank": r, "weight_bytes": w, "kv_bytes_per_token": kv, "kv_tokens": room // kv if room > 0 else 0})
    print(json.dumps({"ranks": ranks, "stages": [len(x) for x in st]}))


if __name__ == "__main__":
    main(*sys.argv[1:])
