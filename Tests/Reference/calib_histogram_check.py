"""Rebuilds one input's |x| histogram from the raw activations dsconvert's engine observed
(`dsconvert calibrate --dump-input NAME --dump-to DUMP`: F32 tensors window.K [rows, width]),
window by window in K order with the numpy histogram of Formats/python/dshist (written from
Formats/calibration.md), writes it with dshist's writer and compares it with the histogram file
dsconvert wrote (read here with dshist's reader, which checks magic, XXH64 and sizes).

  calib_histogram_check.py DUMP HISTOGRAMS NAME OUT.dshist
Prints JSON: {"windows", "rows", "bins", "ref_bins", "counts_equal", "count_diffs", "width",
"ref_width", "max", "ref_max", "total"} (widths and maxima as float.hex).
"""
import json
import pathlib
import sys

import numpy as np
from safetensors.numpy import load_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The two numpy modules alone, not the dshist package (its hooks import torch, which the fast
# tier does not install).
sys.path.insert(0, str(ROOT / "Formats" / "python" / "dshist"))
from histfile import read, write  # noqa: E402
from histogram import AbsHistogram  # noqa: E402


def main(dump, hist_path, name, out):
    tensors = load_file(dump)
    keys = sorted(tensors, key=lambda k: int(k.split(".")[1]))
    h = AbsHistogram()
    rows = 0
    for k in keys:
        assert h.add(tensors[k]), k
        rows += tensors[k].shape[0]
    header, counts = read(hist_path)
    entry = next(e for e in header["inputs"] if e["name"] == name)
    write(out, header["model"], header["ctx"], header["windows"], header["expert_mode"],
          [{"name": name, "consumers": entry["consumers"], "tokens": rows, "histogram": h}])
    _, mine = read(out)
    theirs = counts[name]
    same_len = mine[name].size == theirs.size
    print(json.dumps({
        "windows": len(keys), "rows": rows, "bins": int(theirs.size), "ref_bins": int(mine[name].size),
        "counts_equal": bool(same_len and np.array_equal(mine[name], theirs)),
        "count_diffs": int((mine[name] != theirs).sum()) if same_len else -1,
        "width": float(entry["bin_width"]).hex(), "ref_width": float(h.bin_width).hex(),
        "max": float(entry["max"]).hex(), "ref_max": float(h.max).hex(),
        "total": float(theirs.sum()), "tokens": entry["tokens"]}))


if __name__ == "__main__":
    main(*sys.argv[1:5])
