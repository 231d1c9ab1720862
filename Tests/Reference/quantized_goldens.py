"""Reference logits of quantized sample checkpoints, for the engine's fast-tier tests.

usage: quantized_goldens.py OUT.safetensors NAME=DIR [NAME=DIR ...]
       quantized_goldens.py --bias-copy SAMPLE_DIR OUT_DIR

For each DIR (a checkpoint written by `dsconvert quantize`, or a BF16 checkpoint), every
quantized weight is dequantized exactly in float32 with numpy — f32(q) x scale per block
(`weight_scale_inv`, block edges from config.json) or per row / tensor (`weight_scale`), with no
rounding — and every other tensor is upcast to float32. transformers (fp32, eager attention) then
runs the model built from DIR/config.json (quantization_config removed) on the first 16 ids of
the first sequence of Samples/golden/<model>.safetensors `input_ids`, and writes
NAME/input_ids and NAME/logits. transformers' own FP8 loader is not used (it mis-scales partial
blocks). Needs torch and transformers (the opt-in tier).

       quantized_goldens.py --static-ranges SAMPLE_DIR OUT_PREFIX

A DIR with `X.input_scale` tensors (static activations, `quantize --act static`) runs as a serving
engine runs it: a forward pre-hook on each such linear module divides its input by the scale in
float32, saturates and rounds it (FP8: clamp to +-448, cast to torch.float8_e4m3fn; INT8: torch.round,
half to even, clamp to -128..127; the type follows the weight's dtype) and multiplies back.
transformers 5 keeps deepseek_v3's routed experts fused in one module (`mlp.experts`: gate_up_proj
[E, 2I, H], down_proj [E, H, I]; no nn.Linear per expert), so no pre-hook reaches an expert's input:
that module's forward is replaced by `expert_loop`, which runs each routed expert on its tokens as
three separate products (gate, up, down) and quantizes each product's input with that expert's
own scale. Without quantization the loop gives transformers' own logits (`--check-expert-loop`).

--static-ranges runs the BF16 sample (fp32) on the same ids and writes OUT_PREFIX-fp8.json and
OUT_PREFIX-int8.json, ranges files (Formats/calibration.md) whose amax per quantized linear input
is 0.9 x the largest |x| it saw (so that some inputs saturate), at least 0.05 (routed experts no
token reached). A routed expert's inputs are observed on its routed tokens (through `expert_loop`).

       quantized_goldens.py --check-expert-loop DIR

prints the largest |difference| between transformers' logits of DIR (a deepseek_v3 checkpoint)
with its own fused experts and with `expert_loop` (no quantization) on the same ids.

--bias-copy writes a copy of the deepseek sample whose `e_score_correction_bias` tensors are
nonzero and partly negative (seeded), so that the selection-only use of the bias is tested; the
values are also stored in the output of the first form when NAME starts with "bias" (key
NAME/bias/<tensor>), from which the Swift test rebuilds the same copy.
"""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from st_raw import read_dir  # noqa: E402

TOKENS = 16
EXPERT = re.compile(r"^(.+\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)$")


def dequantize(tensors, config):
    """{name: float32 array} with every quantized weight dequantized exactly."""
    q = (config or {}).get("quantization_config") or {}
    block = tuple(q.get("weight_block_size") or (128, 128))
    out = {}
    scales = {n for n in tensors if n.endswith((".weight_scale_inv", ".weight_scale", ".input_scale", ".weight_zero_point"))}
    for name, a in tensors.items():
        if name in scales:
            continue
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        inv = tensors.get(module + ".weight_scale_inv") if module else None
        direct = tensors.get(module + ".weight_scale") if module else None
        if a.dtype.itemsize == 1 and (inv is not None or direct is not None):
            codes = a.astype(np.float32)
            r, c = codes.shape
            if inv is not None:
                s = np.repeat(np.repeat(inv.astype(np.float32), block[0], axis=0), block[1], axis=1)[:r, :c]
            else:
                s32 = direct.astype(np.float32)
                s = s32.reshape(()) if s32.size == 1 else s32.reshape(r, 1)
            out[name] = (codes * s).astype(np.float32)
        else:
            out[name] = a.astype(np.float32)
    return out


