"""Independent check of a .dspack against Formats/dspack.md and the folder it was packed from.

usage: dspack_check.py PACK SOURCE_DIR
       dspack_check.py --structure-only PACK   (digest, checksums, padding; no source)

Parses the pack with struct, hashlib (SHA-256) and xxhash (XXH3-64) only, checks the header
digest, every entry's checksum, alignment, zero padding, and that the tensors equal those
safetensors.numpy.load_file reads from SOURCE_DIR's .safetensors files (files holding FP8, which
that package cannot give numpy arrays of, are read by the safetensors layout directly) and the embedded files
equal the side files there. Prints one JSON line of what it found; exits 1 on any mismatch.
"""
import hashlib, json, os, struct, sys
import numpy as np
import ml_dtypes  # registers bfloat16 and the FP8 types with numpy for safetensors
import xxhash
from safetensors.numpy import load_file

DTYPES = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64", "C64",
          "F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"]

def fail(msg):
    print(msg, file=sys.stderr); sys.exit(1)

structure_only = sys.argv[1] == "--structure-only"
pack, src = (sys.argv[2], None) if structure_only else (sys.argv[1], sys.argv[2])
data = open(pack, "rb").read()
magic, vmaj, vmin, esize, count, pool, meta, doff, dsize, flags = struct.unpack_from("<8sHHIQQQQQQ", data, 0)
if magic != b"\x89DSPACK\n" or vmaj != 1 or esize != 128 or flags != 0: fail("preamble")
hend = 64 + count * esize + pool + meta
if hashlib.sha256(data[:hend]).digest() != data[hend:hend + 32]: fail("header digest")
if doff != (hend + 32 + 4095) // 4096 * 4096 or dsize % 4096: fail("data offset/size")
if any(data[hend + 32:doff]): fail("padding")
if len(data) != doff + dsize: fail("file size %d != %d" % (len(data), doff + dsize))
pool_start = 64 + count * esize
metadata = json.loads(data[pool_start + pool:hend].decode())
tensors, files, covered = {}, {}, bytearray(dsize)
for i in range(count):
    r = 64 + i * esize
    off, size, x3, noff, nlen, kind, dt, ndim, role, ws, isc, layer, expert, eflags = struct.unpack_from("<QQQIIBBBBIIiiI", data, r)
    shape = struct.unpack_from("<8Q", data, r + 56)[:ndim]
    name = data[pool_start + noff:pool_start + noff + nlen].decode()
    if data[pool_start + noff + nlen] != 0: fail("name NUL")
    if off % 4096: fail("alignment of " + name)
    blob = data[off:off + size]
    if xxhash.xxh3_64_intdigest(blob) != x3: fail("xxh3 of " + name)
    covered[off - doff:off - doff + size] = b"\x01" * size
    if kind == 0: tensors[name] = (DTYPES[dt], list(shape), blob, ws, isc, layer, expert)
    else: files[name] = blob
gaps = bytes(b for b, c in zip(data[doff:], covered) if not c)
if any(gaps): fail("data gaps not zero")
if structure_only:
    print(json.dumps({"tensors": len(tensors), "files": sorted(files)})); sys.exit(0)
def load_raw(path):
    # safetensors.numpy cannot build FP8 arrays (numpy has no float8 names): files holding FP8
    # are read by the safetensors layout itself (u64 LE header length, JSON header, data_offsets
    # relative to the byte buffer after it) into ml_dtypes arrays.
    blob = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    if not any(v["dtype"].startswith("F8") for k, v in header.items() if k != "__metadata__"):
        return load_file(path)
    np_types = {"BF16": ml_dtypes.bfloat16, "F32": np.float32, "F16": np.float16, "F8_E4M3": ml_dtypes.float8_e4m3fn,
                "I8": np.int8, "U8": np.uint8, "I64": np.int64, "I32": np.int32}
    out = {}
    for k, v in header.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype=np_types[v["dtype"]]).reshape(v["shape"])
    return out

ref = {}
for f in sorted(os.listdir(src)):
    if f.endswith(".safetensors"): ref.update(load_raw(os.path.join(src, f)))
if set(ref) != set(tensors): fail("tensor names differ")
import ml_dtypes
NP = {"BF16": ml_dtypes.bfloat16, "F32": np.float32, "F16": np.float16, "F8_E4M3": ml_dtypes.float8_e4m3fn, "I8": np.int8, "U8": np.uint8, "I64": np.int64, "I32": np.int32}
for n, (dt, shape, blob, *_rest) in tensors.items():
    a = ref[n]
    if list(a.shape) != shape: fail("shape of " + n)
    if np.dtype(NP[dt]) != a.dtype: fail("dtype of %s: %s vs %s" % (n, dt, a.dtype))
    if a.tobytes() != blob: fail("bytes of " + n)
side = sorted(f for f in os.listdir(src) if not f.endswith(".safetensors") and f != "model.safetensors.index.json" and not f.startswith("."))
if sorted(files) != side: fail("files %s vs %s" % (sorted(files), side))
for f in side:
    if open(os.path.join(src, f), "rb").read() != files[f]: fail("file " + f)
order = list(tensors)
scale_links = {n: order[t[3]] for n, t in tensors.items() if t[3] != 0xFFFFFFFF}
print(json.dumps({"tensors": len(tensors), "files": sorted(files), "digest": data[hend:hend + 32].hex(),
                  "scale_links": scale_links, "metadata_files": metadata.get("files"),
                  "layers": {n: t[5] for n, t in tensors.items()}, "experts": {n: t[6] for n, t in tensors.items() if t[6] >= 0}}))
