"""Runs a transformers model over a calibration text the way `dsconvert calibrate` runs its engine
and writes the histogram file: the text tokenized once with the model's tokenizer.json (no special
tokens), windows of ctx ids (window k = ids[k*ctx:(k+1)*ctx], a partial last window dropped), the
first `samples` of them (all when None), `batch` windows per forward call, each window one batch
of every input's histogram."""
import re
import sys
import time

import torch

from .histfile import write
from .histogram import AbsHistogram
from .hooks import attach, observed_inputs

_EXPERT = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.")


class NonFinite(Exception):
    pass


class HistogramSink:
    def __init__(self, inputs):
        self.hist = {n: AbsHistogram() for n, _ in inputs}
        self.tokens = {n: 0 for n, _ in inputs}
        self.routed_counts = {}
        self.window_base = 0

    def observe(self, name, window, x):
        v = x.detach().to(torch.float32).cpu().numpy()
        if not self.hist[name].add(v):
            raise NonFinite(f"{name}: a NaN or infinity in calibration window {self.window_base + window}")
        self.tokens[name] += v.shape[0]

    def routed(self, layer, expert, window, n):
        self.routed_counts[(layer, expert)] = self.routed_counts.get((layer, expert), 0) + int(n)


def windows_of(tokenizer_path, text_path, ctx, samples=None):
    from tokenizers import Tokenizer
    text = open(text_path, "rb").read().decode("utf-8")
    ids = Tokenizer.from_file(str(tokenizer_path)).encode(text, add_special_tokens=False).ids
    available = len(ids) // ctx
    if available == 0:
        raise ValueError(f"{text_path}: {len(ids)} tokens, fewer than one window of {ctx}")
    n = available if samples is None else min(samples, available)
    return [ids[k * ctx:(k + 1) * ctx] for k in range(n)], available


def collect(model, windows, ctx, expert_mode="all", batch=1, progress=None):
    """Returns (inputs for histfile.write, seconds)."""
    inputs = observed_inputs(model, expert_mode)
    sink = HistogramSink(inputs)
    handles = attach(model, sink, expert_mode)
    device = next(model.parameters()).device
    t0 = time.monotonic()
    try:
        with torch.no_grad():
            for k in range(0, len(windows), batch):
                sink.window_base = k
                ids = torch.tensor(windows[k:k + batch], dtype=torch.long, device=device)
                model(ids, use_cache=False, logits_to_keep=1)
                if progress:
                    progress(k + ids.shape[0], time.monotonic() - t0)
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, consumers in inputs:
        m = _EXPERT.match(name)
        routed = sink.routed_counts.get((int(m.group(1)), int(m.group(2))), 0) if m else None
        out.append({"name": name, "consumers": consumers, "tokens": sink.tokens[name],
                    "routed_tokens": routed, "histogram": sink.hist[name]})
    return out, time.monotonic() - t0


def main(argv=None):
    import argparse
    import pathlib
    ap = argparse.ArgumentParser(prog="python3 -m dshist",
                                 description="Collect dsconvert calibration histograms with transformers.")
    ap.add_argument("model")
    ap.add_argument("--text", required=True)
    ap.add_argument("--samples", type=int)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--routed-only", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    from transformers import AutoModelForCausalLM
    mode = "routed" if a.routed_only else "all"
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype)).to(a.device)
    model.eval()
    windows, available = windows_of(pathlib.Path(a.model) / "tokenizer.json", a.text, a.ctx, a.samples)
    if a.samples is not None and a.samples > available:
        print(f"warning: {a.text} holds {available} full window(s) of {a.ctx} tokens, fewer than "
              f"--samples {a.samples}: calibrated on {len(windows)}", file=sys.stderr)

    def progress(done, seconds):
        print(f"\rcalibration: {done * a.ctx} / {len(windows) * a.ctx} tokens, "
              f"{done * a.ctx / max(seconds, 1e-9):.0f} tokens/s", end="", file=sys.stderr)

    try:
        inputs, seconds = collect(model, windows, a.ctx, mode, a.batch, progress)
    except NonFinite as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    write(a.output, a.model, a.ctx, len(windows), mode, inputs)
    print(f"{len(inputs)} histograms of {len(windows)} window(s) x {a.ctx} tokens -> {a.output} "
          f"({len(windows) * a.ctx / max(seconds, 1e-9):.0f} tokens/s)", file=sys.stderr)
    return 0
