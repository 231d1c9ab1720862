"""llm-compressor's own static W8A8 / FP8 checkpoint of a sample, for Tests/Interop/test_llmcompressor_static.py.

usage: llmcompressor_static.py SAMPLE_DIR int8|fp8 bfloat16|float32 TEXT SAMPLES CTX OUT_DIR

Runs `llmcompressor.oneshot` (0.14) with one QuantizationModifier on SAMPLES windows of CTX tokens
of TEXT, cut as `dsconvert calibrate` cuts them (the text tokenized once with the sample's
tokenizer.json, no special tokens; window k = ids[k*CTX:(k+1)*CTX]), one window per batch:

  int8  per-channel symmetric INT8 weights (the W8A8 preset's weights) with static per-tensor
        symmetric INT8 input activations (the preset's are dynamic per-token), observer
        `static_minmax`
  fp8   the `FP8` preset: per-tensor FP8 weights and static per-tensor FP8 input activations,
        whose observer is `static_minmax`

`static_minmax` keeps the minimum and maximum over every batch (`minmax` would be a moving average,
averaging_constant 0.01). Targets `Linear`, ignore `lm_head` and `re:.*mlp\\.gate$` (the MoE router,
which transformers 5 builds as DeepseekV3TopkRouter, not a Linear, so nothing matches it anyway);
the model runs in DTYPE. A MoE model's fused experts are linearised by oneshot itself (one Linear
per expert projection; `load_quantizable_moe` would do it at load time but needs torchvision
through transformers' monkey patching), and every token runs through every expert for statistics
(`moe_calibrate_all_experts`, the default). The checkpoint goes to OUT_DIR (save_compressed), and
OUT_DIR/observed.json holds, per quantized module, the observer's final min / max of its input
(read when llm-compressor computes the scale from them) and their dtype.
"""
import json
import sys

import torch

IGNORE = ["lm_head", "re:.*mlp\\.gate$"]


def windows(sample, text, samples, ctx):
    from tokenizers import Tokenizer
    ids = Tokenizer.from_file(f"{sample}/tokenizer.json").encode(open(text, encoding="utf-8").read(), add_special_tokens=False).ids
    if len(ids) // ctx < samples:
        raise SystemExit(f"{text}: {len(ids) // ctx} windows of {ctx} tokens, fewer than {samples}")
    return [ids[k * ctx:(k + 1) * ctx] for k in range(samples)]


def recipe(scheme):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from compressed_tensors.quantization.quant_scheme import INT8_W8A8
    from llmcompressor.modifiers.quantization import QuantizationModifier
    if scheme == "fp8":
        return QuantizationModifier(targets="Linear", scheme="FP8", ignore=IGNORE)
    static = QuantizationArgs(num_bits=8, type="int", strategy="tensor", symmetric=True, dynamic=False, observer="static_minmax")
    return QuantizationModifier(
        config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=INT8_W8A8["weights"], input_activations=static)},
        ignore=IGNORE)


def record_observers():
    """Patches llm-compressor's Observer to report each input observer's statistics when the
    scale is computed from them; returns (observer id -> module, observer id -> stats)."""
    from llmcompressor.observers.base import Observer
    owner, stats = {}, {}
    attach, get_qparams = Observer.attach, Observer.get_qparams

    def attach_recorded(self, module):
        owner[id(self)] = module
        return attach(self, module)

    def get_qparams_recorded(self):
        if self.base_name == "input":
            stats[id(self)] = {"min": float(self.min_vals.min()), "max": float(self.max_vals.max()),
                               "dtype": str(self.max_vals.dtype).replace("torch.", ""),
                               "shape": list(self.max_vals.shape)}
        return get_qparams(self)
    Observer.attach, Observer.get_qparams = attach_recorded, get_qparams_recorded
    return owner, stats


def main(argv):
    sample, scheme, dtype, text, samples, ctx, out = argv[0], argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6]
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    owner, stats = record_observers()
    w = windows(sample, text, samples, ctx)
    data = Dataset.from_dict({"input_ids": w, "attention_mask": [[1] * ctx for _ in w]})
    model = AutoModelForCausalLM.from_pretrained(sample, dtype=getattr(torch, dtype))
    oneshot(model=model, dataset=data, recipe=[recipe(scheme)], num_calibration_samples=samples,
            max_seq_length=ctx, shuffle_calibration_samples=False, batch_size=1, output_dir=out)
    names = {id(m): n for n, m in model.named_modules()}
    observed = {names[id(owner[k])]: v for k, v in stats.items()}
    with open(f"{out}/observed.json", "w") as f:
        json.dump({"windows": len(w), "ctx": ctx, "dtype": dtype, "inputs": observed}, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
