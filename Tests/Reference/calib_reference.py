"""Independent reference for Sources/Calibration, written from the algorithm of NVIDIA
pytorch-quantization's histogram calibrator (calib/histogram.py, `_compute_amax_entropy`,
`_compute_amax_percentile`; ModelOpt's `_compute_amax_mse` with its CPU fake quantizers
`_tensor_quant` and `_fp8_eager`) and the FP8-aware KL of Formats/calibration.md; numpy and
ml_dtypes only.

Usage: calib_reference.py SEED  -> prints one JSON line per case:
  {"counts": [...], "width": "0x1.…p-3" (float.hex), "kl_bin": i, "kl_fp8_bin": i, "pct_bin": j, "pct9999_bin": j,
   "mse_int8_bin": i, "mse_int8_amax": hex, "mse_fp8_bin": i, "mse_fp8_amax": hex}
(kl_bin only on the small cases).
The Swift test rebuilds each histogram from its counts and compares the chosen bins.
"""
import json
import sys

import ml_dtypes
import numpy as np


def kl_bin(hist, num_bits=8, start_bin=128):
    bins = np.array(hist, dtype=np.float64)
    bins[0] = bins[1]
    nbins = 1 << (num_bits - 1)
    divergences = []
    for i in range(start_bin, len(bins) + 1):
        space = np.linspace(0, i, num=nbins + 1)
        digitized = np.digitize(range(i), space) - 1
        digitized[bins[:i] == 0] = -1
        dens = np.zeros(nbins)
        cnt = np.zeros(nbins)
        for idx, d in enumerate(digitized):
            if d != -1:
                dens[d] += bins[idx]
                cnt[d] += 1
        q = np.zeros(i)
        for idx, d in enumerate(digitized):
            if d != -1:
                q[idx] = dens[d] / cnt[d]
        p = bins[:i].copy()
        p[-1] += bins[i:].sum()
        p = p / p.sum()
        q = q / q.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, np.where(q > 0, p * np.log(p / q), np.inf), 0.0)
        divergences.append(terms.sum())
    d = np.array(divergences)
    last_argmin = len(d) - 1 - np.argmin(d[::-1])
    return int(last_argmin + start_bin)


def pct_bin(hist, p):
    h = np.array(hist, dtype=np.float64)
    cdf = np.cumsum(h / h.sum())  # as _compute_amax_percentile: normalise, then accumulate
    return int(np.searchsorted(cdf, p / 100))


def kl_bin_fp8(hist, start_bin=128):
    """The FP8-aware KL of Formats/calibration.md, vectorised: kept bin j of candidate i maps to
    the E4M3 code of its scaled centre (2j+1)*224/i (f32 division, RNE to E4M3)."""
    bins = np.array(hist, dtype=np.float64)
    bins[0] = bins[1]
    total = bins.sum()
    best, best_i = np.inf, -1
    for i in range(start_bin, len(bins) + 1):
        j = np.arange(i)
        centre = np.float32((2 * j + 1) * 224) / np.float32(i)
        level = centre.astype(ml_dtypes.float8_e4m3fn).view(np.uint8).astype(np.int64)
        kept = bins[:i]
        nz = kept != 0
        sums = np.bincount(level[nz], weights=kept[nz], minlength=128)
        cnt = np.bincount(level[nz], minlength=128)
        q = np.zeros(i)
        q[nz] = sums[level[nz]] / cnt[level[nz]]
        pd = kept.copy()
        pd[-1] += bins[i:].sum()
        pd = pd / total
        q = q / q.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(pd > 0, np.where(q > 0, pd * np.log(pd / q), np.inf), 0.0)
        kl = terms.sum()
        if kl <= best:
            best, best_i = kl, i
    return best_i


