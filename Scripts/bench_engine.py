"""CPU engine against transformers (eager, fp32) on the same models and thread count.

usage: bench_engine.py DSCONVERT [MODEL_DIR ...]   (default: the three samples)

For each model, in BF16 and in block FP8 (`dsconvert quantize --fp8`, into a temporary folder):
  - prefill of a 512-token prompt at batch 1, tokens/s
  - decode of 128 tokens after it (greedy, KV cache), tokens/s
dsconvert's figures come from `dsconvert generate --json`; transformers runs the BF16 weights
upcast to fp32 (the FP8 rows compare with the same transformers figure: it has no fast FP8 CPU
path). Each figure is the best of 3. Prints one line per row with the ratio.
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
PROMPT, DECODE, REPEAT = 512, 128, 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prompt_ids():
    # Held-out text's ids (little-endian uint16, Samples/README.md).
    ids = np.fromfile(os.path.join(ROOT, "Samples", "eval_ids.bin"), dtype="<u2")
    return np.ascontiguousarray(ids[1000:1000 + PROMPT].astype(np.int32))


def dsconvert(binary, model, ids_path):
    best_p = best_d = 0.0
    for _ in range(REPEAT):
        out = subprocess.run([binary, "generate", model, "--ids", ids_path, "--max-tokens", str(DECODE + 1), "--threads", str(THREADS), "--json"],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        if r["stop"] != "max_tokens":
            raise SystemExit(f"{model}: generation stopped early ({r['stop']}); pick another prompt")
        best_p = max(best_p, r["prefill_tokens_per_second"])
        best_d = max(best_d, r["decode_tokens_per_second"])
    return best_p, best_d


def transformers(model_dir, ids):
    torch.set_num_threads(THREADS)
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    x = torch.tensor(ids[None, :], dtype=torch.int64)
    best_p = best_d = 0.0
    with torch.no_grad():
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            out = m(input_ids=x, use_cache=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)
            t2 = time.perf_counter()
            for _ in range(DECODE):
                out = m(input_ids=tok, past_key_values=past, use_cache=True)
                past = out.past_key_values
                tok = out.logits[:, -1:].argmax(-1)
            t3 = time.perf_counter()
            best_p = max(best_p, PROMPT / (t1 - t0))
            best_d = max(best_d, DECODE / (t3 - t2))
    return best_p, best_d


def main(argv):
    binary = argv[0]
    models = argv[1:] or [os.path.join(ROOT, "Samples", n) for n in ("deepseek-v3-tiny", "qwen2-tiny", "llama-tiny")]
    ids = prompt_ids()
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = os.path.join(tmp, "prompt.safetensors")
        save_file({"input_ids": ids}, ids_path)
        print(f"engine vs transformers (eager fp32), {THREADS} threads, prefill {PROMPT} tokens, decode {DECODE}, best of {REPEAT}")
        for model in models:
            name = os.path.basename(model.rstrip("/"))
            tp, td = transformers(model, ids)
            fp8 = os.path.join(tmp, name + "-fp8")
            subprocess.run([binary, "quantize", "--fp8", model, fp8, "-q"], check=True)
            for label, path in (("BF16", model), ("FP8 block", fp8)):
                dp, dd = dsconvert(binary, path, ids_path)
                print(f"{name:18s} {label:9s} prefill {dp:9.1f} tok/s vs {tp:9.1f} -> {dp / tp:5.2f}x | decode {dd:7.1f} tok/s vs {td:7.1f} -> {dd / td:5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
