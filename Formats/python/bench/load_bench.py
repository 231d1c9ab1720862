"""Loading every tensor into memory: the Python .dspack reader against safetensors.numpy.load_file.

usage: python3 Formats/python/bench/load_bench.py PACK SAFETENSORS_DIR [repeats] [--json]
Both sides end with every tensor's bytes in process memory (the reader's mmap views are copied
with np.array(copy=True), as load_file copies); runs alternate, the median of each is printed
with the ratio. Page cache warm (one untimed run of each first, which also checks that both give
the same names and bytes). --json prints one JSON line instead.
"""
import glob, json, os, statistics, sys, time

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import dspack  # noqa: E402

args = [a for a in sys.argv[1:] if a != "--json"]
as_json = "--json" in sys.argv[1:]
pack, src = args[0], args[1]
repeats = int(args[2]) if len(args) > 2 else 10
files = sorted(glob.glob(os.path.join(src, "*.safetensors")))


def ours():
    p = dspack.open(pack)
    return {n: np.array(a, copy=True) for n, a in p.tensors().items()}


def reference():
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


# The check, one side in memory at a time beside the other's mapping (multi-GB checkpoints).
b = reference()
total, count = sum(x.nbytes for x in b.values()), len(b)
views = dspack.open(pack).tensors()
assert sorted(views) == sorted(b), "the pack's tensor names differ from the folder's"
assert all(views[n].shape == b[n].shape and views[n].tobytes() == b[n].tobytes() for n in b), "tensor bytes differ"
del b, views
ours()
t_ours, t_ref = [], []
for _ in range(repeats):
    t = time.perf_counter(); x = ours(); t_ours.append(time.perf_counter() - t); del x
    t = time.perf_counter(); x = reference(); t_ref.append(time.perf_counter() - t); del x
mo, mr = statistics.median(t_ours), statistics.median(t_ref)
if as_json:
    print(json.dumps({"tensors": count, "bytes": total, "repeats": repeats, "dspack_s": mo, "safetensors_s": mr, "ratio": mr / mo}))
else:
    print(f"{count} tensors, {total / 1e6:.1f} MB: dspack reader {mo * 1e3:.2f} ms ({total / mo / 1e9:.2f} GB/s), "
          f"safetensors.numpy.load_file {mr * 1e3:.2f} ms ({total / mr / 1e9:.2f} GB/s), ratio {mr / mo:.2f}x")
