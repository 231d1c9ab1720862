#!/usr/bin/env python3
"""Reference timings for Scripts/bench.sh: the same BF16 -> FP8 E4M3 block-128 quantization
of one tensor, in numpy + ml_dtypes and (when installed) in torch, with the same thread count.
Prints one JSON object."""
import json
import os
import sys
import time

import ml_dtypes
import numpy as np

mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
threads = int(os.environ.get("BENCH_THREADS", "2"))
cols = 7168
rows = max(128, (mib << 20) // (cols * 2) // 128 * 128)
rng = np.random.default_rng(0)
w = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
nbytes = w.nbytes
out = {"bytes": nbytes, "threads": threads}


def numpy_block(w):
    f = w.astype(np.float32).reshape(rows // 128, 128, cols // 128, 128)
    amax = np.abs(f).max(axis=(1, 3), keepdims=True)
    scale = np.maximum(amax, np.float32(1e-12)) / np.float32(448)
    q = np.clip(f / scale, -448, 448).astype(ml_dtypes.float8_e4m3fn)
    return q, scale


best = float("inf")
for _ in range(2):
    t = time.perf_counter()
    numpy_block(w)
    best = min(best, time.perf_counter() - t)
out["numpy_gb_s"] = nbytes / best / 1e9

try:
    import torch

    torch.set_num_threads(threads)
    tw = torch.from_numpy(w.view(np.uint16).astype(np.int16)).view(torch.bfloat16)

    def torch_block(tw):
        f = tw.float().reshape(rows // 128, 128, cols // 128, 128)
        amax = f.abs().amax(dim=(1, 3), keepdim=True)
        scale = amax.clamp(min=1e-12) / 448.0
        q = (f / scale).clamp(-448, 448).to(torch.float8_e4m3fn)
        return q, scale

    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        torch_block(tw)
        best = min(best, time.perf_counter() - t)
    out["torch_gb_s"] = nbytes / best / 1e9
    out["torch_version"] = torch.__version__
except ImportError:
    out["torch_gb_s"] = None
print(json.dumps(out))
