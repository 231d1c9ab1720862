#!/usr/bin/env python3
"""The PyTorch CPU baseline of Scripts/bench.sh: DeepSeek block-128 FP8 quantization of a whole
checkpoint the way conversion scripts do it (safe_open per shard, quantize each linear weight in
f32, save_file per shard), with the same thread count as dsconvert.

usage: torch_quantize.py IN_DIR OUT_DIR"""
import glob
import json
import os
import re
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
keep = re.compile(r"(embed_tokens|lm_head|norm|mlp\.gate\.|e_score_correction_bias|eh_proj|shared_head\.head)")


def quantize(w):
    out_f, in_f = w.shape
    f = w.float()
    pr, pc = (-out_f) % 128, (-in_f) % 128
    p = torch.nn.functional.pad(f, (0, pc, 0, pr))
    b = p.reshape(p.shape[0] // 128, 128, p.shape[1] // 128, 128)
    amax = b.abs().amax(dim=(1, 3))
    scale = amax.clamp(min=1e-12) / 448.0
    q = (b / scale[:, None, :, None]).clamp(-448, 448).reshape(p.shape)[:out_f, :in_f]
    return q.to(torch.float8_e4m3fn).contiguous(), scale.contiguous()


weight_map = {}
for path in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
    name = os.path.basename(path)
    out = {}
    with safe_open(path, framework="pt") as f:
        for k in f.keys():
            t = f.get_tensor(k)
            if k.endswith(".weight") and t.dim() == 2 and not keep.search(k):
                q, s = quantize(t)
                out[k] = q
                out[k[: -len("weight")] + "weight_scale_inv"] = s
            else:
                out[k] = t
    save_file(out, os.path.join(dst, name), metadata={"format": "pt"})
    weight_map.update({k: name for k in out})
    del out
cfg = json.load(open(os.path.join(src, "config.json")))
cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(dst, "model.safetensors.index.json"), "w"), indent=2)
