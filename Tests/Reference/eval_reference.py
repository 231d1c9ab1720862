"""transformers reference for `dsconvert eval`: every statistic it reports, for a model and
optionally a reference model, computed with torch (fp32, eager attention) and numpy.

usage: eval_reference.py CAND [--ref REF] [--text FILE] [--chars N] [--ctx 256] [--llama-cpp]
                         [--mc FILE.jsonl] [--mc-items N] [--threads T] [--batch B]

Each model is built from its config.json (quantization_config removed) with every quantized
weight dequantized exactly in float32 (quantized_goldens.dequantize: f32(q) x scale per block,
row or tensor, no rounding) and every other tensor upcast to float32; transformers' FP8 loader is
never used (it mis-scales the sample's partial blocks). The text (its first N characters with
--chars) is tokenized once with the `tokenizers` package and the model folder's tokenizer.json,
without special tokens (dsconvert's scheme: window k runs ids[kC:(k+1)C] and scores all C next
tokens; ⌊(N−1)/C⌋ windows) or, with --llama-cpp, as llama.cpp's perplexity.cpp does (special
tokens added, N//C chunks, the first id of each replaced by the BOS the tokenizer adds, if any,
positions C/2 .. C−2 scored). Per scored token: log-softmax in float64, KL(P_ref || P_cand) over
the whole vocabulary, top-1 agreement, Δp = p_cand − p_ref; the summaries are llama.cpp's
(standard errors sqrt(var / (n − 1)), percentiles by linear interpolation). Multiple choice: a
choice's tokens are encode(context + choice) after its longest common prefix with
encode(context); its score is the sum of their log-probabilities from one forward pass over the
whole sequence; accuracy by the raw sum and by the sum per UTF-8 byte of the choice.
Prints JSON in the shape of `dsconvert eval --json` plus "seconds" (model time, both models).
Needs torch and transformers (the opt-in tier).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from quantized_goldens import load_model  # noqa: E402


def tokenizer_of(directory):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))


def bos_of(tok):
    plain, full = tok.encode("a", add_special_tokens=False).ids, tok.encode("a", add_special_tokens=True).ids
    return full[0] if len(full) > len(plain) and full[1:1 + len(plain)] == plain else None


def windows(ids, ctx, llama_cpp, bos):
    """[(inputs, first, targets)] of the scheme."""
    out = []
    if llama_cpp:
        assert len(ids) >= 2 * ctx, "llama.cpp's scheme needs 2 * ctx tokens"
        first = ctx // 2
        for k in range(len(ids) // ctx):
            inp = list(ids[k * ctx:(k + 1) * ctx])
            if bos is not None:
                inp[0] = bos
            out.append((inp, first, list(ids[k * ctx + first + 1:(k + 1) * ctx])))
    else:
        for k in range((len(ids) - 1) // ctx):
            out.append((list(ids[k * ctx:(k + 1) * ctx]), 0, list(ids[k * ctx + 1:(k + 1) * ctx + 1])))
    return out


def log_softmax64(logits):
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))


def run_windows(model, wins, batch):
    """Yields, per window, the float64 log-softmax rows of its scored positions and its targets."""
    import torch
    with torch.no_grad():
        for b in range(0, len(wins), batch):
            group = wins[b:b + batch]
            logits = model(input_ids=torch.tensor([w[0] for w in group], dtype=torch.int64)).logits.numpy()
            for (inp, first, targets), row in zip(group, logits):
                yield log_softmax64(row[first:first + len(targets)]), np.array(targets)


def mean_err(x):
    n = len(x)
    return float(x.mean()), float(np.sqrt(max(x.var(), 0) / (n - 1)))


def perplexity(cand, ref, wins, batch):
    t0 = time.perf_counter()
    c_lp, r_lp, kl, same = [], [], [], []
    ref_iter = run_windows(ref, wins, batch) if ref is not None else None
    for lc, t in run_windows(cand, wins, batch):
        rows = np.arange(len(t))
        c_lp.append(lc[rows, t])
        if ref_iter is not None:
            lr, _ = next(ref_iter)
            r_lp.append(lr[rows, t])
            kl.append((np.exp(lr) * (lr - lc)).sum(axis=1))
            same.append(lr.argmax(axis=1) == lc.argmax(axis=1))
    seconds = time.perf_counter() - t0
    c_lp = np.concatenate(c_lp)
    out = {"cand_logp": c_lp, "seconds": seconds}
    if ref is not None:
        out.update(ref_logp=np.concatenate(r_lp), kl=np.maximum(np.concatenate(kl), 0), same=np.concatenate(same))
    return out


def ppl_of(logp):
    m, e = mean_err(-logp)
    return float(np.exp(m)), float(np.exp(m) * e)


def comparison(p):
    a, b = -p["ref_logp"], -p["cand_logp"]
    n = len(a)
    kl, same = p["kl"], p["same"]
    dp = np.exp(p["cand_logp"]) - np.exp(p["ref_logp"])
    ua, ub = np.sqrt(a.var() / (n - 1)), np.sqrt(b.var() / (n - 1))
    cov = np.cov(a, b, bias=True)[0, 1] / (n - 1)
    log_ratio = b.mean() - a.mean()
    log_ratio_err = np.sqrt(max(ua**2 + ub**2 - 2 * cov, 0))
    pa, pb = np.exp(a.mean()), np.exp(b.mean())
    top1 = same.mean()
    m2, m4 = (dp**2).mean(), (dp**4).mean()
    rms = np.sqrt(m2)
    pct = lambda x, q: float(np.percentile(x, 100 * q))  # noqa: E731
    return {
        "kl_mean": kl.mean(), "kl_mean_error": np.sqrt(kl.var() / (n - 1)),
        "kl_median": pct(kl, 0.5), "kl_p90": pct(kl, 0.9), "kl_p95": pct(kl, 0.95), "kl_p99": pct(kl, 0.99),
        "kl_p999": pct(kl, 0.999), "kl_max": kl.max(),
        "top1_agreement": top1, "top1_agreement_error": np.sqrt(top1 * (1 - top1) / (n - 1)),
        "ppl_ratio": np.exp(log_ratio), "ppl_ratio_error": np.exp(log_ratio) * log_ratio_err,
        "ln_ppl_ratio": log_ratio, "ln_ppl_ratio_error": log_ratio_err,
        "ppl_difference": pb - pa,
        "ppl_difference_error": np.sqrt(max(pb**2 * ub**2 + pa**2 * ua**2 - 2 * cov * pa * pb, 0)),
        "ln_ppl_correlation": float(np.corrcoef(a, b)[0, 1]),
        "delta_p_mean": dp.mean(), "delta_p_mean_error": np.sqrt(dp.var() / (n - 1)),
        "delta_p_rms": rms, "delta_p_rms_error": 0.5 * np.sqrt(max(m4 - m2**2, 0) / (n - 1)) / rms if rms > 0 else 0.0,
        "delta_p_min": dp.min(), "delta_p_p01": pct(dp, 0.01), "delta_p_p05": pct(dp, 0.05), "delta_p_median": pct(dp, 0.5),
        "delta_p_p95": pct(dp, 0.95), "delta_p_p99": pct(dp, 0.99), "delta_p_max": dp.max(),
    }


def multiple_choice(model, tok, items):
    import torch
    t0 = time.perf_counter()
    correct, correct_norm, scores_all = [], [], []
    with torch.no_grad():
        for it in items:
            ctx = tok.encode(it["context"], add_special_tokens=False).ids
            scores = []
            for choice in it["choices"]:
                full = tok.encode(it["context"] + choice, add_special_tokens=False).ids
                lcp = 0
                while lcp < min(len(ctx), len(full)) and full[lcp] == ctx[lcp]:
                    lcp += 1
                assert 1 <= lcp < len(full)
                lp = log_softmax64(model(input_ids=torch.tensor([full[:-1]])).logits.numpy()[0])
                scores.append(float(sum(lp[t - 1, full[t]] for t in range(lcp, len(full)))))
            norm = [s / len(c.encode("utf-8")) for s, c in zip(scores, it["choices"])]
            correct.append(int(np.argmax(scores)) == it["label"])
            correct_norm.append(int(np.argmax(norm)) == it["label"])
            scores_all.append(scores)
    return {"mc_accuracy": float(np.mean(correct)), "mc_accuracy_norm": float(np.mean(correct_norm)),
            "mc_items": len(items), "mc_scores": scores_all, "seconds": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cand")
    ap.add_argument("--ref")
    ap.add_argument("--text")
    ap.add_argument("--chars", type=int)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--llama-cpp", action="store_true")
    ap.add_argument("--mc")
    ap.add_argument("--mc-items", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    cand = load_model(a.cand)
    ref = load_model(a.ref) if a.ref else None
    tok = tokenizer_of(a.cand)
    out = {"candidate": {"path": a.cand}, "reference": {"path": a.ref} if a.ref else None, "comparison": {} if a.ref else None,
           "scheme": "llama.cpp" if a.llama_cpp else "dsconvert", "context": a.ctx}
    seconds = 0.0
    if a.text:
        with open(a.text, encoding="utf-8") as f:
            text = f.read()
        if a.chars:
            text = text[:a.chars]
        ids = tok.encode(text, add_special_tokens=a.llama_cpp).ids
        wins = windows(ids, a.ctx, a.llama_cpp, bos_of(tok) if a.llama_cpp else None)
        p = perplexity(cand, ref, wins, a.batch)
        seconds += p["seconds"]
        out["windows"] = len(wins)
        out["candidate"].update(zip(("perplexity", "perplexity_error"), ppl_of(p["cand_logp"])), tokens=len(p["cand_logp"]))
        if ref is not None:
            out["reference"].update(zip(("perplexity", "perplexity_error"), ppl_of(p["ref_logp"])), tokens=len(p["ref_logp"]))
            out["comparison"].update({k: float(v) for k, v in comparison(p).items()})
    if a.mc:
        with open(a.mc, encoding="utf-8") as f:
            items = [json.loads(line) for line in f if line.strip()]
        if a.mc_items:
            items = items[:a.mc_items]
        for key, model in (("candidate", cand), ("reference", ref)):
            if model is None:
                continue
            r = multiple_choice(model, tok, items)
            seconds += r.pop("seconds")
            out[key].update(r)
        if ref is not None:
            out["comparison"]["mc_accuracy_delta"] = out["candidate"]["mc_accuracy"] - out["reference"]["mc_accuracy"]
            out["comparison"]["mc_accuracy_norm_delta"] = out["candidate"]["mc_accuracy_norm"] - out["reference"]["mc_accuracy_norm"]
    out["seconds"] = seconds
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
