"""Loading every tensor into memory: the Python .dspack reader against safetensors.numpy.load_file.

usage: python3 Formats/python/bench/load_bench.py PACK SAFETENSORS_DIR [repeats]
Both sides end with every tensor's bytes in process memory (the reader's mmap views are copied
with np.array(copy=True), as load_file copies); runs alternate, the median of each is printed
with the ratio. Page cache warm (one untimed run of each first).
"""
import glob, os, statistics, sys, time

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import dspack  # noqa: E402

pack, src = sys.argv[1], sys.argv[2]
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 10
files = sorted(glob.glob(os.path.join(src, "*.safetensors")))


def ours():
    p = dspack.open(pack)
    return {n: np.array(a, copy=True) for n, a in p.tensors().items()}


def reference():
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


a, b = ours(), reference()
assert all(a[n].tobytes() == b[n].tobytes() for n in b)
total = sum(x.nbytes for x in b.values())
t_ours, t_ref = [], []
for _ in range(repeats):
    t = time.perf_counter(); ours(); t_ours.append(time.perf_counter() - t)
    t = time.perf_counter(); reference(); t_ref.append(time.perf_counter() - t)
mo, mr = statistics.median(t_ours), statistics.median(t_ref)
print(f"{len(b)} tensors, {total / 1e6:.1f} MB: dspack reader {mo * 1e3:.2f} ms ({total / mo / 1e9:.2f} GB/s), "
      f"safetensors.numpy.load_file {mr * 1e3:.2f} ms ({total / mr / 1e9:.2f} GB/s), ratio {mr / mo:.2f}x")
