#!/usr/bin/env python3
"""Accept or reject each *.safetensors file in a directory with the reference implementation.

usage: st_classify.py DIR

Each file is opened with safetensors.safe_open (framework "numpy"; the header is validated on
open) and with safetensors.deserialize (the in-memory reader). Prints one JSON object:
{"results": {file name: {"error": text} when rejected, else
{"metadata": {...} or null, "tensors": [[name, dtype, shape, hex of the bytes], ...]}}}.
The two readers must agree on every file, or the script fails.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_common import fail, require_packages  # noqa: E402


def main():
    if len(sys.argv) != 2:
        fail(__doc__)
    require_packages()
    from safetensors import deserialize, safe_open

    directory = sys.argv[1]
    results = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".safetensors"):
            continue
        path = os.path.join(directory, name)
        metadata = None
        try:
            with safe_open(path, framework="numpy") as f:
                metadata = f.metadata()
                for key in f.keys():
                    f.get_slice(key).get_shape()
            opened = None
        except Exception as e:
            opened = f"{type(e).__name__}: {e}"
        tensors = None
        try:
            with open(path, "rb") as f:
                entries = deserialize(f.read())
            tensors = sorted([k, v["dtype"], list(v["shape"]), bytes(v["data"]).hex()] for k, v in entries)
            parsed = None
        except Exception as e:
            parsed = f"{type(e).__name__}: {e}"
        if (opened is None) != (parsed is None):
            fail(f"{name}: safe_open says {opened!r}, deserialize says {parsed!r}")
        results[name] = {"error": opened} if opened is not None else {"metadata": metadata, "tensors": tensors}
    print(json.dumps({"results": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
