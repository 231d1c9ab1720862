#!/usr/bin/env python3
"""`make bench-pack`: the .dspack figures of issue 18, each beside its reference from the same run.

usage: bench_pack.py DSCONVERT DSCONVERT_BENCH [WORK_DIR] [THREADS]

1. `dsconvert verify --threads T` (every XXH3-64 and zero gap) of a multi-GB pack, in GB/s,
   against `sha256sum` and `cat FILE > /dev/null` of the same file; page cache warm, runs
   alternating, median of the repeats.  Target: at least half of cat's speed.
2. Open (mapping, header digest, every open check) to a pointer to the first tensor
   (`dsconvert-bench open`, median of 10 in one process, page cache warm) for a ~10 MB and a
   ~10 GB pack with the same tensor names (synth --arch llama at two widths).  Target: at most
   5 ms, the same within noise.
3. `dsconvert pack` of the multi-GB checkpoint against `cp -r` of it (sync before every run, the
   write-back not timed for either; best and median of the repeats).  Target: at least 0.8x.
4. The Python reader (Formats/python/dspack) loading every tensor into memory against
   `safetensors.numpy.load_file` of the same tensors (Formats/python/bench/load_bench.py).

Everything is made in WORK_DIR (default /tmp/dsconvert-bench-pack; ~30 GB of disk) and kept
for the next run; `--json` results go to WORK_DIR/bench_pack.json.
"""
import json, os, shutil, statistics, subprocess, sys, time

BIN = os.path.abspath(sys.argv[1])
BENCH = os.path.abspath(sys.argv[2])
WORK = sys.argv[3] if len(sys.argv) > 3 else "/tmp/dsconvert-bench-pack"
T = sys.argv[4] if len(sys.argv) > 4 else "2"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.makedirs(WORK, exist_ok=True)
SECTIONS = os.environ.get("BENCH_SECTIONS", "1 2 3 4").split()


