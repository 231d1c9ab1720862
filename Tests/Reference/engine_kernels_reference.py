#!/usr/bin/env python3
"""References for the engine's C kernels (Tests/EngineTests/EngineKernelTests.swift), computed
by numpy in float64 and written as raw little-endian float32 files:

  python3 engine_kernels_reference.py attention OUTDIR NQ P0 DK DV SEED
      q.bin [NQ, DK], k.bin [P0+NQ, DK], v.bin [P0+NQ, DV] (normal(0, 1) draws from
      default_rng(SEED), q scaled by 3 so the softmax is peaked, far from uniform) and out.bin
      [NQ, DV]: causal attention, out_i = softmax_{j <= P0+i}(q_i . k_j / sqrt(DK)) . v.
  python3 engine_kernels_reference.py silu OUTDIR N SEED
      g.bin, u.bin [N] and out.bin [N] = silu(g) * u = g / (1 + e^-g) * u; g spans
      -120 .. 120 (both tails of the sigmoid, where e^-g overflows float32), u is normal(0, 1).
"""
import os
import sys

import numpy as np


def write(out, arrays):
    os.makedirs(out, exist_ok=True)
    for name, a in arrays:
        np.asarray(a, dtype="<f4").tofile(os.path.join(out, name + ".bin"))


def attention(out, nq, p0, dk, dv, seed):
    rng = np.random.default_rng(seed)
    n = p0 + nq
    q = (rng.standard_normal((nq, dk)) * 3).astype(np.float32)
    k = rng.standard_normal((n, dk)).astype(np.float32)
    v = rng.standard_normal((n, dv)).astype(np.float32)
    s = q.astype(np.float64) @ k.astype(np.float64).T / np.sqrt(dk)
    s[np.arange(n)[None, :] > (p0 + np.arange(nq))[:, None]] = -np.inf
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    write(out, (("q", q), ("k", k), ("v", v), ("out", p @ v.astype(np.float64))))


def silu(out, n, seed):
    rng = np.random.default_rng(seed)
    g = np.concatenate([np.linspace(-120, 120, n // 2), rng.standard_normal(n - n // 2) * 4]).astype(np.float32)
    u = rng.standard_normal(n).astype(np.float32)
    x = g.astype(np.float64)
    with np.errstate(over="ignore"):
        r = x / (1 + np.exp(-x)) * u.astype(np.float64)
    write(out, (("g", g), ("u", u), ("out", r)))


def main(argv):
    if argv[0] == "attention":
        attention(argv[1], *map(int, argv[2:7]))
    elif argv[0] == "silu":
        silu(argv[1], *map(int, argv[2:4]))
    else:
        raise SystemExit(f"unknown reference {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
