#!/usr/bin/env python3
"""Independent reference data for the Numerics tests (Tests/NumericsTests).

Every result is produced by numpy 2 / ml_dtypes `astype` (or np.rint / np.clip for INT8), never
by re-implementing the conversions, and written as raw little-endian binary files:

  python3 numerics_reference.py conversions OUTDIR [--count N] [--seed S]
  python3 numerics_reference.py xxhash OUTDIR [--seed S]

`conversions` writes (format names: f32, f16, bf16, e4m3 = float8_e4m3fn, e5m2 = float8_e5m2):

  exhaustive_<src>.bin            every bit pattern of <src> (65,536 for bf16/f16, 256 for fp8)
  exhaustive_<src>_to_<dst>.bin   astype(<dst>) of it, for dst in f32, bf16, f16, e4m3, e5m2
                                  (dst == src too: astype to the same dtype is a copy)
  exhaustive_<src>_to_<dst>_sat.bin   dst in e4m3/e5m2: astype(dst) of np.clip(x, -max, max)
                                  (max = 448 / 57344); NaN gives the dst NaN code 0x7F / 0x7E | sign
  random_f32.bin                  N float32 values (uniform bit patterns, exact ties, overflow
                                  thresholds, specials, log-uniform values), fixed seed
  random_to_<dst>.bin             astype(<dst>) for dst in bf16, f16, e4m3, e5m2
  random_to_<dst>_sat.bin         dst in e4m3/e5m2, as for the exhaustive _sat files
  int8_f32.bin                    float32 inputs for INT8 (ties k+0.5, range edges, ±inf, NaN)
  int8_full.bin / int8_sym.bin    np.rint then np.clip to [-128,127] / [-127,127], as int8;
                                  NaN gives 0 (the documented contract of FloatBits.f32ToInt8)
  manifest.txt                    name and element count of every file

`xxhash` (needs the `xxhash` package) writes xxh_data.bin (the concatenated random buffers) and
xxh_cases.bin: one little-endian uint64 quadruple (offset, length, seed, xxh64) per case.
xxh3_cases.bin: one little-endian uint64 triple (offset, length, xxh3_64 with seed 0) per length.
"""

import argparse
import os
import sys
import warnings


def fail(msg):
    sys.stderr.write(msg + "\n")
    sys.exit(2)


try:
    import numpy as np
    import ml_dtypes
except ImportError as e:  # pragma: no cover - environment problem
    fail(f"numerics_reference.py: cannot import numpy/ml_dtypes ({e}). "
         "Run `make test`, which installs the Python test dependencies (numpy, ml_dtypes, xxhash).")

FORMATS = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "e4m3": np.dtype(ml_dtypes.float8_e4m3fn),
    "e5m2": np.dtype(ml_dtypes.float8_e5m2),
}
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32}
SAT_MAX = {"e4m3": 448.0, "e5m2": 57344.0}
SAT_NAN = {"e4m3": 0x7F, "e5m2": 0x7E}

# Exhaustive pairs: every source bit pattern to each listed target.
# The same-format pair (astype to its own dtype, a copy) checks that bulk conversion keeps every
# bit pattern, NaN payloads included.
EXHAUSTIVE = {
    "bf16": ["f32", "f16", "e4m3", "e5m2", "bf16"],
    "f16": ["f32", "bf16", "e4m3", "e5m2", "f16"],
    "e4m3": ["f32", "bf16", "f16", "e5m2", "e4m3"],
    "e5m2": ["f32", "bf16", "f16", "e4m3", "e5m2"],
}
RANDOM_TARGETS = ["bf16", "f16", "e4m3", "e5m2"]


def bits_of(a):
    a = np.ascontiguousarray(a)
    return a.view(UINT[a.dtype.itemsize])


def from_bits(u, fmt):
    return np.ascontiguousarray(u).view(FORMATS[fmt])


def cast(x, fmt):
    """x (any float dtype) astype the target format, with numpy's cast warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return x.astype(FORMATS[fmt])


def saturating(x, fmt):
    """ml_dtypes' conversion of np.clip(x, -max, max); NaN gives the format's NaN with the sign."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            x32 = x.astype(np.float32)
            m = SAT_MAX[fmt]
            out = bits_of(np.clip(x32, -m, m).astype(FORMATS[fmt])).copy()
            nan = np.isnan(x32)
            neg = (bits_of(x32) >> 31).astype(bool)
            out[nan] = np.where(neg[nan], 0x80 | SAT_NAN[fmt], SAT_NAN[fmt]).astype(np.uint8)
            return out


class Writer:
    def __init__(self, outdir):
        self.outdir = outdir
        self.manifest = []
        os.makedirs(outdir, exist_ok=True)

    def write(self, name, arr):
        arr = np.ascontiguousarray(arr)
        if arr.dtype.itemsize > 1:
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        with open(os.path.join(self.outdir, name), "wb") as f:
            f.write(arr.tobytes())
        self.manifest.append(f"{name} {arr.size}")

    def finish(self):
        with open(os.path.join(self.outdir, "manifest.txt"), "w") as f:
            f.write("\n".join(self.manifest) + "\n")


