"""Independent check of a static-activation checkpoint written by `dsconvert quantize --act static`.

usage: static_act_check.py OUT_DIR RANGES_JSON

From the ranges file alone (numpy + ml_dtypes, not dsconvert's code) it computes what
compressed-tensors' calculate_qparams gives for a symmetric 8-bit per-tensor activation:
scale = amax / (bit_range / 2), i.e. amax / 448 for FP8 E4M3 and amax / 127.5 for INT8, divided in
float32 and rounded to the model dtype; shape [1]. It then reads every safetensors file of OUT_DIR
and checks that each quantized linear module (one with a weight_scale) has X.input_scale with
exactly those bytes, that no other input_scale exists, and that config.json's quantization_config
declares static per-tensor input activations of the matching type. When the compressed-tensors
package is importable its QuantizationConfig parses the config (else that check is skipped).
Prints a JSON summary; exits 1 on the first mismatch.
"""
import glob
import json
import os
import sys

import ml_dtypes
import numpy as np
from safetensors import safe_open


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main():
    out, ranges_path = sys.argv[1], sys.argv[2]
    ranges = json.load(open(ranges_path))
    config = json.load(open(os.path.join(out, "config.json")))
    qc = config["quantization_config"]
    group = next(iter(qc["config_groups"].values()))
    act = group["input_activations"]
    fp8 = ranges["target"] == "fp8"
    want_type = "float" if fp8 else "int"
    if act is None or act.get("dynamic") is not False or act.get("strategy") != "tensor" or act.get("type") != want_type \
            or act.get("num_bits") != 8 or act.get("symmetric") is not True:
        fail(f"input_activations is not static per-tensor {want_type}8: {act}")
    dtype_name = config.get("torch_dtype") or config.get("dtype")
    np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16, "float32": np.float32}[dtype_name]
    divisor = np.float32(448.0 if fp8 else 127.5)
    amax = {}
    for r in ranges["inputs"]:
        for c in r["consumers"]:
            amax[c] = r["amax"]
    tensors = {}
    for f in sorted(glob.glob(os.path.join(out, "*.safetensors"))):
        with safe_open(f, "np") as s:
            for k in s.keys():
                tensors[k] = (f, s)
    modules = sorted(k[: -len(".weight_scale")] for k in tensors if k.endswith(".weight_scale"))
    seen = 0
    for m in modules:
        name = m + ".input_scale"
        if name not in tensors:
            fail(f"{m}: no input_scale")
        f = tensors[name][0]
        with safe_open(f, "np") as s:
            got = s.get_slice(name)
            dt, shape = got.get_dtype(), got.get_shape()
        if list(shape) != [1]:
            fail(f"{name}: shape {shape}, expected [1]")
        want = np.array([np.float32(amax[m]) / divisor], dtype=np.float32).astype(np_dtype)
        raw = open(f, "rb").read()
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
        a, b = header[name]["data_offsets"]
        data = raw[8 + n + a: 8 + n + b]
        if data != want.tobytes():
            fail(f"{name}: bytes {data.hex()} ({dt}), expected {want.tobytes().hex()} = {dtype_name}({amax[m]} / {divisor})")
        seen += 1
    extra = [k for k in tensors if k.endswith(".input_scale") and k[: -len(".input_scale")] not in modules]
    if extra:
        fail(f"input_scale without a quantized weight: {extra[:4]}")
    parsed = None
    try:
        from compressed_tensors.quantization import QuantizationConfig
        parsed = QuantizationConfig.model_validate(qc)
        scheme = next(iter(parsed.config_groups.values()))
        if scheme.input_activations is None or scheme.input_activations.dynamic is not False:
            fail(f"compressed-tensors reads the activations as {scheme.input_activations}")
        parsed = str(scheme.input_activations.strategy)
    except ImportError:
        pass
    print(json.dumps({"modules": seen, "dtype": dtype_name, "compressed_tensors": parsed}))


if __name__ == "__main__":
    main()
