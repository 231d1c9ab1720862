#!/usr/bin/env python3
"""Files written by the reference implementation, for the Swift reader to load.

usage: st_write.py OUT_DIR

Writes OUT_DIR/py_*.safetensors with `safetensors.numpy.save_file` (numpy arrays, ml_dtypes
for BF16 and FP8) and OUT_DIR/expected.json / expected.bin (see st_common.py): what each file
must contain. Values are random bit patterns (NaN payloads, infinities, -0 and subnormals
included), so any conversion on the way would show.
"""
import os
import sys

from st_common import DumpWriter, fail, require_packages


def main():
    if len(sys.argv) != 2:
        fail(__doc__)
    require_packages()
    import ml_dtypes
    import numpy as np
    from safetensors.numpy import save_file

    out_dir = sys.argv[1]
    rng = np.random.default_rng(20240611)

    def bits(dtype, shape):
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return np.frombuffer(rng.bytes(count), dtype=dtype).reshape(shape).copy()

    files = {
        "py_all_dtypes.safetensors": ({
            "f32": bits(np.float32, (3, 4)),
            "f16": bits(np.float16, (5,)),
            "bf16": bits(ml_dtypes.bfloat16, (3, 5)),
            "f64": bits(np.float64, (2, 2)),
            "f8_e4m3": bits(ml_dtypes.float8_e4m3fn, (8,)),
            "f8_e5m2": bits(ml_dtypes.float8_e5m2, (2, 4)),
            "i64": bits(np.int64, (3,)),
            "i32": bits(np.int32, (2, 3)),
            "i16": bits(np.int16, (4,)),
            "i8": bits(np.int8, (9,)),
            "u64": bits(np.uint64, (2,)),
            "u32": bits(np.uint32, (3,)),
            "u16": bits(np.uint16, (5,)),
            "u8": bits(np.uint8, (7,)),
            "bool": rng.integers(0, 2, size=(6,)).astype(bool),
            "c64": bits(np.complex64, (2,)),
            "scalar": bits(np.float32, ()),
            "scalar_bf16": bits(ml_dtypes.bfloat16, ()),
            "empty": np.zeros((0, 4), dtype=np.float32),
            "empty_bf16": np.zeros((3, 0), dtype=ml_dtypes.bfloat16),
            "model.layers.0.self_attn.q_proj.weight": bits(ml_dtypes.bfloat16, (16, 8)),
            "名前.ü": bits(np.uint8, (2,)),
        }, {"format": "pt", "note": "written by st_write.py ✓"}),
        "py_no_metadata.safetensors": ({
            "w": bits(np.float32, (64, 33)),
        }, None),
        "py_empty.safetensors": ({}, None),
    }
    out = DumpWriter(os.path.join(out_dir, "expected"))
    for name, (tensors, metadata) in files.items():
        save_file(tensors, os.path.join(out_dir, name), metadata=metadata)
        out.file(name, metadata)
        header_dtype = {
            "float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
            "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
            "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
            "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8",
            "bool": "BOOL", "complex64": "C64",
        }
        for key, array in tensors.items():
            out.tensor(name, key, header_dtype[array.dtype.name], array.shape, array.tobytes())
    out.close()
    print(f"{len(files)} files")


if __name__ == "__main__":
    main()
