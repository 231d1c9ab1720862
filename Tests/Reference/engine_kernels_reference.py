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
  python3 engine_kernels_reference.py rows OUTDIR KIND M N K BR BC SEED
      x.bin [M, K] f32 normal(0, 1); w.bin [N, K] the stored weight: KIND bf16 (uint16 codes of
      normal(0, 1) draws rounded to BF16) or e4m3 (uint8 codes drawn uniformly from every
      non-NaN E4M3FN code, so zeros, subnormals and 448 all occur); for e4m3 scales.bin, f32, one
      per BR x BC block ([ceil(N/BR), ceil(K/BC)], log-uniform over 2^-12 .. 2^4); out.bin [M, N]
      = x . W^T in float64 where W = decoded code x scale rounded to f32 (the weight value the
      engine's tile decoder writes), and abs.bin [M, N] = |x| . |W|^T (the error scale).
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


def rows(out, kind, m, n, k, br, bc, seed):
    import ml_dtypes
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    if kind == "bf16":
        wb = rng.standard_normal((n, k)).astype(ml_dtypes.bfloat16)
        codes = wb.view(np.uint16)
        w = wb.astype(np.float32)
        scales = np.ones((1, 1), dtype=np.float32)
    else:
        allowed = np.array([c for c in range(256) if c & 0x7F != 0x7F], dtype=np.uint8)
        codes = rng.choice(allowed, size=(n, k))
        value = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
        scales = np.exp2(rng.uniform(-12, 4, ((n + br - 1) // br, (k + bc - 1) // bc))).astype(np.float32)
        full = np.repeat(np.repeat(scales, br, axis=0), bc, axis=1)[:n, :k]
        w = value * full  # float32 product, one rounding
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    mag = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T
    os.makedirs(out, exist_ok=True)
    x.astype("<f4").tofile(os.path.join(out, "x.bin"))
    codes.astype("<u2" if kind == "bf16" else "u1").tofile(os.path.join(out, "w.bin"))
    scales.astype("<f4").tofile(os.path.join(out, "scales.bin"))
    write(out, (("out", ref), ("abs", mag)))


def main(argv):
    if argv[0] == "attention":
        attention(argv[1], *map(int, argv[2:7]))
    elif argv[0] == "silu":
        silu(argv[1], *map(int, argv[2:4]))
    elif argv[0] == "rows":
        rows(argv[1], argv[2], *map(int, argv[3:9]))
    else:
        raise SystemExit(f"unknown reference {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