def load_model(directory, static=True):
    """transformers fp32 eager model of the folder, every quantized weight dequantized exactly
    (with `static`, inputs of modules with an input_scale quantized by pre-hooks)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    weights = dequantize(read_dir(directory), config)
    config.pop("quantization_config", None)
    for key in ("torch_dtype", "dtype"):
        if key in config:
            config[key] = "float32"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f)
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}, os.path.join(tmp, "model.safetensors"))
        model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager").eval()
    raw = read_dir(directory) if static else {}
    experts = {}  # fused experts module -> {(expert, projection): quantizer}
    for name, scale in raw.items():
        if not name.endswith(".input_scale"):
            continue
        module = name[: -len(".input_scale")]
        fp8 = raw[module + ".weight"].dtype.itemsize == 1 and raw[module + ".weight"].dtype.kind != "i"
        s = torch.tensor(float(scale.astype(np.float32).reshape(-1)[0]), dtype=torch.float32)
        m = EXPERT.match(module)
        if m:
            experts.setdefault(m.group(1), {})[(int(m.group(2)), m.group(3))] = static_quantizer(s, fp8)
        else:
            q = static_quantizer(s, fp8)
            model.get_submodule(module).register_forward_pre_hook(lambda _, args, q=q: (q(args[0]),) + tuple(args[1:]))
    for path, quantizers in experts.items():
        fused = model.get_submodule(path)
        want = {(e, p) for e in range(fused.num_experts) for p in ("gate_proj", "up_proj", "down_proj")}
        if set(quantizers) != want:
            raise ValueError(f"{directory}: {path}: input_scale for {len(quantizers)} of {len(want)} expert projections")
        fused.forward = expert_loop(fused, lambda e, p, x, qs=quantizers: qs[(e, p)](x))
    return model


def static_quantizer(s, fp8):
    """x quantized with the static scale `s` and multiplied back, in float32."""
    import torch

    def quantize(x):
        x = x / s
        q = x.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(torch.float32) if fp8 else torch.round(x).clamp(-128.0, 127.0)
        return q * s
    return quantize


def expert_loop(experts, on_input):
    """A forward for transformers' fused routed experts (DeepseekV3Experts: gate_up_proj [E, 2I, H]
    with gate rows first, down_proj [E, H, I]) that runs expert e on the rows routed to it as three
    separate products, each on on_input(e, "gate_proj" | "up_proj" | "down_proj", its input),
    weighted by the router's weight and added into the output as transformers' eager loop adds."""
    import torch
    import torch.nn.functional as F
    inter = experts.intermediate_dim

    def forward(hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        for e in range(experts.num_experts):
            token, slot = torch.where(top_k_index == e)
            if token.numel() == 0:
                continue
            x = hidden_states[token]
            w = experts.gate_up_proj[e]
            gate = F.linear(on_input(e, "gate_proj", x), w[:inter])
            up = F.linear(on_input(e, "up_proj", x), w[inter:])
            h = experts.act_fn(gate) * up
            y = F.linear(on_input(e, "down_proj", h), experts.down_proj[e])
            out.index_add_(0, token, (y * top_k_weights[token, slot, None]).to(out.dtype))
        return out
    return forward


def fused_experts(model):
    """{path: module} of the model's fused routed-experts modules."""
    return {n: m for n, m in model.named_modules() if n.endswith(".mlp.experts") and hasattr(m, "gate_up_proj")}


def quantized_modules(model):
    """The linear modules `dsconvert quantize` quantizes: all but lm_head, the MoE router
    (mlp.gate) and the MTP layer's eh_proj / shared_head.head."""
    import torch
    skip = (".mlp.gate", "eh_proj", "shared_head.head")
    return [n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n != "lm_head" and not n.endswith(skip)]


