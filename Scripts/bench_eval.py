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
The two alternate for --rounds rounds; the best of each is compared (wall and CPU separately). CPU seconds (user + sys of
the process) are printed beside the wall times, and the load average before and after, since a
shared machine moves wall times more than CPU times. The transformers side runs with
OMP_WAIT_POLICY=PASSIVE (--omp-wait-policy): on a loaded machine libgomp's default spinning
barrier otherwise burns most of its threads' time waiting for a descheduled peer (86 % of its
samples in one run), which would flatter dsconvert. Both must agree on the
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
    """(stdout, wall seconds, peak RSS in MB, CPU seconds (user + sys) of the child)."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss_kb, user, system = p.stderr.strip().splitlines()[-1].split()
    return p.stdout, wall, int(rss_kb) / 1024, float(user) + float(system)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsconvert", nargs="?", default=os.path.join(ROOT, ".build/release/dsconvert"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--omp-wait-policy", default="PASSIVE", help="OMP_WAIT_POLICY of the transformers side ('' leaves it unset)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="dsconvert-bench-eval-")
    cand = os.path.join(work, "fp8")
    subprocess.run([a.dsconvert, "quantize", "--fp8", REF, cand, "-q"], check=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    if a.omp_wait_policy:
        env["OMP_WAIT_POLICY"] = a.omp_wait_policy
    load0 = os.getloadavg()
    ds_cmd = [a.dsconvert, "eval", cand, "--ref", REF, "--text", TEXT, "--ctx", "256", "--mc", MC,
              "--json", "-q", "--threads", str(a.threads)]
    tf_cmd = [sys.executable, os.path.join(ROOT, "Tests/Reference/eval_reference.py"), cand, "--ref", REF,
              "--text", TEXT, "--ctx", "256", "--mc", MC, "--threads", str(a.threads)]
    ds, tf = [], []
    for r in range(a.rounds):
        out, wall, rss, cpu = timed(ds_cmd)
        d = json.loads(out)
        ds.append((wall, rss, d, cpu))
        print(f"round {r + 1}: dsconvert eval {wall:.1f} s, {cpu:.1f} CPU s (peak RSS {rss:.0f} MB)", file=sys.stderr, flush=True)
        out, wall, rss, cpu = timed(tf_cmd, env)
        t = json.loads(out)
        tf.append((t["seconds"], wall, rss, t, cpu))
        print(f"round {r + 1}: transformers {t['seconds']:.1f} s model time, {wall:.1f} s wall, {cpu:.1f} CPU s (process)", file=sys.stderr, flush=True)
    load1 = os.getloadavg()
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
    cpu_ds, cpu_tf = min(e[3] for e in ds), min(e[4] for e in tf)
    tokens = d["tokens_run"]
    print(f"eval of deepseek-v3-tiny block FP8 vs BF16: eval.txt ({d['candidate']['tokens']:,} scored tokens per model) "
          f"+ {d['candidate']['mc_items']} multiple-choice items, {a.threads} threads, best of {a.rounds}; "
          f"load average {load0[0]:.1f} before, {load1[0]:.1f} after; transformers OMP_WAIT_POLICY={a.omp_wait_policy or 'unset'}")
    print("| | wall time | CPU time | tokens/s | peak RSS | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| dsconvert eval (whole process) | {best_ds[0]:.1f} s | {cpu_ds:.1f} s | {tokens / best_ds[0]:,.0f} | {best_ds[1]:.0f} MB | "
          f"{best_tf[0] / best_ds[0]:.2f}× transformers' model time (CPU time {cpu_tf / cpu_ds:.2f}× its process's) |")
    print(f"| transformers (Tests/Reference/eval_reference.py), model time only | {best_tf[0]:.1f} s "
          f"(process {best_tf[1]:.1f} s) | {cpu_tf:.1f} s (process) | {tokens / best_tf[0]:,.0f} | {best_tf[2]:.0f} MB | 1 |")
    print(f"figures agree: PPL {d['candidate']['perplexity']:.6f} / {t['candidate']['perplexity']:.6f} (cand), "
          f"{d['reference']['perplexity']:.6f} / {t['reference']['perplexity']:.6f} (ref), KL mean {x:.6g} / {y:.6g}")
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