def run(*args, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if p.returncode:
        sys.exit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def timed(*args, **kw):
    t = time.perf_counter()
    out = run(*args, **kw)
    return time.perf_counter() - t, out


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def checkpoint(name, *synth_args):
    d = os.path.join(WORK, name)
    if not os.path.isfile(os.path.join(d, "config.json")):
        print(f"(synth {' '.join(synth_args)} -> {d})", flush=True)
        run(BIN, "synth", *synth_args, d, "--quiet")
    return d


def packed(src, name):
    p = os.path.join(WORK, name)
    if not os.path.isfile(p):
        run(BIN, "pack", src, p, "--quiet", "--threads", T)
    return p


def size_of(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


results = {"threads": int(T)}
big_src = checkpoint("llama-half", "--arch", "llama", "--scale", "1/2", "--shards", "3")  # 4.7 GB
big = packed(big_src, "llama-half.dspack")
gb = os.path.getsize(big) / 1e9

if "1" in SECTIONS:
    print(f"== 1. verify of a {gb:.2f} GB pack, {T} threads, page cache warm (median of 5, alternating)", flush=True)
    warm(big); warm(big)
    t = {"verify": [], "sha256sum": [], "cat": []}
    for _ in range(5):
        s, out = timed(BIN, "verify", big, "--threads", T, "--json")
        assert json.loads(out)["files"][0]["ok"]
        t["verify"].append(s)
        t["sha256sum"].append(timed("sha256sum", big)[0])
        t["cat"].append(timed("sh", "-c", f"cat '{big}' > /dev/null")[0])
    g = {k: gb / statistics.median(v) for k, v in t.items()}
    results["verify"] = {"bytes": os.path.getsize(big), "gb_s": g, "ratio_to_cat": g["verify"] / g["cat"], "ratio_to_sha256sum": g["verify"] / g["sha256sum"]}
    print(f"verify {g['verify']:.2f} GB/s | sha256sum {g['sha256sum']:.2f} GB/s -> {g['verify'] / g['sha256sum']:.1f}x | "
          f"cat {g['cat']:.2f} GB/s -> {g['verify'] / g['cat']:.2f}x cat (target >= 0.5x)", flush=True)

if "2" in SECTIONS:
    print("== 2. open -> pointer to the first tensor, page cache warm, median of 10", flush=True)
    small_src = checkpoint("llama-small-68", "--arch", "llama", "--scale", "1/64", "--layers", "68")
    large_src = checkpoint("llama-half-68", "--arch", "llama", "--scale", "1/2", "--layers", "68", "--shard-size", "2GB")
    rows = []
    for label, src, name in (("small", small_src, "llama-small-68.dspack"), ("large", large_src, "llama-half-68.dspack")):
        p = packed(src, name)
        if label == "large":
            shutil.rmtree(src)  # only the pack is needed; keep the disk
        with open(p, "rb") as f:
            f.read(1 << 22)  # the header pages warm (open reads nothing else)
        r = json.loads(run(BENCH, "open", p, "--repeats", "10", "--json"))
        rows.append({"label": label, "bytes": os.path.getsize(p), **{k: r[k] for k in ("median_ms", "best_ms", "worst_ms")}})
        print(f"{os.path.getsize(p) / 1e9:8.3f} GB pack: median {r['median_ms']:.3f} ms (best {r['best_ms']:.3f}, worst {r['worst_ms']:.3f}) (target <= 5 ms)", flush=True)
    results["open"] = rows
    print(f"large / small median: {rows[1]['median_ms'] / rows[0]['median_ms']:.2f}x", flush=True)

if "3" in SECTIONS:
    src_gb = size_of(big_src) / 1e9
    print(f"== 3. pack of the {src_gb:.2f} GB checkpoint vs cp -r, {T} threads (sync before each run; median and best of 3, alternating)", flush=True)
    out, cp = os.path.join(WORK, "pack-out.dspack"), os.path.join(WORK, "cp-out")
    for f in os.listdir(big_src):
        warm(os.path.join(big_src, f))
    t = {"pack": [], "cp": []}
    for _ in range(3):
        for p in (out,):
            if os.path.exists(p):
                os.remove(p)
        shutil.rmtree(cp, ignore_errors=True)
        run("sync")
        t["pack"].append(timed(BIN, "pack", big_src, out, "--quiet", "--threads", T)[0])
        run("sync")
        t["cp"].append(timed("cp", "-r", big_src, cp)[0])
        os.remove(out); shutil.rmtree(cp); run("sync")
    med = {k: src_gb / statistics.median(v) for k, v in t.items()}
    best = {k: src_gb / min(v) for k, v in t.items()}
    results["pack"] = {"bytes": size_of(big_src), "gb_s_median": med, "gb_s_best": best, "ratio_median": med["pack"] / med["cp"], "ratio_best": best["pack"] / best["cp"]}
    print(f"pack {med['pack']:.2f} GB/s (best {best['pack']:.2f}) | cp -r {med['cp']:.2f} GB/s (best {best['cp']:.2f}) -> "
          f"{med['pack'] / med['cp']:.2f}x cp median, {best['pack'] / best['cp']:.2f}x best (target >= 0.8x)", flush=True)

if "4" in SECTIONS:
    print("== 4. Python reader, every tensor into memory vs safetensors.numpy.load_file (median of the repeats, alternating)", flush=True)
    lb = os.path.join(ROOT, "Formats", "python", "bench", "load_bench.py")
    syn = checkpoint("ds-synth-64", "--arch", "deepseek-v3", "--scale", "1/64")
    rows = []
    for label, src, reps in (("deepseek-v3-tiny sample", os.path.join(ROOT, "Samples", "deepseek-v3-tiny"), "10"),
                             ("synthetic DeepSeek-V3 1/64 (163 shards)", syn, "3"),
                             ("synthetic llama 1/2, 3 shards", big_src, "3")):
        p = packed(src, os.path.basename(src.rstrip("/")) + ".dspack")
        out = run(sys.executable, lb, p, src, reps, "--json")
        r = json.loads(out.strip().splitlines()[-1])
        r["label"] = label
        rows.append(r)
        print(f"{label}: {r['tensors']} tensors, {r['bytes'] / 1e6:.1f} MB: dspack reader {r['dspack_s'] * 1e3:.1f} ms ({r['bytes'] / r['dspack_s'] / 1e9:.2f} GB/s) | "
              f"load_file {r['safetensors_s'] * 1e3:.1f} ms ({r['bytes'] / r['safetensors_s'] / 1e9:.2f} GB/s) -> {r['safetensors_s'] / r['dspack_s']:.2f}x", flush=True)
    results["python_load"] = rows

with open(os.path.join(WORK, "bench_pack.json"), "w") as f:
    json.dump(results, f, indent=1)
