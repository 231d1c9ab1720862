#!/usr/bin/env python3
"""`make bench-eval`: `dsconvert eval` against the transformers reference doing the same work.

The deepseek sample's block-FP8 output (`quantize --fp8`) against the BF16 original on all of
Samples/eval.txt (ctx 256: 552 windows, 141,312 scored tokens per model) plus the 400
multiple-choice items of Samples/eval_mc.jsonl, with the same threads on both sides:
- dsconvert: wall time of the whole `dsconvert eval … --json` process (loading, tokenizing,
  both models, every statistic) and its peak RSS;
- transformers: Tests/Reference/eval_reference.py on the same inputs (eager fp32 attention,
  weights dequantized exactly in f32), its own model time (loading excluded, which favours it)
  and the process's wall time.
The two alternate for --rounds rounds; the best of each is compared. Both must agree on the
figures (perplexities to 1e-4 relative, KL mean to 1e-3 relative) or the run fails: a fast wrong
answer is not a result. Needs torch and transformers (the opt-in tier).

usage: bench_eval.py [DSCONVERT] [--threads 2] [--rounds 2]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "Samples/eval.txt")
MC = os.path.join(ROOT, "Samples/eval_mc.jsonl")
REF = os.path.join(ROOT, "Samples/deepseek-v3-tiny")


def timed(cmd, env=None):
    """(stdout, wall seconds, peak RSS in MB of the child)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss_kb = int(p.stderr.strip().splitlines()[-1])
    return p.stdout, wall, rss_kb / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsconvert", nargs="?", default=os.path.join(ROOT, ".build/release/dsconvert"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dsconvert-bench-eval-")
    cand = os.path.join(work, "fp8")
    subprocess.run([a.dsconvert, "quantize", "--fp8", REF, cand, "-q"], check=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    ds_cmd = [a.dsconvert, "eval", cand, "--ref", REF, "--text", TEXT, "--ctx", "256", "--mc", MC,
              "--json", "-q", "--threads", str(a.threads)]
    tf_cmd = [sys.executable, os.path.join(ROOT, "Tests/Reference/eval_reference.py"), cand, "--ref", REF,
              "--text", TEXT, "--ctx", "256", "--mc", MC, "--threads", str(a.threads)]
    ds, tf = [], []
    for r in range(a.rounds):
        out, wall, rss = timed(ds_cmd)
        d = json.loads(out)
        ds.append((wall, rss, d))
        print(f"round {r + 1}: dsconvert eval {wall:.1f} s (peak RSS {rss:.0f} MB)", file=sys.stderr, flush=True)
        out, wall, rss = timed(tf_cmd, env)
        t = json.loads(out)
        tf.append((t["seconds"], wall, rss, t))
        print(f"round {r + 1}: transformers {t['seconds']:.1f} s model time, {wall:.1f} s wall", file=sys.stderr, flush=True)
    d, t = ds[0][2], tf[0][3]
    for side in ("candidate", "reference"):
        x, y = d[side]["perplexity"], t[side]["perplexity"]
        if abs(x - y) > 1e-4 * y:
            sys.exit(f"{side} perplexity differs: dsconvert {x} vs transformers {y}")
        if d[side]["mc_accuracy"] != t[side]["mc_accuracy"]:
            sys.exit(f"{side} multiple-choice accuracy differs: {d[side]['mc_accuracy']} vs {t[side]['mc_accuracy']}")
    x, y = d["comparison"]["kl_mean"], t["comparison"]["kl_mean"]
    if abs(x - y) > 1e-3 * y:
        sys.exit(f"KL mean differs: dsconvert {x} vs transformers {y}")
    best_ds = min(ds, key=lambda e: e[0])
    best_tf = min(tf, key=lambda e: e[0])
    tokens = d["tokens_run"]
    print(f"eval of deepseek-v3-tiny block FP8 vs BF16: eval.txt ({d['candidate']['tokens']:,} scored tokens per model) "
          f"+ {d['candidate']['mc_items']} multiple-choice items, {a.threads} threads, best of {a.rounds}")
    print("| | wall time | tokens/s | peak RSS | ratio |")
    print("|---|---|---|---|---|")
    print(f"| dsconvert eval (whole process) | {best_ds[0]:.1f} s | {tokens / best_ds[0]:,.0f} | {best_ds[1]:.0f} MB | "
          f"{best_tf[0] / best_ds[0]:.2f}× transformers' model time |")
    print(f"| transformers (Tests/Reference/eval_reference.py), model time only | {best_tf[0]:.1f} s "
          f"(process {best_tf[1]:.1f} s) | {tokens / best_tf[0]:,.0f} | {best_tf[2]:.0f} MB | 1 |")
    print(f"figures agree: PPL {d['candidate']['perplexity']:.6f} / {t['candidate']['perplexity']:.6f} (cand), "
          f"{d['reference']['perplexity']:.6f} / {t['reference']['perplexity']:.6f} (ref), KL mean {x:.6g} / {y:.6g}")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