def static_ranges(sample, prefix):
    import torch

    model = load_model(sample)
    seen = {}

    def record(name, x):
        if x.numel():
            seen[name] = max(seen.get(name, 0.0), float(x.abs().max()))
            seen.setdefault(name + "#tokens", 0)
            seen[name + "#tokens"] += int(x.numel() // x.shape[-1])

    def observe(name):
        return lambda module, args: record(name, args[0])
    names = quantized_modules(model)
    for n in names:
        model.get_submodule(n).register_forward_pre_hook(observe(n))
    for path, fused in fused_experts(model).items():
        def seen_by(e, p, x, path=path):
            record(f"{path}.{e}.{p}", x)
            return x
        fused.forward = expert_loop(fused, seen_by)
        names += [f"{path}.{e}.{p}" for e in range(fused.num_experts) for p in ("gate_proj", "up_proj", "down_proj")]
    with open(os.path.join(sample, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    golden = {"deepseek_v3": "deepseek-v3-tiny", "qwen2": "qwen2-tiny", "llama": "llama-tiny"}[model_type]
    here = os.path.dirname(os.path.abspath(__file__))
    ids = read_dir(os.path.join(here, "..", "..", "Samples", "golden", golden + ".safetensors"))["input_ids"][:1, :TOKENS].astype(np.int64)
    with torch.no_grad():
        model(input_ids=torch.tensor(ids))
    inputs = [{"name": n + ".input", "consumers": [n], "tokens": seen.get(n + "#tokens", 0),
               "amax": max(0.05, 0.9 * seen.get(n, 0.0)), "bin": None} for n in names]
    for target in ("fp8", "int8"):
        with open(f"{prefix}-{target}.json", "w") as f:
            json.dump({"format": "dsconvert-ranges", "version": 1, "model": golden, "method": "minmax", "target": target,
                       "percentile": None, "ctx": TOKENS, "windows": 1, "expert_mode": "routed", "inputs": inputs}, f, indent=1)


def logits(directory, ids, static=True):
    import torch

    model = load_model(directory, static)
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids, dtype=torch.int64)).logits.numpy().astype(np.float32)


def expert_loop_difference(directory):
    """max |logits(transformers' fused experts) - logits(expert_loop, no quantization)| on the
    golden ids of DIR."""
    import torch

    ids = torch.tensor(golden_ids(directory))
    model = load_model(directory, static=False)
    with torch.no_grad():
        want = model(input_ids=ids).logits
        fused = fused_experts(model)
        if not fused:
            raise ValueError(f"{directory}: no fused experts module")
        for m in fused.values():
            m.forward = expert_loop(m, lambda e, p, x: x)
        got = model(input_ids=ids).logits
    return float((got - want).abs().max())


def golden_ids(directory):
    """The first TOKENS ids of the first sequence of the sample's Samples/golden file (int64)."""
    with open(os.path.join(directory, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    golden = {"deepseek_v3": "deepseek-v3-tiny", "qwen2": "qwen2-tiny", "llama": "llama-tiny"}[model_type]
    here = os.path.dirname(os.path.abspath(__file__))
    return read_dir(os.path.join(here, "..", "..", "Samples", "golden", golden + ".safetensors"))["input_ids"][:1, :TOKENS].astype(np.int64)


def bias_copy(sample, out):
    """The sample with its F32 e_score_correction_bias values replaced in place (same bytes
    otherwise), seeded."""
    import struct
    shutil.copytree(sample, out)
    rng = np.random.default_rng(20261203)
    for f in sorted(os.listdir(out)):
        if not f.endswith(".safetensors"):
            continue
        path = os.path.join(out, f)
        with open(path, "r+b") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
            for name, e in sorted(header.items()):
                if name == "__metadata__" or not name.endswith("e_score_correction_bias"):
                    continue
                assert e["dtype"] == "F32"
                # Scores are sigmoids in (0, 1): a bias of this size reorders the top-k.
                values = rng.normal(0.0, 0.3, size=e["shape"]).astype("<f4")
                fh.seek(8 + n + e["data_offsets"][0])
                fh.write(values.tobytes())


def main(argv):
    if argv[0] == "--static-ranges":
        static_ranges(argv[1], argv[2])
        return 0
    if argv[0] == "--check-expert-loop":
        print(json.dumps({"max_abs_difference": expert_loop_difference(argv[1])}))
        return 0
    if argv[0] == "--bias-copy":
        bias_copy(argv[1], argv[2])
        return 0
    from safetensors.numpy import save_file
    out_path, pairs = argv[0], [a.split("=", 1) for a in argv[1:]]
    here = os.path.dirname(os.path.abspath(__file__))
    samples = os.path.join(here, "..", "..", "Samples")
    result = {}
    for name, directory in pairs:
        with open(os.path.join(directory, "config.json")) as f:
            model_type = json.load(f)["model_type"]
        golden = {"deepseek_v3": "deepseek-v3-tiny", "qwen2": "qwen2-tiny", "llama": "llama-tiny"}[model_type]
        ids = read_dir(os.path.join(samples, "golden", golden + ".safetensors"))["input_ids"][:1, :TOKENS].astype(np.int64)
        result[name + "/input_ids"] = ids.astype(np.int32)
        result[name + "/logits"] = logits(directory, ids)
        if any(k.endswith(".input_scale") for k in read_dir(directory)):
            result[name + "/logits_weights_only"] = logits(directory, ids, static=False)
        if name.startswith("bias"):
            for k, v in read_dir(directory).items():
                if k.endswith("e_score_correction_bias"):
                    result[name + "/bias/" + k] = v.astype(np.float32)
        print(name, result[name + "/logits"].shape, flush=True)
    save_file(result, out_path, metadata={"tokens": str(TOKENS)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
