"""Runs the Python .dspack reader (Formats/python/dspack) on a pack written by dsconvert and
compares it with safetensors' reading of the source folder; then corrupts copies of the pack and
reports the error code the reader gives for each.

usage: dspack_python_reader.py PACK SOURCE_DIR SCRATCH_DIR
Prints JSON: {"tensors", "mismatched", "dtypes", "files", "files_equal", "verify", "corruptions"}.
"""
import glob, json, os, shutil, struct, sys

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Formats", "python"))
import dspack  # noqa: E402

pack_path, src, scratch = sys.argv[1:4]
ref = {}
for f in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
    ref.update(load_file(f))

p = dspack.open(pack_path)
arrays = p.tensors()
mismatched = [n for n, a in ref.items()
              if n not in arrays or p.raw(n).tobytes() != a.tobytes() or tuple(a.shape) != p.entry(n).shape]
extra = sorted(set(arrays) - set(ref))
zero_copy = all(isinstance(a, np.ndarray) and not a.flags.owndata and not a.flags.writeable for a in arrays.values())
files_equal = all(p.file(n) == open(os.path.join(src, n), "rb").read() for n in p.file_names())
out = {
    "tensors": len(arrays), "mismatched": sorted(mismatched), "extra": extra, "zero_copy": zero_copy,
    "dtypes": {n: str(a.dtype) for n, a in arrays.items()},
    "files": sorted(p.file_names()), "files_equal": files_equal,
    "verify": [e.code for e in p.verify(raise_on_error=False)],
}

data = open(pack_path, "rb").read()
_, _, _, esize, count, pool, meta = struct.unpack_from("<8sHHIQQQ", data, 0)
header_end = 64 + count * esize + pool + meta
victim = next(e for e in p.entries if e.kind == 0 and e.data_size > 0)
gapped = next(e for e in p.entries if e.data_size % 4096)
out["victim"], out["gapped"] = victim.name, gapped.name


def code_of(name, mutate, verify=False):
    b = bytearray(data)
    b = mutate(b) or b
    path = os.path.join(scratch, name + ".dspack")
    with open(path, "wb") as f:
        f.write(b)
    try:
        q = dspack.open(path)
        if verify:
            fs = q.verify(raise_on_error=False)
            return [[e.code, e.entry] for e in fs] or None
        return None
    except dspack.DSPackError as e:
        return e.code


def setb(i, v):
    def m(b):
        b[i] ^= v
    return m


out["corruptions"] = {
    "short": code_of("short", lambda b: b[:63]),
    "magic": code_of("magic", setb(0, 0x01)),
    "version": code_of("version", setb(8, 0x02)),
    "entry_count_huge": code_of("entry_count", lambda b: b.__setitem__(slice(16, 24), struct.pack("<Q", 1 << 62))),
    "header_byte": code_of("header_byte", setb(64 + 3, 0x10)),
    "digest_byte": code_of("digest_byte", setb(header_end + 5, 0x01)),
    "padding_byte": code_of("padding_byte", setb(header_end + 32, 0x01)),
    "truncated_data": code_of("truncated_data", lambda b: b[:len(b) - 4096]),
    "appended": code_of("appended", lambda b: b + b"\0"),
    "tensor_byte": code_of("tensor_byte", setb(victim.data_offset, 0x01), verify=True),
    "gap_byte": code_of("gap_byte", setb(gapped.data_offset + gapped.data_size, 0x01), verify=True),
}
print(json.dumps(out))
