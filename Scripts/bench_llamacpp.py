"""CPU engine against llama.cpp (llama-cpp-python) on the same models, prompt and thread count.

usage: bench_llamacpp.py DSCONVERT [MODEL_DIR ...]   (default: the three samples)
       BENCH_LARGE=1 adds a random qwen2 of 0.49 B parameters with Qwen2.5-0.5B's shapes (synthetic_qwen2)
       (dsconvert-bench is taken from DSCONVERT's folder; `make bench-llamacpp` installs the rest)

For each model: llama.cpp's own converter (Scripts/llamacpp_gguf.py) makes F32, BF16 and Q8_0
GGUF files in /tmp; dsconvert runs the model as stored (BF16) and in block FP8 (`dsconvert
quantize --fp8`). Same work on both sides, as Scripts/bench_engine.py measures it:
  - prefill of a 512-token prompt at batch 1 (held-out text's ids), computing the logits of the
    last position only (llama.cpp: one llama_decode of a llama_batch_get_one batch, n_batch =
    n_ubatch = 512, the KV cache cleared before each call; dsconvert: `dsconvert-bench prefill
    --repeats`), timed warm in one process, best of REPEAT calls;
  - decode of 128 tokens after that prompt, greedy (llama.cpp: argmax of the last logits, one
    llama_decode per token; dsconvert: `dsconvert generate --json`).
llama.cpp runs as its own tools run it on a CPU (flash attention on, which is what their default
`auto` picks there: 1.6x the prefill with it off on llama-tiny; F16 KV cache, the default) and 2
threads (n_threads = n_threads_batch), each measurement in its own process, as dsconvert's are,
so that neither side's idle worker threads spin while the other runs. The two sides are timed in
alternation, ROUNDS rounds; each figure is the best over the rounds, and the ratios (dsconvert /
llama.cpp) are of the best figures, against each GGUF of the same precision class (BF16 weights
against F32 and BF16 GGUF, block FP8 against Q8_0). Prints one line per row.

BENCH_RT=1 runs the measurements (not the conversions) at real-time priority (SCHED_FIFO 50,
inherited by every measured process; needs root): on a machine other jobs share, llama.cpp's
spinning thread barriers collapse when a core is taken from them (1.1 k instead of 28 k tok/s
prefill on qwen2-tiny at load average 11), which says more about the load than about llama.cpp.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROMPT, DECODE = 512, 128
GGUF_TYPES = ("f32", "bf16", "q8_0")
WORK = os.environ.get("LLAMACPP_CACHE", "/tmp/dsconvert-llamacpp")


def llama_worker(path, ids_path, repeats):
    """Child process: loads one GGUF, times `repeats` prefills and one decode, prints JSON."""
    import ctypes

    import numpy as np
    import llama_cpp as L

    ids = np.load(ids_path).astype(np.int32)
    llm = L.Llama(model_path=path, n_ctx=PROMPT + DECODE + 16, n_batch=PROMPT, n_ubatch=PROMPT,
                  n_threads=THREADS, n_threads_batch=THREADS, flash_attn=True, verbose=False)
    ctx, n_vocab = llm._ctx.ctx, llm.n_vocab()
    memory = L.llama_get_memory(ctx)
    prompt = (L.llama_token * len(ids))(*ids.tolist())

    def prefill():
        L.llama_memory_clear(memory, True)
        t0 = time.perf_counter()
        if L.llama_decode(ctx, L.llama_batch_get_one(prompt, len(ids))) != 0:
            raise SystemExit(f"{path}: llama_decode failed")
        L.llama_synchronize(ctx)
        return time.perf_counter() - t0

    def last_argmax():
        p = L.llama_get_logits_ith(ctx, -1)
        return int(np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,)).argmax())

    best = min(prefill() for _ in range(repeats))
    tok = (L.llama_token * 1)(last_argmax())
    t0 = time.perf_counter()
    for _ in range(DECODE):
        if L.llama_decode(ctx, L.llama_batch_get_one(tok, 1)) != 0:
            raise SystemExit(f"{path}: llama_decode failed while decoding")
        tok[0] = last_argmax()
    decode = DECODE / (time.perf_counter() - t0)
    print(json.dumps({"prefill": len(ids) / best, "decode": decode}))


def llama_measure(path, ids_npy, repeats):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--llama-worker", path, ids_npy, str(repeats)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"llama.cpp worker on {path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# Qwen2.5-0.5B's published shapes. `dsconvert synth --arch qwen2 --scale 1/4` (the 0.63 B model of
# bench_engine's earlier row) keeps 28 heads x 128 while dividing the width to 896, and llama.cpp's
# qwen2 graph requires heads x head_dim = hidden, so that model does not load there.
QWEN2_05B = {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
             "num_key_value_heads": 2, "vocab_size": 151936}


def synthetic_qwen2():
    """A random qwen2 of 0.49 B parameters (Qwen2.5-0.5B's shapes, tied embeddings; BF16 N(0, 0.02),
    norms 1), seeded, with the samples' tokenizer for the converter; made once in WORK."""
    import torch
    from safetensors.torch import save_file as save_torch

    d = os.path.join(WORK, "qwen2-0.5b-synthetic")
    if os.path.isfile(os.path.join(d, "config.json")):
        return d
    os.makedirs(d, exist_ok=True)
    c = QWEN2_05B
    h, f, hd = c["hidden_size"], c["intermediate_size"], c["hidden_size"] // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * hd
    g = torch.Generator().manual_seed(0)

    def w(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(torch.bfloat16)

    t = {"model.embed_tokens.weight": w(c["vocab_size"], h), "model.norm.weight": torch.ones(h, dtype=torch.bfloat16)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t.update({p + "input_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                  p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.bfloat16),
                  p + "self_attn.q_proj.weight": w(h, h), p + "self_attn.q_proj.bias": w(h),
                  p + "self_attn.k_proj.weight": w(kv, h), p + "self_attn.k_proj.bias": w(kv),
                  p + "self_attn.v_proj.weight": w(kv, h), p + "self_attn.v_proj.bias": w(kv),
                  p + "self_attn.o_proj.weight": w(h, h),
                  p + "mlp.gate_proj.weight": w(f, h), p + "mlp.up_proj.weight": w(f, h), p + "mlp.down_proj.weight": w(h, f)})
    save_torch(t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(ROOT, "Samples", name), "rb") as src, open(os.path.join(d, name), "wb") as dst:
            dst.write(src.read())
    cfg = dict(c, architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu", rms_norm_eps=1e-6,
               rope_theta=1000000.0, max_position_embeddings=32768, tie_word_embeddings=True, torch_dtype="bfloat16",
               bos_token_id=0, eos_token_id=c["vocab_size"] - 1, attention_dropout=0.0, use_cache=True)
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, indent=2)
    return d


def main(argv):
    import numpy as np
    from safetensors.numpy import save_file

    sys.path.insert(0, HERE)
    import llamacpp_gguf
    from bench_engine import dsconvert_decode, dsconvert_prefill, held_out_ids

    binary = os.path.abspath(argv[0])
    bench = os.path.join(os.path.dirname(binary), "dsconvert-bench")
    models = argv[1:] or [os.path.join(ROOT, "Samples", n) for n in ("deepseek-v3-tiny", "qwen2-tiny", "llama-tiny")]
    if os.environ.get("BENCH_LARGE") == "1":
        models.append(synthetic_qwen2())
    ids = held_out_ids(PROMPT)
    import llama_cpp
    try:
        load = os.getloadavg()
        load_s = f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start"
    except OSError:
        load_s = "load average unknown"
    with tempfile.TemporaryDirectory() as tmp:
        ids_st, ids_npy = os.path.join(tmp, "prompt.safetensors"), os.path.join(tmp, "prompt.npy")
        save_file({"input_ids": ids}, ids_st)
        np.save(ids_npy, ids)
        print(f"engine vs llama.cpp {llama_cpp.__version__} (llama-cpp-python; flash attention on, F16 KV cache), {THREADS} threads, prefill "
              f"1 x {PROMPT} (last position's logits), decode {DECODE}; best of {ROUNDS} alternating rounds; {os.cpu_count()} CPUs, {load_s}",
              flush=True)
        prepared = []
        for model in models:  # conversions first, at normal priority
            name = os.path.basename(model.rstrip("/"))
            ggufs = {t: llamacpp_gguf.gguf(model, t, os.path.join(WORK, "gguf")) for t in GGUF_TYPES}
            fp8 = os.path.join(WORK, name + "-fp8")
            if not os.path.isfile(os.path.join(fp8, "config.json")):
                subprocess.run([binary, "quantize", "--fp8", model, fp8, "-q"], check=True)
            prepared.append((model, name, ggufs, fp8))
        if os.environ.get("BENCH_RT") == "1":
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
            print("measuring at real-time priority (SCHED_FIFO 50)", flush=True)
        for model, name, ggufs, fp8 in prepared:
            size = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))
            repeats = 2 if size > 200e6 else 5
            variants = (("BF16", model), ("FP8 block", fp8))
            lc = {t: {"prefill": 0.0, "decode": 0.0} for t in GGUF_TYPES}
            ds = {label: {"prefill": 0.0, "decode": 0.0} for label, _ in variants}
            for _ in range(ROUNDS):
                for t in GGUF_TYPES:
                    r = llama_measure(ggufs[t], ids_npy, repeats)
                    for k in r:
                        lc[t][k] = max(lc[t][k], r[k])
                for label, path in variants:
                    ds[label]["prefill"] = max(ds[label]["prefill"], dsconvert_prefill(bench, path, ids_st))
                    ds[label]["decode"] = max(ds[label]["decode"], dsconvert_decode(binary, path, ids_st))
            for t in GGUF_TYPES:
                print(f"{name:18s} llama.cpp {t.upper():5s} prefill {lc[t]['prefill']:9.1f} tok/s  decode {lc[t]['decode']:8.1f} tok/s", flush=True)
            for label, refs in (("BF16", ("f32", "bf16")), ("FP8 block", ("q8_0",))):
                r = ds[label]
                parts = " | ".join(f"vs {t.upper()} prefill {r['prefill'] / lc[t]['prefill']:5.2f}x decode {r['decode'] / lc[t]['decode']:5.2f}x"
                                   for t in refs)
                print(f"{name:18s} dsconvert {label:9s} prefill {r['prefill']:9.1f} tok/s  decode {r['decode']:8.1f} tok/s  {parts}", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--llama-worker":
        llama_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
