"""Writes Tests/Fixtures/observed_inputs.json: what transformers (fp32, eager) feeds the quantized
linear layers of the samples on the golden input_ids (two sequences, so every site is reported per
sequence), collected with the hooks of Formats/python/dshist. The engine's ActivationObserver is
compared with it in EngineTests/ActivationObserverTests (fast tier); test_observer_fixture.py
(opt-in tier) checks that the committed file is what this script computes today.

  observer_fixture.py OUT.json
Per sample and expert mode: the observed inputs (name, consumers) in order, and per input and
window the rows, max |x|, sum |x| and sum x^2 (float64 over the f32 rows); routed token counts
per [layer, expert, window].
"""
import json
import pathlib
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Formats" / "python"))
import dshist  # noqa: E402


class Summary:
    def __init__(self):
        self.sites = {}
        self.routed_counts = {}

    def observe(self, name, window, x):
        a = x.detach().double().cpu().numpy()
        self.sites.setdefault(name, {})[window] = {
            "rows": int(a.shape[0]), "max": float(np.abs(a).max()),
            "sum_abs": float(np.abs(a).sum()), "sum_sq": float((a * a).sum())}

    def routed(self, layer, expert, window, n):
        self.routed_counts[f"{layer}/{expert}/{window}"] = int(n)


def run(sample, mode):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(ROOT / "Samples" / sample), dtype=torch.float32)
    model.eval()
    ids = load_file(str(ROOT / "Samples" / "golden" / f"{sample}.safetensors"))["input_ids"].astype(np.int64)
    sink = Summary()
    handles = dshist.attach(model, sink, mode)
    with torch.no_grad():
        model(torch.from_numpy(ids), use_cache=False)
    for h in handles:
        h.remove()
    inputs = dshist.observed_inputs(model, mode)
    names = [n for n, _ in inputs]
    assert set(sink.sites) <= set(names), "a hook reported an input the list does not name"
    # Only a routed expert no token went to is never reported.
    assert all(".experts." in n for n in set(names) - set(sink.sites)), "an input was not reported"
    return {
        "inputs": [{"name": n, "consumers": c,
                    "windows": [sink.sites.get(n, {})[w] for w in sorted(sink.sites.get(n, {}))],
                    "window_index": sorted(sink.sites.get(n, {}))} for n, c in inputs],
        "routed": sink.routed_counts,
    }


def main(out):
    torch.manual_seed(0)
    fixture = {"batch": "Samples/golden/<sample>.safetensors input_ids",
               "samples": {s: {m: run(s, m) for m in ("all", "routed")} for s in ("deepseek-v3-tiny", "llama-tiny")}}
    pathlib.Path(out).write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
