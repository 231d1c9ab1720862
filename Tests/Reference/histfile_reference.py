"""The histogram file of Formats/calibration.md ("Histogram file", version 1), written and read
from the spec alone (numpy + xxhash), to check Sources/Calibration/HistogramFile.swift both ways.

  histfile_reference.py write OUT   writes a file with three inputs; prints its content as JSON
  histfile_reference.py read IN     checks a file (magic, XXH64, header, sizes); prints its content
Content JSON: {"model", "ctx", "windows", "expert_mode", "inputs": [{"name", "consumers", "tokens",
"bins", "initial_bins", "bin_width" (float.hex), "max" (float.hex), "counts_sum", "counts_first8"}]}
"""
import json
import struct
import sys

import numpy as np
import xxhash

MAGIC = b"DSHIST01"


def summary(header, data):
    out = {k: header[k] for k in ("model", "ctx", "windows", "expert_mode")}
    out["inputs"] = []
    for e in header["inputs"]:
        counts = np.frombuffer(data, dtype="<f8", count=e["bins"], offset=e["offset"])
        out["inputs"].append({
            "name": e["name"], "consumers": e["consumers"], "tokens": e["tokens"], "bins": e["bins"],
            "initial_bins": e["initial_bins"], "bin_width": float(e["bin_width"]).hex(),
            "max": float(e["max"]).hex(), "counts_sum": float(counts.sum()),
            "counts_first8": counts[:8].tolist()})
    return out


def write(path):
    rng = np.random.default_rng(7)
    inputs, blobs, offset = [], [], 0
    for k, (name, consumers, bins) in enumerate([
            ("model.layers.0.input_layernorm", ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj"], 2048),
            ("model.layers.0.mlp.experts.3.down_proj", ["model.layers.0.mlp.experts.3.down_proj"], 2311),
            ("model.layers.1.mlp.experts.9.down_proj", ["model.layers.1.mlp.experts.9.down_proj"], 0)]):
        counts = np.floor(np.abs(rng.standard_t(3, size=bins)) * 1000.0).astype("<f8")
        width = float(rng.uniform(1e-4, 1e-1)) if bins else 0.0
        mx = width * (bins - 0.5) if bins else 0.0
        inputs.append({"name": name, "consumers": consumers, "tokens": 1000 * (k + 1), "bins": bins,
                       "initial_bins": 2048, "bin_width": width, "max": mx, "offset": offset})
        blobs.append(counts.tobytes())
        offset += 8 * bins
    header = {"format": "dsconvert-histograms", "version": 1, "model": "Samples/qwen2-tiny", "ctx": 256,
              "windows": 12, "expert_mode": "all", "inputs": inputs}
    hb = json.dumps(header).encode()
    body = MAGIC + struct.pack("<Q", len(hb)) + hb + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(body + struct.pack("<Q", xxhash.xxh64_intdigest(body)))
    print(json.dumps(summary(header, b"".join(blobs))))


def read(path):
    b = open(path, "rb").read()
    assert b[:8] == MAGIC, "magic"
    (digest,) = struct.unpack("<Q", b[-8:])
    assert digest == xxhash.xxh64_intdigest(b[:-8]), "xxh64"
    (hl,) = struct.unpack("<Q", b[8:16])
    header = json.loads(b[16:16 + hl])
    assert header["format"] == "dsconvert-histograms" and header["version"] == 1
    data = b[16 + hl:-8]
    expected = 0
    for e in header["inputs"]:
        assert e["offset"] == expected, "offsets"
        expected += 8 * e["bins"]
    assert expected == len(data), "data size"
    print(json.dumps(summary(header, data)))


if __name__ == "__main__":
    {"write": write, "read": read}[sys.argv[1]](sys.argv[2])
