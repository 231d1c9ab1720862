#!/usr/bin/env python3
"""Runs the reference implementation (Python `safetensors`) over the malformed-file corpus.

usage: check_corpus.py CORPUS_DIR

CORPUS_DIR/manifest.json (written by the Swift corpus generator, STCorpus.write) lists the
cases: {"cases": [{"name", "path", "code", "tensor", "reference", "expect"}]}. For every case
with "reference": true, the file is opened three ways:
  - safe_open(path, framework="numpy") and reading every tensor (get_tensor),
  - safetensors.numpy.load_file(path),
  - safetensors.deserialize(bytes) (the in-memory reader),
and the outcome of each (null when it succeeded, else the exception text) is printed as one
JSON object on stdout: {"results": {name: {"safe_open": ..., "load_file": ..., "deserialize": ...}}}.
The Swift test asserts that "reject" cases fail all three ways and "accept" cases none.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_common import fail, require_packages  # noqa: E402


def outcome(fn):
    try:
        fn()
        return None
    except Exception as e:  # the reference raises SafetensorError, sometimes other types
        return f"{type(e).__name__}: {e}"


def main():
    if len(sys.argv) != 2:
        fail(__doc__)
    require_packages()
    from safetensors import deserialize, safe_open
    from safetensors.numpy import load_file

    corpus = sys.argv[1]
    with open(os.path.join(corpus, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)

    def read_all(path):
        with safe_open(path, framework="numpy") as f:
            for key in f.keys():
                f.get_tensor(key)

    def from_bytes(path):
        with open(path, "rb") as f:
            deserialize(f.read())

    results = {}
    for case in manifest["cases"]:
        if not case.get("reference"):
            continue
        path = os.path.join(corpus, case["path"])
        results[case["name"]] = {
            "safe_open": outcome(lambda: read_all(path)),
            "load_file": outcome(lambda: load_file(path)),
            "deserialize": outcome(lambda: from_bytes(path)),
        }
    print(json.dumps({"results": results}, ensure_ascii=False))


if __name__ == "__main__":
    main()