# MARK: random float32 inputs

def all_finite_codes(fmt):
    n = 1 << (8 * FORMATS[fmt].itemsize)
    codes = np.arange(n, dtype=np.uint64).astype(UINT[FORMATS[fmt].itemsize])
    vals = from_bits(codes, fmt).astype(np.float32)
    return vals[np.isfinite(vals)]


def exact_ties(rng, fmt, n):
    """Exact halfway points between adjacent representable values of `fmt` (both signs, every
    exponent including subnormals), plus the f32 neighbours on either side of each tie."""
    vals = np.unique(np.abs(all_finite_codes(fmt)).astype(np.float64))  # sorted, exact
    lo = vals[:-1]
    hi = vals[1:]
    mids = ((lo + hi) / 2).astype(np.float32)  # exact: narrow formats have <= 10 mantissa bits
    assert np.all(mids.astype(np.float64) == (lo + hi) / 2)
    # The tie above the largest finite value (the overflow threshold), e.g. 464 for e4m3.
    top = vals[-1] + (vals[-1] - vals[-2]) / 2
    mids = np.concatenate([mids, np.array([top], dtype=np.float32)])
    pick = mids[rng.integers(0, mids.size, n)]
    # One third exact, one third one f32 ulp below, one third one ulp above.
    which = rng.integers(0, 3, n)
    out = pick.copy()
    out[which == 1] = np.nextafter(pick[which == 1], np.float32(0))
    out[which == 2] = np.nextafter(pick[which == 2], np.float32(np.inf))
    sign = rng.integers(0, 2, n).astype(bool)
    out[sign] = -out[sign]
    # Also every tie exactly once, both signs, so no midpoint is left to chance.
    return np.concatenate([out, mids, -mids])


def bf16_ties(rng, n):
    """f32 patterns whose low 16 bits sit at or next to the bf16 halfway point."""
    hi = rng.integers(0, 1 << 16, n, dtype=np.uint64).astype(np.uint32) << 16
    low = np.array([0x8000, 0x7FFF, 0x8001, 0x0000, 0xFFFF], dtype=np.uint32)[rng.integers(0, 5, n)]
    return (hi | low).view(np.float32)


def thresholds(rng, n):
    """Values within a few hundred f32 ulps of the overflow thresholds and the formats' max."""
    ts = np.array([448, 464, 480, 57344, 61440, 65504, 65520, 65536,
                   np.finfo(np.float32).max], dtype=np.float32)
    base = bits_of(ts[rng.integers(0, ts.size, n)]).astype(np.int64)
    off = rng.integers(-300, 301, n)
    b = np.clip(base + off, 0, 0x7F800000).astype(np.uint32)
    sign = rng.integers(0, 2, n).astype(np.uint32) << 31
    dense = []
    for t in ts:  # every pattern within ±64 ulps, both signs
        tb = int(bits_of(np.array([t], dtype=np.float32))[0])
        r = np.arange(max(0, tb - 64), min(0x7F800000, tb + 64) + 1, dtype=np.uint32)
        dense += [r, r | np.uint32(0x80000000)]
    return np.concatenate([(b | sign)] + dense).view(np.float32)


def specials():
    pats = [
        0x00000000, 0x80000000, 0x7F800000, 0xFF800000,  # ±0, ±inf
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00000, 0x7FFFFFFF, 0xFFFFFFFF,
        0x7F802000, 0x7F801FFF, 0xFF801FFF, 0x7F804000, 0x7FBFE000, 0x7FC00001, 0x7FFFE000,
        0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000,
        0x7F7F7FFF, 0x7F7F8001,
    ]
    vals = [2.0 ** -10, 2.0 ** -17, 2.0 ** -25, 2.0 ** -24, 2.0 ** -9, 2.0 ** -16, 2.0 ** -14,
            2.0 ** -6, 1.5 * 2.0 ** -10, 1.5 * 2.0 ** -17, 1.5 * 2.0 ** -25, 1.0, 0.5]
    a = np.array(pats, dtype=np.uint32).view(np.float32)
    v = np.array(vals, dtype=np.float32)
    return np.concatenate([a, v, -v])


def log_uniform(rng, n):
    """Random mantissas over the exponents the narrow formats cover (2^-30 .. 2^20)."""
    e = rng.integers(127 - 30, 127 + 20, n, dtype=np.uint64).astype(np.uint32)
    m = rng.integers(0, 1 << 23, n, dtype=np.uint64).astype(np.uint32)
    s = rng.integers(0, 2, n, dtype=np.uint64).astype(np.uint32)
    return ((s << 31) | (e << 23) | m).view(np.float32)


