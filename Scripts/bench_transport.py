#!/usr/bin/env python3
"""`make bench-transport`: the .dspack.zst transport file (`pack --zstd`, `decompress`) against the
`zstd` command on the same pack in the same run, on BF16 and block-FP8 weights of the samples and
of a synthetic DeepSeek-V3 checkpoint (synth --scale 1/64, 667 MB).

usage: bench_transport.py DSCONVERT [WORK_DIR] [THREADS]
For each pack: the size ratio (pack bytes / transport bytes) with byte planes, without, and of
`zstd -3 -T<threads>` on the whole pack file; compression and restore speed in MB/s of pack bytes,
median of the repeats, each run alternating with the reference. `decompress` includes verifying the
restored pack (header digest, every XXH3-64); `zstd -d` does not verify anything.
"""
import json, os, shutil, statistics, subprocess, sys, time

BIN = os.path.abspath(sys.argv[1])
WORK = sys.argv[2] if len(sys.argv) > 2 else "/tmp/dsconvert-bench-transport"
T = sys.argv[3] if len(sys.argv) > 3 else "2"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.makedirs(WORK, exist_ok=True)


def run(*args):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{p.stderr}")
    return p.stdout


def timed(*args):
    t = time.perf_counter()
    out = run(*args)
    return time.perf_counter() - t, out


def inputs():
    ds = os.path.join(ROOT, "Samples", "deepseek-v3-tiny")
    yield "deepseek-v3-tiny BF16", ds
    yield "qwen2-tiny BF16", os.path.join(ROOT, "Samples", "qwen2-tiny")
    fp8 = os.path.join(WORK, "ds-tiny-fp8")
    if not os.path.isdir(fp8):
        run(BIN, "quantize", "--fp8", ds, fp8, "--quiet")
    yield "deepseek-v3-tiny block FP8", fp8
    syn = os.path.join(WORK, "synth")
    if not os.path.isdir(syn):
        run(BIN, "synth", "--arch", "deepseek-v3", "--scale", "1/64", syn, "--quiet")
    yield "synthetic deepseek-v3 1/64 BF16", syn
    sfp8 = os.path.join(WORK, "synth-fp8")
    if not os.path.isdir(sfp8):
        run(BIN, "quantize", "--fp8", syn, sfp8, "--quiet", "--threads", T)
    yield "synthetic deepseek-v3 1/64 block FP8", sfp8


rows = []
for label, src in inputs():
    pack = os.path.join(WORK, "p.dspack")
    run(BIN, "pack", src, pack, "--quiet")
    size = os.path.getsize(pack)
    repeats = 5 if size < 100e6 else 2
    z1, z0, zr, back = (os.path.join(WORK, n) for n in ("planes.zst", "plain.zst", "ref.zst", "back.dspack"))
    t = {k: [] for k in ("planes", "plain", "zstd", "restore", "unzstd")}
    for _ in range(repeats):
        s, out = timed(BIN, "pack", "--zstd", pack, z1, "--json", "--threads", T)
        t["planes"].append(s)
        by = json.loads(out)["by_dtype"]
        s, out = timed(BIN, "pack", "--zstd", "--no-planes", pack, z0, "--json", "--threads", T)
        t["plain"].append(s)
        by0 = json.loads(out)["by_dtype"]
        s, _ = timed("zstd", "-3", f"-T{T}", "-q", "-f", pack, "-o", zr)
        t["zstd"].append(s)
        s, _ = timed(BIN, "decompress", z1, back, "--quiet", "--threads", T)
        t["restore"].append(s)
        s, _ = timed("zstd", "-d", "-q", "-f", zr, "-o", back + ".ref")
        t["unzstd"].append(s)
    with open(back, "rb") as a, open(pack, "rb") as b:
        assert a.read() == b.read(), "restored pack differs"
    med = {k: statistics.median(v) for k, v in t.items()}
    mbs = {k: size / v / 1e6 for k, v in med.items()}
    r = {"label": label, "pack_bytes": size,
         "ratio_planes": size / os.path.getsize(z1), "ratio_plain": size / os.path.getsize(z0), "ratio_zstd_cli": size / os.path.getsize(zr),
         "mb_s": mbs, "by_dtype": {k: v["raw"] / max(v["stored"], 1) for k, v in by.items()},
         "by_dtype_no_planes": {k: v["raw"] / max(v["stored"], 1) for k, v in by0.items()}}
    rows.append(r)
    by_none = r["by_dtype_no_planes"]
    print(f"{label}: {size / 1e6:.1f} MB; ratio {r['ratio_planes']:.3f} with planes, {r['ratio_plain']:.3f} without, "
          f"zstd -3 {r['ratio_zstd_cli']:.3f}; per dtype (planes / none) "
          f"{', '.join(f'{k} {v:.3f} / {by_none[k]:.3f}' for k, v in sorted(r['by_dtype'].items()))}; "
          f"compress {mbs['planes']:.0f} MB/s (no planes {mbs['plain']:.0f}, zstd {mbs['zstd']:.0f}); "
          f"decompress+verify {mbs['restore']:.0f} MB/s (zstd -d {mbs['unzstd']:.0f})", flush=True)
    for f in (z1, z0, zr, back, back + ".ref", pack):
        if os.path.exists(f):
            os.remove(f)
print(json.dumps(rows, indent=1))
