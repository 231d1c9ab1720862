#!/usr/bin/env python3
"""Independent reference for dsconvert's `quantize` and `dequantize` output (numpy + ml_dtypes).

    python3 quant_reference.py MODE INPUT_DIR OUTPUT_DIR [--ignore REGEX ...] [--block-size N]
                               [--shard-size BYTES]

MODE is what produced OUTPUT_DIR from INPUT_DIR:

    fp8-block      quantize --fp8                       (DeepSeek layout, F32 weight_scale_inv)
    fp8-tensor     quantize --fp8 --granularity tensor  (compressed-tensors)
    fp8-channel    quantize --fp8 --granularity channel (compressed-tensors)
    int8-channel   quantize --int8                      (compressed-tensors)
    int8-tensor    quantize --int8 --granularity tensor (compressed-tensors)
    dequant-bf16 | dequant-f16 | dequant-f32            dequantize --to X (INPUT_DIR is quantized)

The script recomputes, from INPUT_DIR alone, every tensor the output must hold (name, dtype,
shape, raw bytes, the file it lives in), the config.json changes, the index and the copied side
files, and compares them with OUTPUT_DIR. Options mirror dsconvert's: `--ignore` keeps every
module (tensor name without `.weight`) that the regex finds (`re.search`) unquantized and must be
listed in the config (`ignored_layers` in the DeepSeek layout; covered by `ignore`, read the way
compressed-tensors reads it, in the other); `--block-size` is the block edge; `--shard-size`
re-chunks the output: tensors in input order (files in index order, then by data offset), each
input tensor's outputs (a weight and its scale) kept together, a new file
`model-{i:05d}-of-{n:05d}.safetensors` started whenever the next group would make the current
file (8-byte length, compact JSON header padded to 8 bytes, data) larger than BYTES; the index is
always written then. It prints one JSON object:

    {"mode", "input", "output", "tensors": N, "quantized": N, "dequantized": N,
     "mismatch_count": N, "mismatches": ["...", ...] (at most 100), "seconds": S}

and exits 0 whether or not there are mismatches (the caller asserts mismatch_count == 0); it
exits 2 when numpy / ml_dtypes are missing or the input cannot be read.

Arithmetic (docs/reference.md), written here without any of dsconvert's code:

* block FP8 (DeepSeek): w32 = f32(w); per 128x128 block (edge blocks smaller) amax = max|w32|;
  scale = max(amax, f32(1e-12)) / 448 (f32); q = e4m3(clip(w32 / scale, -448, 448)) with a true
  f32 division; the scale is stored F32 as `weight_scale_inv`, shape [ceil(r/128), ceil(c/128)].
* compressed-tensors (D = the model dtype from config.json, e.g. bf16), as torch computes it:
  amax per tensor ([1]) or per output row ([rows, 1]); scale = D(amax / D(range / 2)) with
  range / 2 = 448 (FP8) or 127.5 (INT8); scale == 0 -> finfo(D).eps; x = D(D(w) / scale);
  FP8: e4m3(clip(x + 0, ±448)); INT8: rint(clip(x, -128, 127)) (round half to even). The scale
  is stored in D as `weight_scale`. A weight stored in another float dtype W than D (an F32
  weight in a BF16 model) is computed in W, its scale rounded to D (eps(D) if 0) before
  x = W(w / scale), so that q is computed from the scale as stored. The `+ 0` is compressed-tensors' (all-zero) zero point, which
  its `_quantize` always adds (`scaled += zero_point`): it turns -0.0 into +0.0, so a -0.0 weight
  becomes FP8 0x00, not 0x80. The block layout has no zero point and keeps 0x80.
* dequantize: out = X(S(f32(q) * f32(scale))) with S the scale's dtype (f32 for the block
  layout, D for compressed-tensors) and X the target dtype, every rounding RNE. With a
  `weight_zero_point` zp (asymmetric compressed-tensors): out = X(S(S(S(q) - S(zp)) * scale)),
  compressed-tensors' `_dequantize` in the scale dtype.
"""

import json
import os
import re
import struct
import sys
import time

try:
    import numpy as np
    import ml_dtypes
except ImportError as e:  # the Swift test shows this and fails
    sys.stderr.write(f"quant_reference.py: missing Python package ({e}); run `make test`, which installs numpy and ml_dtypes\n")
    sys.exit(2)

BF16 = ml_dtypes.bfloat16
E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2

DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
    "F16": np.float16, "BF16": BF16, "I32": np.int32, "U32": np.uint32,
    "F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64,
    "F8_E4M3": E4M3, "F8_E5M2": E5M2,
}
FLOAT_NAMES = {"bf16": "BF16", "f16": "F16", "f32": "F32"}
NP_OF = {"BF16": BF16, "F16": np.float16, "F32": np.float32}
TORCH_NAME = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
TORCH_TO_ST = {"bfloat16": "BF16", "float16": "F16", "float32": "F32", "half": "F16", "float": "F32"}
EPS = {"BF16": np.float32(2.0 ** -7), "F16": np.float32(2.0 ** -10), "F32": np.float32(2.0 ** -23)}

# The linear projections quantized by default (embeddings, lm_head, norms, the MoE router
# `mlp.gate`, its bias and the MTP layer's eh_proj / shared_head.head are not).
QUANTIZED_BY_DEFAULT = re.compile(
    r"(^|\.)(self_attn\.(q_proj|k_proj|v_proj|o_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj)"
    r"|mlp\.(experts\.\d+\.|shared_experts\.)?(gate_proj|up_proj|down_proj))\.weight$")

MAX_REPORTED = 100


class Report:
    def __init__(self):
        self.items = []
        self.count = 0

    def add(self, message):
        self.count += 1
        if len(self.items) < MAX_REPORTED:
            self.items.append(message)


# ---------------------------------------------------------------- safetensors reading

