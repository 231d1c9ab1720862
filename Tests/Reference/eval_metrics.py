"""numpy reference for Sources/Eval's per-token statistics.

Usage: eval_metrics.py REF.f32 CAND.f32 TARGETS.i32 VOCAB
Reads [N, VOCAB] little-endian f32 logits of a reference and a candidate and N int32 targets;
prints JSON with per-token KL(P_ref || P_cand) in nats, the log-probabilities of the targets,
top-1 agreement, and the summary statistics llama.cpp's perplexity.cpp reports (percentiles by
numpy's default linear interpolation).
"""
import json
import sys

import numpy as np


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))


def main():
    ref_path, cand_path, tgt_path, vocab = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ref = np.fromfile(ref_path, dtype="<f4").reshape(-1, vocab)
    cand = np.fromfile(cand_path, dtype="<f4").reshape(-1, vocab)
    tgt = np.fromfile(tgt_path, dtype="<i4")
    n = len(tgt)
    lr, lc = log_softmax(ref), log_softmax(cand)
    kl = (np.exp(lr) * (lr - lc)).sum(axis=1)
    rows = np.arange(n)
    ref_lp, cand_lp = lr[rows, tgt], lc[rows, tgt]
    same = lr.argmax(axis=1) == lc.argmax(axis=1)
    dp = np.exp(cand_lp) - np.exp(ref_lp)
    a, b = -ref_lp, -cand_lp
    cov = np.cov(a, b, bias=True)[0, 1]
    ua = np.sqrt(a.var() / (n - 1))
    ub = np.sqrt(b.var() / (n - 1))
    log_ratio = b.mean() - a.mean()
    log_ratio_err = np.sqrt(ua**2 + ub**2 - 2 * cov / (n - 1))
    p = same.mean()
    qs = [0.5, 0.9, 0.95, 0.99, 0.999]
    out = {
        "kl": kl.tolist(), "ref_logp": ref_lp.tolist(), "cand_logp": cand_lp.tolist(),
        "same_top1": same.astype(int).tolist(),
        "kl_mean": kl.mean(), "kl_mean_error": np.sqrt(kl.var() / (n - 1)),
        "kl_percentiles": [float(np.percentile(kl, 100 * q)) for q in qs], "kl_max": kl.max(),
        "top1": p, "top1_error": np.sqrt(p * (1 - p) / (n - 1)),
        "dp_mean": dp.mean(), "dp_rms": np.sqrt((dp**2).mean()),
        "dp_percentiles": [float(np.percentile(dp, 100 * q)) for q in qs],
        "ref_ppl": np.exp(a.mean()), "cand_ppl": np.exp(b.mean()),
        "ppl_ratio": np.exp(log_ratio), "ppl_ratio_error": np.exp(log_ratio) * log_ratio_err,
        "ppl_difference": np.exp(b.mean()) - np.exp(a.mean()),
        "correlation": float(np.corrcoef(a, b)[0, 1]),
    }
    print(json.dumps({k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}))


main()