def random_inputs(count, seed):
    """max(count, ~10^6/16 fixed) values: ties and thresholds take count/16 each per group."""
    rng = np.random.default_rng(seed)
    parts = [specials()]
    n_tie = max(1, count // 16)
    for fmt in ["e4m3", "e5m2", "f16"]:
        parts.append(exact_ties(rng, fmt, n_tie))
    parts.append(bf16_ties(rng, n_tie))
    parts.append(thresholds(rng, max(1, count // 16)))
    parts.append(log_uniform(rng, count // 4))
    used = sum(p.size for p in parts)
    n_uni = max(0, count - used)
    parts.append(rng.integers(0, 1 << 32, n_uni, dtype=np.uint64).astype(np.uint32).view(np.float32))
    x = np.concatenate(parts).astype(np.float32)
    # Keep the specials at the front (easy to read in a failure message), shuffle the rest.
    head = parts[0].size
    tail = x[head:]
    return np.concatenate([x[:head], tail[rng.permutation(tail.size)]])


def int8_inputs(seed):
    rng = np.random.default_rng(seed + 1)
    k = np.arange(-300, 301, dtype=np.float32)
    ties = np.concatenate([k + np.float32(0.5), k, k - np.float32(0.25), k + np.float32(0.25)])
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    edges = np.array([127.5, -128.5, -127.5, 126.5, 128.0, -129.0, 1e10, -1e10, 3.4e38, -3.4e38,
                      np.inf, -np.inf, np.nan, -np.nan, 0.0, -0.0, 1e-45, -1e-45, 8388609.0,
                      -8388609.0, 16777216.0], dtype=np.float32)
    uni = rng.uniform(-400, 400, 200_000).astype(np.float32)
    bitsr = rng.integers(0, 1 << 32, 50_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([edges, ties, near, uni, bitsr]).astype(np.float32)


def int8_reference(x, lo, hi):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            r = np.clip(np.rint(x), lo, hi)
            r = np.where(np.isnan(r), 0, r)
            return r.astype(np.int8)


def conversions(outdir, count, seed):
    w = Writer(outdir)
    for src, targets in EXHAUSTIVE.items():
        size = FORMATS[src].itemsize
        codes = np.arange(1 << (8 * size), dtype=np.uint64).astype(UINT[size])
        w.write(f"exhaustive_{src}.bin", codes)
        x = from_bits(codes, src)
        for dst in targets:
            w.write(f"exhaustive_{src}_to_{dst}.bin", bits_of(cast(x, dst)))
            if dst in SAT_MAX:
                w.write(f"exhaustive_{src}_to_{dst}_sat.bin", saturating(x, dst))
    x = random_inputs(count, seed)
    w.write("random_f32.bin", bits_of(x))
    for dst in RANDOM_TARGETS:
        w.write(f"random_to_{dst}.bin", bits_of(cast(x, dst)))
        if dst in SAT_MAX:
            w.write(f"random_to_{dst}_sat.bin", saturating(x, dst))
    xi = int8_inputs(seed)
    w.write("int8_f32.bin", bits_of(xi))
    w.write("int8_full.bin", int8_reference(xi, -128, 127).view(np.uint8))
    w.write("int8_sym.bin", int8_reference(xi, -127, 127).view(np.uint8))
    w.finish()


def xxhash_cases(outdir, seed):
    try:
        import xxhash
    except ImportError as e:
        fail(f"numerics_reference.py: cannot import xxhash ({e}). "
             "Run `make test`, which installs the Python test dependencies (numpy, ml_dtypes, xxhash).")
    rng = np.random.default_rng(seed)
    lengths = list(range(0, 101)) + [127, 128, 129, 255, 256, 1000, 4096 + 7, 65536 + 31, (1 << 20) + 3]
    w = Writer(outdir)
    chunks, cases, cases3, off = [], [], [], 0
    for i, n in enumerate(lengths):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        cases3 += [off, n, xxhash.xxh3_64_intdigest(data)]
        for s in ([0, int(rng.integers(0, 1 << 63, dtype=np.uint64)) * 2 + 1, (1 << 64) - 1] if i % 7 == 0 else [0]):
            s &= (1 << 64) - 1
            cases += [off, n, s, xxhash.xxh64_intdigest(data, seed=s)]
        chunks.append(data)
        off += n
    w.write("xxh_data.bin", np.frombuffer(b"".join(chunks), dtype=np.uint8))
    w.write("xxh_cases.bin", np.array(cases, dtype=np.uint64))
    w.write("xxh3_cases.bin", np.array(cases3, dtype=np.uint64))
    w.finish()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["conversions", "xxhash"])
    p.add_argument("outdir")
    p.add_argument("--count", type=int, default=4_000_000, help="random float32 inputs (default 4M)")
    p.add_argument("--seed", type=int, default=20240531)
    a = p.parse_args()
    if a.mode == "conversions":
        conversions(a.outdir, a.count, a.seed)
    else:
        xxhash_cases(a.outdir, a.seed)


if __name__ == "__main__":
    main()
