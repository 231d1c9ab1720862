"""The histogram file of Formats/calibration.md ("Histogram file", version 1): magic DSHIST01, the
header length (u64 LE), a UTF-8 JSON header, every input's counts as little-endian f64 in header
order, and the XXH64 (seed 0) of all bytes before it."""
import json
import struct

import numpy as np
import xxhash

MAGIC = b"DSHIST01"


def write(path, model, ctx, windows, expert_mode, inputs):
    """inputs: [{"name", "consumers", "tokens", "routed_tokens" (optional), "histogram": AbsHistogram}]."""
    entries, blobs, offset = [], [], 0
    for i in inputs:
        h = i["histogram"]
        e = {"name": i["name"], "consumers": list(i["consumers"]), "tokens": int(i["tokens"])}
        if i.get("routed_tokens") is not None:
            e["routed_tokens"] = int(i["routed_tokens"])
        e.update({"bins": int(h.counts.size), "initial_bins": int(h.initial_bins),
                  "bin_width": float(h.bin_width), "max": float(h.max), "offset": offset})
        entries.append(e)
        blobs.append(np.ascontiguousarray(h.counts, dtype="<f8").tobytes())
        offset += 8 * h.counts.size
    header = {"format": "dsconvert-histograms", "version": 1, "model": model, "ctx": int(ctx),
              "windows": int(windows), "expert_mode": expert_mode, "inputs": entries}
    hb = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<Q", len(hb)) + hb + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(body + struct.pack("<Q", xxhash.xxh64_intdigest(body)))


def read(path):
    """(header, {name: counts f64 array}); checks magic, XXH64 and sizes."""
    b = open(path, "rb").read()
    if b[:8] != MAGIC:
        raise ValueError(f"{path}: not a histogram file")
    (digest,) = struct.unpack("<Q", b[-8:])
    if digest != xxhash.xxh64_intdigest(b[:-8]):
        raise ValueError(f"{path}: XXH64 mismatch")
    (hl,) = struct.unpack("<Q", b[8:16])
    header = json.loads(b[16:16 + hl])
    data = b[16 + hl:-8]
    counts, expected = {}, 0
    for e in header["inputs"]:
        if e["offset"] != expected:
            raise ValueError(f"{path}: {e['name']}: offset")
        counts[e["name"]] = np.frombuffer(data, dtype="<f8", count=e["bins"], offset=e["offset"])
        expected += 8 * e["bins"]
    if expected != len(data):
        raise ValueError(f"{path}: data size")
    return header, counts
