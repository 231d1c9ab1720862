"""Minimal raw safetensors reader for the reference scripts: numpy arrays for every dtype,
including the FP8 types numpy lacks (via ml_dtypes). Independent of dsconvert's code."""
import glob
import json
import os
import struct

import ml_dtypes
import numpy as np

DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
    "F16": np.float16, "BF16": ml_dtypes.bfloat16, "I32": np.int32, "U32": np.uint32,
    "F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64,
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
}


def read_file(path):
    """Returns ({name: array}, metadata) for one .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[base + b:base + end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = arr
    return out, meta


def read_dir(path):
    """All tensors of a checkpoint directory (or one file)."""
    if os.path.isfile(path):
        return read_file(path)[0]
    out = {}
    for f in sorted(glob.glob(os.path.join(path, "*.safetensors"))):
        out.update(read_file(f)[0])
    return out
