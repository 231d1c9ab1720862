#!/usr/bin/env python3
"""What the reference implementation (Python `safetensors`) reads from safetensors files.

usage: st_dump.py INPUT OUT_PREFIX

INPUT is a .safetensors file, or a directory: with model.safetensors.index.json the shards it
names, otherwise every *.safetensors file in it. Writes OUT_PREFIX.json / OUT_PREFIX.bin (see
st_common.py). Bytes come from `safetensors.deserialize` (the Rust reader; every dtype); for
each tensor numpy can represent, `safe_open(framework="numpy").get_tensor` must return the
same dtype, shape and bytes, or the script fails.
"""
import json
import os
import sys

from st_common import DumpWriter, fail, require_packages

# numpy (with ml_dtypes) cannot load these through safetensors.numpy 0.8.
NUMPY_UNSUPPORTED_PREFIXES = ("F8_", "F6_", "F4")


def shard_files(path):
    if os.path.isfile(path):
        return os.path.dirname(path) or ".", [os.path.basename(path)]
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        return path, sorted(set(weight_map.values()))
    return path, sorted(n for n in os.listdir(path) if n.endswith(".safetensors") and not n.startswith("."))


def main():
    if len(sys.argv) != 3:
        fail(__doc__)
    require_packages()
    from safetensors import deserialize, safe_open

    directory, names = shard_files(sys.argv[1])
    out = DumpWriter(sys.argv[2])
    checked_numpy = 0
    for name in names:
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            raw = f.read()
        entries = dict(deserialize(raw))
        with safe_open(path, framework="numpy") as f:
            out.file(name, f.metadata())
            keys = list(f.keys())
            if sorted(keys) != sorted(entries):
                fail(f"{name}: safe_open keys {sorted(keys)} != deserialize keys {sorted(entries)}")
            for key in keys:
                entry = entries[key]
                s = f.get_slice(key)
                if s.get_dtype() != entry["dtype"] or list(s.get_shape()) != list(entry["shape"]):
                    fail(f"{name}: {key}: safe_open says {s.get_dtype()} {s.get_shape()}, deserialize {entry['dtype']} {entry['shape']}")
                if not entry["dtype"].startswith(NUMPY_UNSUPPORTED_PREFIXES):
                    array = f.get_tensor(key)
                    if list(array.shape) != list(entry["shape"]) or array.tobytes() != bytes(entry["data"]):
                        fail(f"{name}: {key}: numpy array differs from the raw bytes")
                    checked_numpy += 1
                out.tensor(name, key, entry["dtype"], entry["shape"], entry["data"])
    out.close()
    print(json.dumps({"files": len(names), "tensors": len(out.tensors), "numpy_checked": checked_numpy}))


if __name__ == "__main__":
    main()
