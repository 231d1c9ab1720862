"""Independent check of tensor regions (the sharder's primitive), numpy + ml_dtypes only.

usage: region_reference.py SPEC.json

SPEC: {"input": DIR, "output": FILE.safetensors, "entries": [
    {"source": NAME, "action": "copy" | "quantize" | "dequantize", "dim": D, "start": A, "end": B,
     "outputs": [NAME, ...], "block": 128, "dtype": "BF16"}]}

For each entry the expected tensors are computed from the input checkpoint with numpy slicing:
  copy        the slice [A, B) along D of the source (a scale tensor cut by the caller the same way)
  quantize    DeepSeek block FP8 (quant_reference.block_fp8) of the sliced plain weight
  dequantize  the sliced FP8 weight with the matching slice of its block-scale grid, dequantized
              with quant_reference.dequantize to `dtype`
and compared byte for byte with the output file. Prints "ok N" or the mismatches (exit 1).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import quant_reference as qr  # noqa: E402


def cut(a, dim, start, end):
    idx = [slice(None)] * a.ndim
    idx[dim] = slice(start, end)
    return a[tuple(idx)]


def main(argv):
    with open(argv[0]) as f:
        spec = json.load(f)
    ck = qr.Checkpoint(spec["input"])
    out, _ = qr.read_safetensors(spec["output"])
    problems = []
    checked = 0

    def expect(name, array, st_dtype):
        nonlocal checked
        if name not in out:
            problems.append(f"{name}: missing from the output")
            return
        dtype, shape, raw = out[name]
        want = np.ascontiguousarray(array)
        if dtype != st_dtype or list(shape) != list(want.shape):
            problems.append(f"{name}: {dtype} {shape}, expected {st_dtype} {list(want.shape)}")
        elif raw != want.tobytes():
            got = np.frombuffer(raw, dtype=want.dtype).reshape(want.shape)
            bad = np.argwhere(got.view(np.uint8).reshape(-1) != want.view(np.uint8).reshape(-1))
            problems.append(f"{name}: {len(bad)} bytes differ, first at byte {int(bad[0][0])}")
        checked += 1

    for e in spec["entries"]:
        src, dim, a, b = e["source"], e["dim"], e["start"], e["end"]
        names = e["outputs"]
        if e["action"] == "copy":
            expect(names[0], cut(ck.array(src), dim, a, b), ck.tensors[src][0])
        elif e["action"] == "quantize":
            q, s = qr.block_fp8(cut(ck.array(src), dim, a, b), e["block"])
            expect(names[0], q, "F8_E4M3")
            expect(names[1], s, "F32")
        elif e["action"] == "dequantize":
            block = e["block"]
            module = src[: -len(".weight")]
            scale_name = module + ".weight_scale_inv"
            q = cut(ck.array(src), dim, a, b)
            s = cut(ck.array(scale_name), dim, a // block, -(-b // block))
            v = qr.dequantize(q, s, (block, block), ck.tensors[scale_name][0], e["dtype"])
            expect(names[0], v, e["dtype"])
        else:
            problems.append(f"unknown action {e['action']}")
    if problems:
        print("\n".join(problems))
        return 1
    print(f"ok {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
