"""Independent check of SmoothQuant in `dsconvert calibrate --smooth` and `quantize --ranges`.

usage: smooth_check.py MODEL_DIR RANGES_JSON [QUANTIZED_DIR]

From the model's safetensors alone (numpy + ml_dtypes, not dsconvert's code) it lists the
norms whose output linear layers read, and those readers, by their Hugging Face names:
input_layernorm -> q/k/v_proj or q_a_proj (q_proj) + kv_a_proj_with_mqa; q_a_layernorm -> q_b_proj;
kv_a_layernorm -> kv_b_proj; post_attention_layernorm -> gate/up_proj, or the router mlp.gate,
shared_experts.gate/up_proj and every experts.N.gate/up_proj. For every smoothing entry of
RANGES_JSON it checks:
- the consumers are exactly those readers;
- weight_max[j] is max |W[:, j]| over all of them (exact, f32);
- s = max(act_max^a / max(weight_max, 1e-5)^(1-a), 1e-5) from the entry's act_max, computed in
  float64 and rounded to float32: equal to the file's s within 1 f32 ulp (pow may differ in the
  last bit of float64);
- with method minmax, the range of the norm's input is that of the smoothed activations:
  amax == max_j f32(act_max_j / s_j) exactly (division by s is monotonic).
With QUANTIZED_DIR (`quantize --int8 --act static --ranges RANGES_JSON`, a BF16 model): each
folded norm weight is exactly bf16(f32(w) / s), the router bf16(f32(W) * s), and every quantized
reader has exactly the int8 codes and weight_scale compressed-tensors' per-channel INT8 gives
for the folded weight bf16(f32(W) * s) (quant_reference.compressed_tensors, written from that
package's arithmetic).
Prints a JSON summary; exits 1 on the first mismatch.
"""
import glob
import json
import os
import re
import sys

import ml_dtypes
import numpy as np
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_reference import compressed_tensors  # noqa: E402


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def load(folder):
    tensors = {}
    for f in sorted(glob.glob(os.path.join(folder, "*.safetensors"))):
        with safe_open(f, "np") as s:
            for k in s.keys():
                tensors[k] = f
    def get(name):
        with safe_open(tensors[name], "np") as s:
            return s.get_tensor(name)
    return tensors, get


def to_f32(a):
    return a.astype(np.float32)


def readers_of(names):
    groups = {}
    for n in names:
        m = re.fullmatch(r"(model\.layers\.\d+)\.(.+)\.weight", n)
        if not m:
            continue
        p, rest = m.groups()
        norm = None
        if rest in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.q_a_proj", "self_attn.kv_a_proj_with_mqa"):
            norm = p + ".input_layernorm"
        elif rest == "self_attn.q_b_proj":
            norm = p + ".self_attn.q_a_layernorm"
        elif rest == "self_attn.kv_b_proj":
            norm = p + ".self_attn.kv_a_layernorm"
        elif rest in ("mlp.gate_proj", "mlp.up_proj", "mlp.gate", "mlp.shared_experts.gate_proj", "mlp.shared_experts.up_proj") \
                or re.fullmatch(r"mlp\.experts\.\d+\.(gate|up)_proj", rest):
            norm = p + ".post_attention_layernorm"
        if norm is not None:
            groups.setdefault(norm, []).append(n[: -len(".weight")])
    return groups


def main():
    model, ranges_path = sys.argv[1], sys.argv[2]
    quantized = sys.argv[3] if len(sys.argv) > 3 else None
    ranges = json.load(open(ranges_path))
    alpha = ranges["smooth_alpha"]
    names, get = load(model)
    groups = readers_of(names)
    amax = {r["name"]: r["amax"] for r in ranges["inputs"]}
    checked = {"entries": 0, "channels": 0, "minmax_amax": 0, "folded_norms": 0, "folded_readers": 0}
    for e in ranges["smoothing"]:
        norm = e["norm"]
        if sorted(e["consumers"]) != sorted(groups.get(norm, [])):
            fail(f"{norm}: consumers {e['consumers']} are not the readers {groups.get(norm)}")
        wmax = None
        for r in e["consumers"]:
            w = np.abs(to_f32(get(r + ".weight"))).max(axis=0)
            wmax = w if wmax is None else np.maximum(wmax, w)
        got_w = np.array(e["weight_max"], dtype=np.float32)
        if not np.array_equal(got_w, wmax):
            j = int(np.argmax(got_w != wmax))
            fail(f"{norm}: weight_max[{j}] = {got_w[j]}, numpy gives {wmax[j]}")
        act = np.array(e["act_max"], dtype=np.float64)
        s = np.maximum(act ** alpha / np.maximum(wmax.astype(np.float64), 1e-5) ** (1 - alpha), 1e-5).astype(np.float32)
        got = np.array(e["scales"], dtype=np.float32)
        ulps = np.abs(got.view(np.int32).astype(np.int64) - s.view(np.int32).astype(np.int64))
        if ulps.max() > 1:
            j = int(np.argmax(ulps))
            fail(f"{norm}: s[{j}] = {got[j]}, numpy gives {s[j]} ({ulps[j]} ulps)")
        checked["entries"] += 1
        checked["channels"] += len(got)
        if ranges["method"] == "minmax" and norm in amax:
            want = float(np.max(np.array(e["act_max"], dtype=np.float32) / got))
            if amax[norm] != want:
                fail(f"{norm}: minmax amax {amax[norm]} is not max(act_max / s) = {want}")
            checked["minmax_amax"] += 1
        if quantized:
            qnames, qget = load(quantized)
            w = to_f32(get(norm + ".weight"))
            want = (w / got).astype(ml_dtypes.bfloat16)
            have = qget(norm + ".weight")
            if have.dtype != want.dtype or not np.array_equal(have.view(np.uint16), want.view(np.uint16)):
                fail(f"{norm}.weight is not bf16(w / s)")
            checked["folded_norms"] += 1
            for r in e["consumers"]:
                ws = to_f32(get(r + ".weight")) * got[None, :]
                if r + ".weight_scale" not in qnames:
                    want = ws.astype(ml_dtypes.bfloat16)
                    have = qget(r + ".weight")
                    if not np.array_equal(have.view(np.uint16), want.view(np.uint16)):
                        fail(f"{r}.weight (kept) is not bf16(W * s)")
                else:
                    want_q, want_s = compressed_tensors(ws.astype(ml_dtypes.bfloat16), "BF16", "int8", True)
                    have_q, have_s = qget(r + ".weight"), qget(r + ".weight_scale")
                    if not np.array_equal(have_s.view(np.uint16), want_s.view(np.uint16)):
                        fail(f"{r}.weight_scale differs from compressed-tensors' scale of the folded weight")
                    if not np.array_equal(have_q, want_q):
                        i = np.unravel_index(np.argmax(have_q != want_q), have_q.shape)
                        fail(f"{r}.weight[{i}] = {have_q[i]}, compressed-tensors gives {want_q[i]} for the folded weight")
                checked["folded_readers"] += 1
    print(json.dumps(checked))


if __name__ == "__main__":
    main()
