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


def load_model(directory):
    """transformers fp32 eager model of the folder, every quantized weight dequantized exactly."""
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
        return AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="eager").eval()


def logits(directory, ids):
    import torch

    model = load_model(directory)
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
        if name.startswith("bias"):
            for k, v in read_dir(directory).items():
                if k.endswith("e_score_correction_bias"):
                    result[name + "/bias/" + k] = v.astype(np.float32)
        print(name, result[name + "/logits"].shape, flush=True)
    save_file(result, out_path, metadata={"tokens": str(TOKENS)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
