"""Independent reference for Sources/Calibration, written from the algorithm of NVIDIA
pytorch-quantization's histogram calibrator (calib/histogram.py, `_compute_amax_entropy`,
`_compute_amax_percentile`), numpy only.

Usage: calib_reference.py SEED  -> prints one JSON line per case:
  {"counts": [...], "width": w, "kl_bin": i, "pct_bin": j}
The Swift test rebuilds each histogram from its counts and compares the chosen bins.
"""
import json
import sys

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
    cdf = np.cumsum(h) / h.sum()
    return int(np.searchsorted(cdf, p / 100))


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
        h, _ = np.histogram(x, bins=n, range=(0, x.max()))
        out.append({"counts": h.astype(float).tolist(), "width": float(x.max() / n),
                    "kl_bin": kl_bin(h), "pct_bin": pct_bin(h, 99.9)})
    return out


if __name__ == "__main__":
    for c in cases(int(sys.argv[1])):
        print(json.dumps(c))
