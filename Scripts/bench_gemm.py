#!/usr/bin/env python3
"""`make bench-gemm`: the engine's matrix product against numpy's float32 matmul (OpenBLAS sgemm).

For every distinct decoder weight shape of each model, `dsconvert-bench gemm MODEL --rows M --json`
times Linear.apply (decode the stored tile, pack, micro-kernel; all threads) and this script times
numpy `x @ w.T` on the same [M x K] x [K x N] in float32 with the same threads, alternating the two
sides for --rounds rounds and keeping each side's best. Prints GFLOP/s per shape and the
count-weighted ratio (the issue's target: >= 0.7x sgemm).

usage: bench_gemm.py [DSCONVERT_BENCH] [--models a,b] [--rows 256] [--rounds 3] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def engine(bench, model, rows, threads):
    cmd = [bench, "gemm", model, "--rows", str(rows), "--json"] + (["--threads", str(threads)] if threads else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout)


def numpy_gflops(m, k, n, repeats=20):
    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        x @ w.T
        best = min(best, time.perf_counter() - t)
    return 2.0 * m * n * k / best / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench", nargs="?", default=os.path.join(ROOT, ".build/release/dsconvert-bench"))
    ap.add_argument("--models", default="qwen2-tiny,llama-tiny,deepseek-v3-tiny")
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[v] = str(a.threads)
    print("| model | weight | M x K x N | encoding | dsconvert GFLOP/s | numpy sgemm GFLOP/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in a.models.split(","):
        model = os.path.join(ROOT, "Samples", name)
        best_e, best_n = {}, {}
        for _ in range(a.rounds):
            for s in engine(a.bench, model, a.rows, a.threads)["shapes"]:
                key = s["name"]
                best_e[key] = max(best_e.get(key, (0, s))[0], s["gflops"]), s
                best_n[key] = max(best_n.get(key, 0), numpy_gflops(s["m"], s["k"], s["n"]))
        fl_e = fl_n = flops = 0.0
        for key, (g, s) in best_e.items():
            f = 2.0 * s["m"] * s["k"] * s["n"] * s["count"]
            flops += f; fl_e += f / g; fl_n += f / best_n[key]
            print(f"| {name} | {key.split('.', 3)[-1]} x{s['count']} | {s['m']} x {s['k']} x {s['n']} | {s['encoding']} "
                  f"| {g:.1f} | {best_n[key]:.1f} | {g / best_n[key]:.2f}x |")
        print(f"| {name} | all (count-weighted) | | | {flops / fl_e:.1f} | {flops / fl_n:.1f} | **{fl_n / fl_e:.2f}x** |")


if __name__ == "__main__":
    main()
