#!/usr/bin/env python3
"""What each quantization scheme costs on the sample models: `make eval-table`.

For every sample model (deepseek-v3-tiny, qwen2-tiny, llama-tiny) this quantizes the BF16
original with each scheme `dsconvert quantize` offers (block FP8, per-channel FP8, per-tensor FP8,
per-channel INT8 W8A8), runs `dsconvert eval CAND --ref BF16 --text Samples/eval.txt --ctx 256
--mc Samples/eval_mc.jsonl --json` on each, and prints the Markdown table the README shows
(perplexity, ppl ratio, mean and p99 KL, same top-1, Δp RMS, multiple-choice accuracy raw and
normalised, for the BF16 reference and each candidate). Only the standard library is used.

With `--schemes static-int8-kl,...` (or `--static`: all of them) it also measures static W8A8:
each sample is calibrated on Samples/calib.txt (`dsconvert calibrate --method kl|percentile|mse|
minmax --target int8|fp8`) and quantized with `--act static --ranges` before the eval. The
`static-int8-M-sqALPHA` schemes calibrate with `--smooth ALPHA` (SmoothQuant, folded by quantize).

usage: eval_table.py [DSCONVERT] [--models a,b] [--schemes a,b | --static] [--work DIR] [--json FILE]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["deepseek-v3-tiny", "qwen2-tiny", "llama-tiny"]
SCHEMES = {
    "fp8-block": (["--fp8"], "FP8 block 128×128 (DeepSeek)"),
    "fp8-channel": (["--fp8", "--granularity", "channel"], "FP8 per channel (FP8_DYNAMIC)"),
    "fp8-tensor": (["--fp8", "--granularity", "tensor"], "FP8 per tensor"),
    "int8": (["--int8"], "INT8 per channel (W8A8 dynamic)"),
}
# Static activations: `dsconvert calibrate REF --text Samples/calib.txt --method M --target T`
# (calibration text never overlaps eval.txt), then `quantize ... --act static --ranges`.
STATIC = {
    "int8": (["--int8"], "INT8 W8A8 static"),
    "fp8": (["--fp8", "--granularity", "tensor"], "FP8 static (per tensor)"),
}
METHODS = ["kl", "percentile", "mse", "minmax"]
for t, (flags, label) in STATIC.items():
    for m in METHODS:
        SCHEMES[f"static-{t}-{m}"] = (flags + ["--act", "static"], f"{label}, {m}", (m, t))
# SmoothQuant (INT8 W8A8): calibrate --smooth ALPHA, s folded by quantize --ranges.
for alpha in ["0.5", "0.8"]:
    for m in METHODS:
        SCHEMES[f"static-int8-{m}-sq{alpha}"] = (STATIC["int8"][0] + ["--act", "static"],
                                                    f"{STATIC['int8'][1]}, {m}, SmoothQuant α {alpha}", (m, "int8", None, alpha))
# The INT8-style KL (128 uniform levels) used for an FP8 checkpoint: the comparison the FP8-aware
# KL is for (its ranges are relabelled --target fp8, which quantize otherwise refuses on purpose).
SCHEMES["static-fp8-kl-int8grid"] = (STATIC["fp8"][0] + ["--act", "static"], "FP8 static (per tensor), kl on the INT8 grid", ("kl", "int8", "fp8", None))
DEFAULT_SCHEMES = ["fp8-block", "fp8-channel", "fp8-tensor", "int8"]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    return p.stdout


def evaluate(bin_, cand, ref, threads):
    cmd = [bin_, "eval", cand, "--ref", ref, "--text", os.path.join(ROOT, "Samples/eval.txt"),
           "--ctx", "256", "--mc", os.path.join(ROOT, "Samples/eval_mc.jsonl"), "--json", "-q"]
    if threads:
        cmd += ["--threads", str(threads)]
    return json.loads(run(cmd))


def pct(x):
    return f"{100 * x:.2f} %"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsconvert", nargs="?", default=os.path.join(ROOT, ".build/release/dsconvert"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--schemes", default=",".join(DEFAULT_SCHEMES))
    ap.add_argument("--static", action="store_true", help="the static W8A8 schemes (every calibration method, INT8 and FP8)")
    ap.add_argument("--work", help="folder for the quantized models (default: a temporary one, removed)")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json", help="also write every eval report here")
    a = ap.parse_args()
    if a.static:
        a.schemes = ",".join(k for k in SCHEMES if k.startswith("static-"))
    work = a.work or tempfile.mkdtemp(prefix="dsconvert-eval-table-")
    reports = {}
    rows = []
    started = time.time()
    try:
        for m in a.models.split(","):
            ref = os.path.join(ROOT, "Samples", m)
            first = True
            for s in a.schemes.split(","):
                flags, label, *calib = SCHEMES[s]
                out = os.path.join(work, f"{m}-{s}")
                if calib:
                    method, target, *rest = calib[0]
                    relabel = [rest[0]] if rest and rest[0] else []
                    smooth = rest[1] if len(rest) > 1 else None
                    ranges = os.path.join(work, f"{m}-{method}-{target}" + (f"-sq{smooth}" if smooth else "") + ".ranges.json")
                    if not os.path.exists(ranges):
                        print(f"calibrate {m} {method} {target}" + (f" --smooth {smooth}" if smooth else "") + " ...", file=sys.stderr, flush=True)
                        run([a.dsconvert, "calibrate", ref, "--text", os.path.join(ROOT, "Samples/calib.txt"),
                             "--method", method, "--target", target, "-o", ranges, "-q"] + (["--smooth", smooth] if smooth else []))
                    if relabel:
                        with open(ranges) as f:
                            r = json.load(f)
                        r["target"] = relabel[0]
                        ranges = ranges.replace(".ranges.json", f"-as-{relabel[0]}.ranges.json")
                        with open(ranges, "w") as f:
                            json.dump(r, f)
                    flags = flags + ["--ranges", ranges]
                if not os.path.exists(os.path.join(out, "config.json")):
                    run([a.dsconvert, "quantize", *flags, ref, out, "-q"])
                print(f"eval {m} {s} ...", file=sys.stderr, flush=True)
                r = evaluate(a.dsconvert, out, ref, a.threads)
                reports[f"{m}/{s}"] = r
                c, b, k = r["candidate"], r["reference"], r["comparison"]
                if first:
                    rows.append(f"| {m} | BF16 (reference) | {b['perplexity']:.4f} | 1 | | | | | "
                                f"{pct(b['mc_accuracy'])} | {pct(b['mc_accuracy_norm'])} |")
                    first = False
                rows.append(
                    f"| | {label} | {c['perplexity']:.4f} | {k['ppl_ratio']:.6f} ± {k['ppl_ratio_error']:.6f} | "
                    f"{k['kl_mean']:.6f} | {k['kl_p99']:.5f} | {pct(k['top1_agreement'])} | "
                    f"{pct(k['delta_p_rms'])} | {pct(c['mc_accuracy'])} | {pct(c['mc_accuracy_norm'])} |")
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print("| model | weights | perplexity | PPL ratio | mean KL | p99 KL | same top-1 | Δp RMS | MC acc. | MC acc. (norm.) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n({len(reports)} evaluations in {time.time() - started:.0f} s)", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(reports, f, indent=1)


if __name__ == "__main__":
    main()