def fake_int8(x, amax):
    """pytorch-quantization / ModelOpt _tensor_quant(x, amax, 8, unsigned=False, narrow_range=True)
    on f32."""
    amax = np.float32(amax)
    if amax <= np.float32(1.0 / (1 << 24)):
        return np.zeros_like(x)
    scale = np.float32(127.0) / amax
    q = np.clip(np.round(x * scale), -127, 127).astype(np.float32)
    return (q / scale).astype(np.float32)


def fake_e4m3(x, amax):
    """ModelOpt _fp8_eager(x, amax) on f32."""
    amax = np.float32(amax)
    safe = np.float32(1.0) if amax <= np.float32(1.0 / (1 << 24)) else amax
    scale = np.float32(448.0) / safe
    scale_inv = np.float32(1.0) / scale
    s = np.clip(x * scale, np.float32(-448), np.float32(448)).astype(np.float32)
    return (s.astype(ml_dtypes.float8_e4m3fn).astype(np.float32) * scale_inv).astype(np.float32)


def mse_bin(hist, width, target, start_bin=128):
    """ModelOpt _compute_amax_mse with f32 edges/centres/products; the per-candidate sum is a
    sequential f64 sum (np.cumsum) of the f32 terms, divided by the number of bins."""
    counts = np.array(hist, dtype=np.float64).astype(np.float32)
    n = len(counts)
    edges = (np.arange(n + 1, dtype=np.float64) * width).astype(np.float32)
    centres = ((edges[1:] + edges[:-1]) / np.float32(2)).astype(np.float32)
    fq = fake_int8 if target == "int8" else fake_e4m3
    errs = []
    for i in range(start_bin, n):
        d = (fq(centres, centres[i]) - centres).astype(np.float32)
        terms = (d * d * counts).astype(np.float32)
        errs.append(np.cumsum(terms.astype(np.float64))[-1] / n)
    if not errs:  # no candidate: ModelOpt's argmin fails on the empty list; Swift returns nil
        return None, None
    i = int(np.argmin(errs)) + start_bin
    return i, float(centres[i])


def cases(seed):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(12):
        n = 128 + int(rng.integers(0, 400))
        kind = k % 4
        if kind == 0:    # gaussian-like |x|
            x = np.abs(rng.normal(size=20000))
        elif kind == 1:  # heavy-tailed
            x = np.abs(rng.standard_t(2, size=20000))
        elif kind == 2:  # laplace with outliers
            x = np.abs(np.concatenate([rng.laplace(size=20000), rng.normal(0, 40, size=5)]))
        else:            # sparse: few values, many empty bins
            x = np.abs(rng.choice([0.01, 0.3, 0.31, 1.7, 9.0], size=3000))
        out.append(case(x, n, with_int8_kl=True))
    # Full-size histograms (2048 bins, grown past them by a later batch's outliers), for the
    # vectorised searches only (the literal port of _compute_amax_entropy is too slow at this size).
    for k in range(2):
        x = np.abs(rng.standard_t(3 + 2 * k + seed % 2, size=50000)) * 10.0 ** rng.uniform(-3, 3)
        grown = int(rng.integers(1, 600)) * k
        out.append(case(x, 2048 + grown, with_int8_kl=False))
    return out


def case(x, n, with_int8_kl):
    h, _ = np.histogram(x, bins=n, range=(0, x.max()))
    width = float(x.max() / n)
    c = {"counts": h.astype(float).tolist(), "width": width.hex(),
         "pct_bin": pct_bin(h, 99.9), "pct9999_bin": pct_bin(h, 99.99),
         "kl_fp8_bin": kl_bin_fp8(h)}
    if with_int8_kl:
        c["kl_bin"] = kl_bin(h)
    for t in ("int8", "fp8"):
        b, a = mse_bin(h, width, t)
        c["mse_" + t + "_bin"], c["mse_" + t + "_amax"] = b, (a.hex() if a is not None else None)
    return c


if __name__ == "__main__":
    for c in cases(int(sys.argv[1])):
        print(json.dumps(c))
