"""Shared by the st_*.py reference helpers: a dump format the Swift tests read.

A dump is two files: PREFIX.json and PREFIX.bin. The JSON is
    {"files": {"<file name>": {"metadata": {...} or null}},
     "tensors": [{"file", "name", "dtype", "shape", "offset", "length"}]}
where offset/length locate the tensor's raw little-endian bytes in PREFIX.bin.
"""
import json
import sys


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def require_packages():
    try:
        import numpy  # noqa: F401
        import ml_dtypes  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        fail(f"missing Python package ({e}); run `make test`, which installs safetensors, numpy and ml_dtypes")


class DumpWriter:
    def __init__(self, prefix):
        self.prefix = prefix
        self.files = {}
        self.tensors = []
        self.blob = open(prefix + ".bin", "wb")
        self.offset = 0

    def file(self, name, metadata):
        self.files[name] = {"metadata": metadata}

    def tensor(self, file, name, dtype, shape, data):
        data = bytes(data)
        self.tensors.append({"file": file, "name": name, "dtype": dtype, "shape": list(shape),
                             "offset": self.offset, "length": len(data)})
        self.blob.write(data)
        self.offset += len(data)

    def close(self):
        self.blob.close()
        with open(self.prefix + ".json", "w", encoding="utf-8") as f:
            json.dump({"files": self.files, "tensors": self.tensors}, f, ensure_ascii=False)
