"""CPU engine against transformers (eager, fp32) on the same models and thread count.

usage: bench_engine.py DSCONVERT [MODEL_DIR ...]   (default: the three samples)
       (dsconvert-bench is taken from DSCONVERT's folder)

For each model, in BF16 and in block FP8 (`dsconvert quantize --fp8`, into a temporary folder):
  - prefill of a 512-token prompt at batch 1, and of 8 x 256 tokens, tokens/s
  - decode of 128 tokens after the 512-token prompt (greedy, KV cache), tokens/s
Both sides do the same work: prefill computes the logits of each sequence's last position only
(transformers `logits_to_keep=1`, what its generate does; dsconvert's forward with `.last`, what
its generate does) and is timed warm, in one process (transformers: repeated calls of the
loaded model; dsconvert: `dsconvert-bench prefill --repeats`). Decode comes from
`dsconvert generate --json`. transformers runs the BF16 weights upcast to fp32 (the FP8 rows
compare with the same transformers figure: it has no fast FP8 CPU path). The two are timed in
alternation, ROUNDS rounds of REPEAT calls each, and each figure is the best call; the ratio
is of the two best figures. Prints one line per row.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROMPT, DECODE, REPEAT = 512, 128, 5
BATCH = (8, 256)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def held_out_ids(count):
    # Held-out text's ids (little-endian uint16, Samples/README.md).
    ids = np.fromfile(os.path.join(ROOT, "Samples", "eval_ids.bin"), dtype="<u2")
    return np.ascontiguousarray(ids[1000:1000 + count].astype(np.int32))


def dsconvert_prefill(bench, model, ids_path):
    out = subprocess.run([bench, "prefill", model, "--ids", ids_path, "--repeats", str(REPEAT), "--threads", str(THREADS), "--json"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["best_tokens_per_second"]


def dsconvert_decode(binary, model, ids_path):
    out = subprocess.run([binary, "generate", model, "--ids", ids_path, "--max-tokens", str(DECODE + 1), "--threads", str(THREADS), "--json"],
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    if r["stop"] != "max_tokens":
        raise SystemExit(f"{model}: generation stopped early ({r['stop']}); pick another prompt")
    return r["decode_tokens_per_second"]


def transformers_prefill(m, x):
    best = 0.0
    with torch.no_grad():
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            m(input_ids=x, use_cache=True, logits_to_keep=1)
            best = max(best, x.numel() / (time.perf_counter() - t0))
    return best


def transformers_decode(m, x):
    with torch.no_grad():
        out = m(input_ids=x, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(DECODE):
            out = m(input_ids=tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)
        return DECODE / (time.perf_counter() - t0)


def main(argv):
    binary = argv[0]
    bench = os.path.join(os.path.dirname(os.path.abspath(binary)), "dsconvert-bench")
    models = argv[1:] or [os.path.join(ROOT, "Samples", n) for n in ("deepseek-v3-tiny", "qwen2-tiny", "llama-tiny")]
    single = held_out_ids(PROMPT)
    batch = held_out_ids(BATCH[0] * BATCH[1]).reshape(BATCH)
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        single_path, batch_path = os.path.join(tmp, "prompt.safetensors"), os.path.join(tmp, "batch.safetensors")
        save_file({"input_ids": single}, single_path)
        save_file({"input_ids": batch}, batch_path)
        print(f"engine vs transformers (eager fp32), {THREADS} threads, prefill {PROMPT} tokens and {BATCH[0]} x {BATCH[1]} "
              f"(last position's logits), decode {DECODE}; best of {ROUNDS} alternating rounds of {REPEAT}")
        for model in models:
            name = os.path.basename(model.rstrip("/"))
            m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager").eval()
            x1, x8 = torch.tensor(single[None, :], dtype=torch.int64), torch.tensor(batch, dtype=torch.int64)
            fp8 = os.path.join(tmp, name + "-fp8")
            subprocess.run([binary, "quantize", "--fp8", model, fp8, "-q"], check=True)
            variants = (("BF16", model), ("FP8 block", fp8))
            tf = {"p1": 0.0, "p8": 0.0, "d": 0.0}
            ds = {label: {"p1": 0.0, "p8": 0.0, "d": 0.0} for label, _ in variants}
            for _ in range(ROUNDS):
                tf["p1"] = max(tf["p1"], transformers_prefill(m, x1))
                tf["p8"] = max(tf["p8"], transformers_prefill(m, x8))
                tf["d"] = max(tf["d"], transformers_decode(m, x1))
                for label, path in variants:
                    ds[label]["p1"] = max(ds[label]["p1"], dsconvert_prefill(bench, path, single_path))
                    ds[label]["p8"] = max(ds[label]["p8"], dsconvert_prefill(bench, path, batch_path))
                    ds[label]["d"] = max(ds[label]["d"], dsconvert_decode(binary, path, single_path))
            for label, _ in variants:
                r = ds[label]
                print(f"{name:18s} {label:9s} prefill 1x{PROMPT} {r['p1']:9.1f} tok/s vs {tf['p1']:9.1f} -> {r['p1'] / tf['p1']:5.2f}x | "
                      f"prefill {BATCH[0]}x{BATCH[1]} {r['p8']:9.1f} vs {tf['p8']:9.1f} -> {r['p8'] / tf['p8']:5.2f}x | "
                      f"decode {r['d']:7.1f} tok/s vs {tf['d']:7.1f} -> {r['d'] / tf['d']:5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
