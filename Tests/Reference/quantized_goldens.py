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

--static-ranges runs the BF16 sample (fp32) on the same ids and writes OUT_PREFIX-fp8.json and
OUT_PREFIX-int8.json, ranges files (Formats/calibration.md) whose amax per quantized linear input
is 0.9 x the largest |x| it saw (so that some inputs saturate), at least 0.05 (routed experts no
token reached).

--bias-copy writes a copy of the deepseek sample whose `e_score_correction_bias` tensors are
nonzero and partly negative (seeded), so that the selection-only use of the bias is tested; the
values are also stored in the output of the first form when NAME starts with "bias" (key
NAME/bias/<tensor>), from which the Swift test rebuilds the same copy.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from st_raw import read_dir  # noqa: E402

TOKENS = 16


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
    for name, scale in raw.items():
        if not name.endswith(".input_scale"):
            continue
        module = name[: -len(".input_scale")]
        fp8 = raw[module + ".weight"].dtype.itemsize == 1 and raw[module + ".weight"].dtype.kind != "i"
        s = torch.tensor(float(scale.astype(np.float32).reshape(-1)[0]), dtype=torch.float32)
        model.get_submodule(module).register_forward_pre_hook(static_quantizer(s, fp8))
    return model


def static_quantizer(s, fp8):
    """A pre-hook quantizing a linear module's input with the static scale `s`."""
    import torch

    def hook(module, args):
        x = args[0] / s
        q = x.clamp(-448.0, 448.0).to(torch.float8_e4m3fn).to(torch.float32) if fp8 else torch.round(x).clamp(-128.0, 127.0)
        return (q * s,) + tuple(args[1:])
    return hook


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

    def observe(name):
        def hook(module, args):
            x = args[0]
            if x.numel():
                seen[name] = max(seen.get(name, 0.0), float(x.abs().max()))
                seen.setdefault(name + "#tokens", 0)
                seen[name + "#tokens"] += int(x.numel() // x.shape[-1])
        return hook
    names = quantized_modules(model)
    for n in names:
        model.get_submodule(n).register_forward_pre_hook(observe(n))
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
