"""An independent restorer of .dspack.zst transport files (Formats/dspack.md §10), written from
the spec with struct, numpy and the `zstd` command (not libzstd through dsconvert).

usage: dspack_transport.py TRANSPORT OUT_PACK
Writes the restored pack and prints JSON: {"pack_size", "frames": [[transform, raw, stored], ...]}.
"""
import json, struct, subprocess, sys

import numpy as np

WIDTH = {5: 2, 6: 2, 9: 4, 10: 8}  # F16, BF16, F32, F64: the dtypes split into planes
BLOCK = 1 << 20                    # elements per plane block

src, dst = sys.argv[1:3]
t = open(src, "rb").read()
magic, version, flags, pack_size = struct.unpack_from("<8sIIQ", t, 0)
assert magic == b"DSPKZST\0" and version == 1 and flags == 0, (magic, version, flags)
at, frames = 24, []
while at < len(t):
    transform, reserved, raw, stored = struct.unpack_from("<B7sQQ", t, at)
    assert reserved == bytes(7)
    frames.append((transform, raw, t[at + 24:at + 24 + stored]))
    at += 24 + stored
assert at == len(t)


def unzstd(b):
    return subprocess.run(["zstd", "-d", "-c", "-q"], input=b, capture_output=True, check=True).stdout


def decode(transform, raw, stored, width):
    if transform == 0:
        return stored
    b = unzstd(stored)
    assert len(b) == raw, (len(b), raw)
    if transform == 1:
        return b
    assert transform == 2 and width > 1 and raw % width == 0
    out = bytearray(raw)
    for s in range(0, raw, BLOCK * width):
        blk = np.frombuffer(b, np.uint8, count=min(BLOCK * width, raw - s), offset=s)
        n = len(blk) // width
        out[s:s + len(blk)] = blk.reshape(width, n).T.tobytes()
    return bytes(out)


header = decode(frames[0][0], frames[0][1], frames[0][2], 1)
esize, count = struct.unpack_from("<IQ", header, 12)
data_offset, data_size = struct.unpack_from("<QQ", header, 40)
pack = bytearray(pack_size)
pack[:len(header)] = header
for i in range(count):
    off, size = struct.unpack_from("<QQ", header, 64 + i * esize)
    kind, dtype = header[64 + i * esize + 32], header[64 + i * esize + 33]
    tr, raw, stored = frames[1 + i]
    assert raw == size
    pack[off:off + size] = decode(tr, raw, stored, WIDTH.get(dtype, 1) if kind == 0 else 1)
if len(frames) == count + 2:
    tr, raw, stored = frames[-1]
    pack[data_offset + data_size:] = decode(tr, raw, stored, 1)
else:
    assert len(frames) == count + 1
open(dst, "wb").write(pack)
print(json.dumps({"pack_size": pack_size, "frames": [[f[0], f[1], len(f[2])] for f in frames]}))
