#!/usr/bin/env python3
"""Checks that UNPACKED holds what ORIGINAL holds, as the Python `safetensors` package reads them.

usage: unpack_check.py ORIGINAL UNPACKED

Both are safetensors folders. Every *.safetensors file of ORIGINAL must be in UNPACKED with the
same tensors (names, dtypes, shapes, bytes) and the same __metadata__, read by
`safetensors.deserialize` and `safe_open` (the Rust reader); UNPACKED must hold no other
safetensors file; model.safetensors.index.json, when ORIGINAL has one, must map every tensor to
the same file with the same metadata; every other file of ORIGINAL must be byte-equal in
UNPACKED. Prints {"tensors": N, "bytes": B, "files": [...]} and exits 1 at the first difference.
"""
import json
import os
import sys

from st_common import fail, require_packages

INDEX = "model.safetensors.index.json"


def listing(d):
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    require_packages()
    from safetensors import deserialize, safe_open

    original, unpacked = sys.argv[1], sys.argv[2]
    a, b = listing(original), listing(unpacked)
    if a != b:
        fail(f"the folders hold different files: {a} vs {b}")
    tensors = total = 0
    for name in a:
        pa, pb = os.path.join(original, name), os.path.join(unpacked, name)
        if name.endswith(".safetensors"):
            ta, tb = deserialize(read(pa)), deserialize(read(pb))
            da = {n: (t["dtype"], list(t["shape"]), bytes(t["data"])) for n, t in ta}
            db = {n: (t["dtype"], list(t["shape"]), bytes(t["data"])) for n, t in tb}
            if sorted(da) != sorted(db):
                fail(f"{name}: different tensor names: {sorted(set(da) ^ set(db))[:5]}")
            for n in da:
                if da[n][:2] != db[n][:2]:
                    fail(f"{name}: {n}: {da[n][:2]} vs {db[n][:2]}")
                if da[n][2] != db[n][2]:
                    fail(f"{name}: {n}: the bytes differ")
                total += len(da[n][2])
            tensors += len(da)
            with safe_open(pa, framework="numpy") as fa, safe_open(pb, framework="numpy") as fb:
                if fa.metadata() != fb.metadata():
                    fail(f"{name}: __metadata__ {fa.metadata()} vs {fb.metadata()}")
        elif name == INDEX:
            ia, ib = json.loads(read(pa)), json.loads(read(pb))
            if ia["weight_map"] != ib["weight_map"]:
                fail(f"{INDEX}: the weight maps differ")
            if ia.get("metadata") != ib.get("metadata"):
                fail(f"{INDEX}: metadata {ia.get('metadata')} vs {ib.get('metadata')}")
        elif read(pa) != read(pb):
            fail(f"{name}: the bytes differ")
    print(json.dumps({"tensors": tensors, "bytes": total, "files": a}))


if __name__ == "__main__":
    main()
