"""Independent f32 decoding of stored weights, for the codec tests.

usage: codec_reference.py OUT.safetensors CHECKPOINT_DIR [CHECKPOINT_DIR ...]

For every 2-D `X.weight` of each checkpoint (plain BF16/F16/F32, or F8_E4M3 / I8 with a
`X.weight_scale_inv` block scale or a `X.weight_scale` tensor / channel scale, and an optional
`X.weight_zero_point`), writes `<dir index>/<name>` = (f32(q) - zp) * f32(scale) computed in
numpy float32 with the scale broadcast over its block / row, the way DeepSeek's weight_dequant
and compressed-tensors' dequantize compute it before their final cast. numpy + ml_dtypes only.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from st_raw import read_dir  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402


def block_edges(directory):
    try:
        with open(os.path.join(directory, "config.json")) as f:
            q = json.load(f).get("quantization_config") or {}
    except FileNotFoundError:
        return (128, 128)
    b = q.get("weight_block_size")
    return tuple(b) if b else (128, 128)


def decode(tensors, name, edges):
    w = tensors[name]
    module = name[: -len(".weight")]
    s = tensors.get(module + ".weight_scale_inv")
    if s is None:
        s = tensors.get(module + ".weight_scale")
    if w.dtype.itemsize > 1 or s is None:
        return w.astype(np.float32)
    q = w.astype(np.float32)
    zp = tensors.get(module + ".weight_zero_point")
    if zp is not None:
        q = q - zp.astype(np.float32).reshape(-1, 1) if zp.size > 1 else q - zp.astype(np.float32).reshape(())
    s32 = s.astype(np.float32)
    rows, cols = w.shape
    if module + ".weight_scale_inv" in tensors and s.ndim == 2 and s.shape != (rows, 1):
        br, bc = edges
        full = np.repeat(np.repeat(s32, br, axis=0), bc, axis=1)[:rows, :cols]
        return q * full
    if s.size == 1:
        return q * s32.reshape(())
    return q * s32.reshape(rows, 1)


def main(argv):
    out = {}
    for k, d in enumerate(argv[2:]):
        t = read_dir(d)
        edges = block_edges(d)
        for name, a in t.items():
            if name.endswith(".weight") and a.ndim == 2:
                out[f"{k}/{name}"] = np.ascontiguousarray(decode(t, name, edges))
    save_file(out, argv[1])


if __name__ == "__main__":
    main(sys.argv)