def read_safetensors(path):
    """(tensors {name: (dtype, shape, raw bytes)} in data-offset order, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        b, end = e["data_offsets"]
        out[name] = (e["dtype"], list(e["shape"]), data[base + b:base + end])
    return out, meta


def as_array(entry):
    dtype, shape, raw = entry
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)


class Checkpoint:
    def __init__(self, directory):
        self.dir = directory
        self.files = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
        self.index = load_json(os.path.join(directory, "model.safetensors.index.json"))
        # Input order: the files in the order the index first names them, then the rest sorted.
        listed = list(dict.fromkeys(((self.index or {}).get("weight_map") or {}).values()))
        self.order = [f for f in listed if f in self.files] + [f for f in self.files if f not in listed]
        self.tensors = {}   # name -> (dtype, shape, raw)
        self.file_of = {}   # name -> file
        self.metadata = {}  # file -> metadata
        for f in self.order:
            ts, meta = read_safetensors(os.path.join(directory, f))
            self.metadata[f] = meta
            for name, entry in ts.items():
                self.tensors[name] = entry
                self.file_of[name] = f
        self.config = load_json(os.path.join(directory, "config.json"))

    def array(self, name):
        return as_array(self.tensors[name])


def load_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------- the arithmetic

def block_fp8(w, block):
    """DeepSeek block FP8: (q as e4m3 [r, c], scale_inv f32 [ceil(r/b), ceil(c/b)])."""
    w32 = w.astype(np.float32)
    r, c = w32.shape
    rb, cb = -(-r // block), -(-c // block)
    padded = np.zeros((rb * block, cb * block), dtype=np.float32)
    padded[:r, :c] = np.abs(w32)
    amax = padded.reshape(rb, block, cb, block).max(axis=(1, 3))
    scale = (np.maximum(amax, np.float32(1e-12)) / np.float32(448.0)).astype(np.float32)
    full = np.repeat(np.repeat(scale, block, axis=0), block, axis=1)[:r, :c]
    x = np.clip(w32 / full, np.float32(-448.0), np.float32(448.0))
    return x.astype(E4M3), scale


def round_to(x32, st_dtype):
    """f32 values rounded (RNE) to the dtype, returned as f32 again."""
    return x32.astype(NP_OF[st_dtype]).astype(np.float32)


def compressed_tensors(w, d, target, per_channel, wd=None):
    """compressed-tensors symmetric quantization of a weight stored in `wd` (BF16/F16/F32; the
    model dtype `d` when None) whose scale is stored in the model dtype `d`.
    Returns (q as e4m3 or int8 [r, c], scale as np dtype d, [1] or [r, 1]).

    The arithmetic runs in the weight's dtype wd. When wd != d (an F32 weight in a BF16 model) the
    scale is rounded to d (eps(d) if that gives 0) before q is computed, so q is computed from the
    scale exactly as stored."""
    wd = wd or d
    w32 = w.astype(np.float32)  # exact: w is stored in wd
    r, _ = w32.shape
    a = np.abs(w32)
    amax = a.max(axis=1, keepdims=True) if per_channel else a.max().reshape(1)
    half = round_to(np.float32(448.0 if target == "fp8" else 127.5), wd)
    scale = round_to((amax / half).astype(np.float32), wd)
    scale = np.where(scale == 0, EPS[wd], scale).astype(np.float32)
    if wd != d:
        scale = round_to(scale, d)
        scale = np.where(scale == 0, EPS[d], scale).astype(np.float32)
    x = round_to((w32 / (scale if per_channel else scale[0])).astype(np.float32), wd)
    if target == "fp8":
        x = (x + np.float32(0.0)).astype(np.float32)  # compressed-tensors' zero point: -0 -> +0
        q = np.clip(x, np.float32(-448.0), np.float32(448.0)).astype(E4M3)
    else:
        q = np.rint(np.clip(x, np.float32(-128.0), np.float32(127.0))).astype(np.int8)
    return q, scale.astype(NP_OF[d])


def dequantize(q, scale, block, scale_dtype, out_dtype, zero_point=None):
    """out = X(S(f32(q) * f32(scale))), with per-block (block != None), per-row or scalar scales.
    With a zero point (asymmetric compressed-tensors), compressed-tensors' `_dequantize` in the
    scale dtype S: out = X(S(S(S(q) - S(zp)) * scale))."""
    q32 = q.astype(np.float32)
    s32 = scale.astype(np.float32)
    r, c = q32.shape
    if block is not None:
        s = np.repeat(np.repeat(s32, block[0], axis=0), block[1], axis=1)[:r, :c]
    elif s32.size == 1:
        s = s32.reshape(())
    else:
        s = s32.reshape(r, 1)
    if zero_point is not None:
        z = round_to(zero_point.astype(np.float32).reshape(s.shape), scale_dtype)
        q32 = round_to((q32 - z).astype(np.float32), scale_dtype)
    v = (q32 * s).astype(np.float32)
    v = round_to(v, scale_dtype)
    return v.astype(NP_OF[out_dtype])


# ---------------------------------------------------------------- what the output must hold

def model_dtype(config):
    name = (config or {}).get("torch_dtype") or (config or {}).get("dtype") or "bfloat16"
    return TORCH_TO_ST.get(name, "BF16")


def find_quantized(ck):
    """{weight name: (scale name, layout)} for every quantized weight of a checkpoint."""
    found = {}
    for name, (dtype, shape, _) in ck.tensors.items():
        if not name.endswith(".weight") or dtype not in ("F8_E4M3", "I8") or len(shape) != 2:
            continue
        module = name[: -len(".weight")]
        if module + ".weight_scale_inv" in ck.tensors:
            found[name] = (module + ".weight_scale_inv", "block")
        elif module + ".weight_scale" in ck.tensors:
            found[name] = (module + ".weight_scale", "ct")
    return found


def block_size_of(config):
    q = (config or {}).get("quantization_config") or {}
    b = q.get("weight_block_size") or [128, 128]
    return (int(b[0]), int(b[1]))


def plain_weight(ck, name, quantized, d):
    """The weight `name` as a plain array in dtype d (dequantizing quantized input first)."""
    if name not in quantized:
        return ck.array(name)
    scale_name, layout = quantized[name]
    scale = ck.array(scale_name)
    block = None
    if layout == "block" or (scale.ndim == 2 and scale.shape[1] != 1):
        block = block_size_of(ck.config)
    zp_name = name[: -len(".weight")] + ".weight_zero_point"
    zp = ck.array(zp_name) if zp_name in ck.tensors else None
    return dequantize(ck.array(name), scale, block, ck.tensors[scale_name][0], d, zp)


def consumed_by(ck, quantized):
    """Scale and extra tensors that belong to already-quantized weights (not output on their own)."""
    consumed = set()
    for w, (s, _) in quantized.items():
        consumed.add(s)
        m = w[: -len(".weight")]
        for extra in (".input_scale", ".weight_zero_point", ".input_zero_point"):
            if m + extra in ck.tensors:
                consumed.add(m + extra)
    return consumed


def expected_quantize(ck, mode, ignore, block):
    """[(file, name, dtype, shape, bytes)] in input order, and counts."""
    d = model_dtype(ck.config)
    quantized_in = find_quantized(ck)
    consumed = consumed_by(ck, quantized_in)
    regexes = [re.compile(p) for p in ignore]
    out = []
    nq = 0
    for name, (dtype, shape, raw) in ck.tensors.items():
        if name in consumed:
            continue
        f = ck.file_of[name]
        module = name[: -len(".weight")] if name.endswith(".weight") else name
        wanted = bool(QUANTIZED_BY_DEFAULT.search(name)) and not any(r.search(module) for r in regexes)
        if name in quantized_in and not wanted:
            a = plain_weight(ck, name, quantized_in, d)
            out.append((f, name, d, list(shape), a.tobytes()))
            continue
        if not wanted:
            out.append((f, name, dtype, list(shape), raw))
            continue
        w = plain_weight(ck, name, quantized_in, d)
        nq += 1
        if mode == "fp8-block":
            q, s = block_fp8(w, block)
            out.append((f, name, "F8_E4M3", list(shape), q.tobytes()))
            out.append((f, module + ".weight_scale_inv", "F32", list(s.shape), s.tobytes()))
        else:
            target, gran = mode.split("-")
            wd = d if name in quantized_in else dtype
            q, s = compressed_tensors(w, d, target, gran == "channel", wd)
            out.append((f, name, "F8_E4M3" if target == "fp8" else "I8", list(shape), q.tobytes()))
            out.append((f, module + ".weight_scale", d, list(s.shape), s.tobytes()))
    return out, nq, d


def header_json_length(entries):
    """Bytes of the compact JSON header dsconvert's writer (and safetensors) lays out for
    [(name, dtype, shape, nbytes)], before padding."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    return len(json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def rechunk(expected, limit):
    """Reassigns the files of `expected` ([(file, name, dtype, shape, bytes)], in input order,
    a weight's scale right after it) for --shard-size `limit`."""
    groups = []  # each: the outputs of one input tensor
    for e in expected:
        if groups and e[1] in (groups[-1][0][1] + "_scale_inv", groups[-1][0][1] + "_scale"):
            groups[-1].append(e)
        else:
            groups.append([e])
    files, current = [], []

    def size(entries):
        data = sum(len(e[4]) for e in entries)
        return 8 + -(-header_json_length([(e[1], e[2], e[3], len(e[4])) for e in entries]) // 8) * 8 + data

    for g in groups:
        if current and size(current + g) > limit:
            files.append(current)
            current = []
        current = current + g
    if current or not files:
        files.append(current)
    n = len(files)
    return [(f"model-{i + 1:05d}-of-{n:05d}.safetensors",) + tuple(e[1:]) for i, entries in enumerate(files) for e in entries]


def expected_dequantize(ck, target):
    quantized = find_quantized(ck)
    if not quantized:
        raise SystemExit(f"quant_reference.py: {ck.dir} holds no quantized weight")
    consumed = consumed_by(ck, quantized)
    out = []
    for name, (dtype, shape, raw) in ck.tensors.items():
        if name in consumed:
            continue
        f = ck.file_of[name]
        if name in quantized:
            out.append((f, name, target, list(shape), plain_weight(ck, name, quantized, target).tobytes()))
        else:
            out.append((f, name, dtype, list(shape), raw))
    return out, len(quantized)


# ---------------------------------------------------------------- comparing

def describe_difference(name, dtype, shape, want, got):
    npd = DTYPES[dtype]
    a = np.frombuffer(want, dtype=npd)
    b = np.frombuffer(got, dtype=npd)
    bits = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    ai, bi = a.view(bits), b.view(bits)
    diff = np.nonzero(ai != bi)[0]
    i = int(diff[0])
    idx = tuple(int(v) for v in np.unravel_index(i, shape)) if shape else ()
    w = a.astype(np.float64)[i] if dtype != "BOOL" else a[i]
    g = b.astype(np.float64)[i] if dtype != "BOOL" else b[i]
    width = a.dtype.itemsize * 2
    return (f"{name}: {len(diff)} of {a.size} elements differ; first at {list(idx)}: "
            f"reference {w!r} (0x{int(ai[i]):0{width}x}), dsconvert {g!r} (0x{int(bi[i]):0{width}x})")


def compare_tensors(expected, out_ck, rep):
    seen = set()
    for f, name, dtype, shape, want in expected:
        seen.add(name)
        if name not in out_ck.tensors:
            rep.add(f"{name}: missing from the output")
            continue
        if out_ck.file_of[name] != f:
            rep.add(f"{name}: in {out_ck.file_of[name]}, expected in {f}")
        gdtype, gshape, got = out_ck.tensors[name]
        if gdtype != dtype:
            rep.add(f"{name}: dtype {gdtype}, expected {dtype}")
            continue
        if gshape != shape:
            rep.add(f"{name}: shape {gshape}, expected {shape}")
            continue
        if got != want:
            if len(got) != len(want):
                rep.add(f"{name}: {len(got)} bytes, expected {len(want)}")
            else:
                rep.add(describe_difference(name, dtype, shape, want, got))
    for name in out_ck.tensors:
        if name not in seen:
            rep.add(f"{name}: in the output ({out_ck.file_of[name]}) but not expected")
    expected_files = sorted({e[0] for e in expected})
    if out_ck.files != expected_files:
        rep.add(f"output files {out_ck.files}, expected {expected_files}")
    for f, meta in out_ck.metadata.items():
        if meta != {"format": "pt"}:
            rep.add(f"{f}: __metadata__ {meta}, expected {{'format': 'pt'}}")


def compare_index(in_ck, out_ck, expected, rep, always=False):
    if in_ck.index is None and len(out_ck.files) <= 1 and not always:
        if out_ck.index is not None:
            rep.add("model.safetensors.index.json written for a single-file checkpoint")
        return
    if out_ck.index is None:
        rep.add("model.safetensors.index.json missing")
        return
    wm = out_ck.index.get("weight_map", {})
    want = {name: f for f, name, *_ in expected}
    if wm != want:
        extra = sorted(set(wm) - set(want))[:5]
        missing = sorted(set(want) - set(wm))[:5]
        wrong = sorted(k for k in set(wm) & set(want) if wm[k] != want[k])[:5]
        rep.add(f"index weight_map differs: extra {extra}, missing {missing}, wrong file {wrong}")
    meta = out_ck.index.get("metadata", {})
    total = sum(len(e[4]) for e in expected)
    if meta.get("total_size") != total:
        rep.add(f"index total_size {meta.get('total_size')}, expected {total}")
    for k, v in ((in_ck.index or {}).get("metadata") or {}).items():
        if k != "total_size" and meta.get(k) != v:
            rep.add(f"index metadata {k!r}: {meta.get(k)!r}, input had {v!r}")


def compare_side_files(in_dir, out_dir, rep):
    for f in sorted(os.listdir(in_dir)):
        p = os.path.join(in_dir, f)
        if (not os.path.isfile(p) or f.endswith(".safetensors") or f in ("config.json", "model.safetensors.index.json")
                or f.endswith((".bin", ".pth", ".pt"))):
            continue
        q = os.path.join(out_dir, f)
        if not os.path.exists(q):
            rep.add(f"{f}: not copied to the output")
        else:
            with open(p, "rb") as a, open(q, "rb") as b:
                if a.read() != b.read():
                    rep.add(f"{f}: copied with different bytes")


def check_config_quantize(in_ck, out_ck, mode, ignore, block, rep):
    cin, cout = in_ck.config, out_ck.config
    if cin is None:
        return
    if cout is None:
        rep.add("config.json missing from the output")
        return
    for k, v in cin.items():
        if k != "quantization_config" and cout.get(k) != v:
            rep.add(f"config.json {k!r}: {cout.get(k)!r}, input had {v!r}")
    for k in cout:
        if k not in cin and k not in ("quantization_config", "torch_dtype"):
            rep.add(f"config.json: unexpected new key {k!r}")
    q = cout.get("quantization_config")
    if not isinstance(q, dict):
        rep.add("config.json has no quantization_config")
        return

    def want(key, value, where=q, label="quantization_config"):
        if where.get(key) != value:
            rep.add(f"{label}.{key}: {where.get(key)!r}, expected {value!r}")

    regexes = [re.compile(p) for p in ignore]
    default_modules = sorted(n[: -len(".weight")] for n in in_ck.tensors if QUANTIZED_BY_DEFAULT.search(n))
    kept = [m for m in default_modules if any(r.search(m) for r in regexes)]
    if mode == "fp8-block":
        want("quant_method", "fp8")
        want("fmt", "e4m3")
        want("activation_scheme", "dynamic")
        want("weight_block_size", [block, block])
        if kept:
            want("ignored_layers", kept)
        elif "ignored_layers" in q:
            rep.add(f"quantization_config.ignored_layers {q['ignored_layers']!r} without --ignore")
        return
    target, gran = mode.split("-")
    fmt = "float-quantized" if target == "fp8" else "int-quantized"
    typ = "float" if target == "fp8" else "int"
    want("quant_method", "compressed-tensors")
    want("format", fmt)
    want("quantization_status", "compressed")
    groups = q.get("config_groups")
    if not isinstance(groups, dict) or len(groups) != 1:
        rep.add(f"quantization_config.config_groups: expected one group, got {groups!r}")
        return
    (gname, g), = groups.items()
    want("targets", ["Linear"], g, f"config_groups.{gname}")
    w = g.get("weights") or {}
    for key, value in (("num_bits", 8), ("type", typ), ("strategy", gran), ("symmetric", True), ("dynamic", False)):
        want(key, value, w, f"config_groups.{gname}.weights")
    a = g.get("input_activations") or {}
    for key, value in (("num_bits", 8), ("type", typ), ("strategy", "token"), ("symmetric", True), ("dynamic", True)):
        want(key, value, a, f"config_groups.{gname}.input_activations")
    ig = q.get("ignore") or []
    names = set(in_ck.tensors)

    def covered(module):  # how compressed-tensors reads `ignore`: exact names and `re:` matches
        return module in ig or any(p.startswith("re:") and re.match(p[3:], module) for p in ig)

    for m in default_modules:
        if covered(m) != (m in kept):
            rep.add(f"quantization_config.ignore {ig} {'covers' if covered(m) else 'does not cover'} {m}, "
                    f"which was {'kept' if m in kept else 'quantized'}")
    if "lm_head.weight" in names and "lm_head" not in ig:
        rep.add(f"quantization_config.ignore {ig} lacks lm_head")
    if any(re.search(r"mlp\.gate\.weight$", n) for n in names):
        router = [n[: -len(".weight")] for n in names if re.search(r"mlp\.gate\.weight$", n)]
        pats = [p[3:] for p in ig if p.startswith("re:")]
        for m in router:
            if m not in ig and not any(re.match(p, m) for p in pats):
                rep.add(f"quantization_config.ignore {ig} does not cover the router {m}")
                break


def check_config_dequantize(in_ck, out_ck, target, rep):
    cin, cout = in_ck.config, out_ck.config
    if cin is None:
        return
    if cout is None:
        rep.add("config.json missing from the output")
        return
    want = {k: v for k, v in cin.items() if k != "quantization_config"}
    # The dtype key(s) the input uses (transformers 5 writes `dtype`); torch_dtype when neither.
    keys = [k for k in ("torch_dtype", "dtype") if k in cin] or ["torch_dtype"]
    for k in keys:
        want[k] = TORCH_NAME[target]
    if cout != want:
        keys = sorted(set(want) | set(cout))
        diff = [k for k in keys if want.get(k, "<absent>") != cout.get(k, "<absent>")]
        rep.add(f"config.json differs from the input minus quantization_config with torch_dtype {TORCH_NAME[target]}: keys {diff}")


# ---------------------------------------------------------------- main

MODES = ("fp8-block", "fp8-tensor", "fp8-channel", "int8-channel", "int8-tensor",
         "dequant-bf16", "dequant-f16", "dequant-f32")


def main(argv):
    args = list(argv)
    ignore, block, shard_size = [], 128, None
    while "--ignore" in args:
        i = args.index("--ignore")
        ignore.append(args[i + 1])
        del args[i:i + 2]
    if "--block-size" in args:
        i = args.index("--block-size")
        block = int(args[i + 1])
        del args[i:i + 2]
    if "--shard-size" in args:
        i = args.index("--shard-size")
        shard_size = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3 or args[0] not in MODES:
        sys.stderr.write(__doc__)
        return 2
    mode, in_dir, out_dir = args
    start = time.monotonic()
    in_ck, out_ck = Checkpoint(in_dir), Checkpoint(out_dir)
    rep = Report()
    counts = {"quantized": 0, "dequantized": 0}
    if mode.startswith("dequant-"):
        target = FLOAT_NAMES[mode.split("-")[1]]
        expected, counts["dequantized"] = expected_dequantize(in_ck, target)
        check_config_dequantize(in_ck, out_ck, target, rep)
    else:
        expected, counts["quantized"], _ = expected_quantize(in_ck, mode, ignore, block)
        check_config_quantize(in_ck, out_ck, mode, ignore, block, rep)
    if shard_size is not None:
        expected = rechunk(expected, shard_size)
    compare_tensors(expected, out_ck, rep)
    compare_index(in_ck, out_ck, expected, rep, always=shard_size is not None)
    compare_side_files(in_dir, out_dir, rep)
    print(json.dumps({
        "mode": mode, "input": in_dir, "output": out_dir, "tensors": len(expected),
        "quantized": counts["quantized"], "dequantized": counts["dequantized"],
        "mismatch_count": rep.count, "mismatches": rep.items,
        "seconds": round(time.monotonic() - start, 3),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
