"""dsconvert's output loaded by transformers on the CPU, logits against the golden ones.

* Baseline: the BF16 samples in fp32 reproduce Samples/golden exactly (that is how the golden
  logits were made); in bf16 compute they deviate, which is the scale a quantized model's
  deviation is compared with.
* compressed-tensors FP8 (per channel / per tensor) and INT8 outputs of qwen2-tiny and llama-tiny:
  `AutoModelForCausalLM.from_pretrained` decompresses them; the decompressed weights must be
  exactly f32(q) x scale (fp32 load) and exactly `dsconvert dequantize --to bf16` (bf16 load),
  and the logits must stay close to the golden ones.
* deepseek-v3-tiny block FP8 dequantized to BF16 / F32 by dsconvert loads as a plain model
  (no quantization_config left) and its logits stay close to the golden ones.

Tolerances: the bounds below are about twice what was observed (see the printed tables with -s).
"""
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from conftest import GOLDEN, SAMPLES, read_checkpoint, report

torch.set_num_threads(min(2, torch.get_num_threads()))

# kind: (max |Δlogit|, mean |Δlogit|, min top-1 agreement) — about twice the observed deviation
BOUNDS = {
    "fp8-channel": (0.75, 0.05, 0.90),
    "fp8-tensor": (0.75, 0.05, 0.90),
    "int8-channel": (0.3, 0.025, 0.95),
    "fp8-block-dequant": (2.5, 0.075, 0.90),
}


def _golden(sample):
    return load_file(str(GOLDEN / f"{sample}.safetensors"))


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids.long()).logits.float()


def _deviation(logits, ref):
    d = (logits - ref).abs()
    top1 = (logits.argmax(-1) == ref.argmax(-1)).float().mean().item()
    return d.max().item(), d.mean().item(), top1


def _fmt(label, dev):
    return f"{label:<38} max |Δ| {dev[0]:.4f}  mean |Δ| {dev[1]:.5f}  top-1 {dev[2] * 100:.1f}%"


def _load(path, dtype):
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).eval()


@pytest.mark.parametrize("sample", ("qwen2-tiny", "llama-tiny", "deepseek-v3-tiny"))
def test_bf16_baseline(sample):
    g = _golden(sample)
    fp32 = _deviation(_logits(_load(SAMPLES / sample, torch.float32), g["input_ids"]), g["logits"])
    bf16 = _deviation(_logits(_load(SAMPLES / sample, torch.bfloat16), g["input_ids"]), g["logits"])
    report(f"{sample}: BF16 sample vs golden", [_fmt("fp32 compute", fp32), _fmt("bf16 compute", bf16)])
    assert fp32[0] < 1e-3


@pytest.mark.parametrize("kind", ("fp8-channel", "fp8-tensor", "int8-channel"))
@pytest.mark.parametrize("sample", ("qwen2-tiny", "llama-tiny"))
def test_compressed_tensors_output_loads_and_is_close(converter, sample, kind):
    out = converter.quantize(sample, kind)
    g = _golden(sample)
    qt, _ = read_checkpoint(out)
    modules = sorted(n[: -len(".weight_scale")] for n in qt if n.endswith(".weight_scale"))
    assert modules

    # fp32 load: compressed-tensors decompresses on the first forward pass; the decompressed
    # weights are exactly f32(q) * f32(scale).
    model = _load(out, torch.float32)
    dev = _deviation(_logits(model, g["input_ids"]), g["logits"])
    dev_long = _deviation(_logits(model, g["long_input_ids"]), g["long_logits"])
    params = dict(model.named_parameters())
    for m in modules:
        w = params[m + ".weight"]
        assert w.dtype == torch.float32 and not w.is_meta, m
        q, s = qt[m + ".weight"], qt[m + ".weight_scale"]
        ref = q.to(torch.float32) * s.to(torch.float32).reshape(-1, 1) if s.numel() > 1 else q.to(torch.float32) * s.float()
        assert torch.equal(w.detach(), ref), f"{m}: transformers' decompressed weight differs from f32(q) * scale"

    # bf16 load: decompressed weights equal dsconvert's own dequantizer, bit for bit.
    deq, _ = read_checkpoint(converter.dequantize(sample, kind, "bf16"))
    model16 = _load(out, torch.bfloat16)
    dev16 = _deviation(_logits(model16, g["input_ids"]), g["logits"])
    params16 = dict(model16.named_parameters())
    for m in modules:
        w16 = params16[m + ".weight"].detach()
        assert w16.dtype == torch.bfloat16, (m, w16.dtype)
        assert torch.equal(w16.view(torch.int16), deq[m + ".weight"].view(torch.int16)), m
    base16 = _deviation(_logits(_load(SAMPLES / sample, torch.bfloat16), g["input_ids"]), g["logits"])

    report(f"{sample} {kind} (transformers, compressed-tensors) vs golden", [
        _fmt("quantized, fp32 compute", dev),
        _fmt("quantized, fp32 compute, 400 tokens", dev_long),
        _fmt("quantized, bf16 compute", dev16),
        _fmt("BF16 model, bf16 compute", base16),
        f"quantization error / bf16-compute error (mean): {dev[1] / base16[1]:.1f}x",
    ])
    max_abs, mean_abs, top1 = BOUNDS[kind]
    assert dev[0] < max_abs and dev[1] < mean_abs and dev[2] >= top1, dev
    assert dev_long[0] < max_abs * 1.5 and dev_long[1] < mean_abs and dev_long[2] >= top1, dev_long


@pytest.mark.parametrize("to", ("bf16", "f32"))
def test_deepseek_block_fp8_dequantized_loads_and_is_close(converter, to):
    sample = "deepseek-v3-tiny"
    out = converter.dequantize(sample, "fp8-block", to)
    g = _golden(sample)
    model = _load(out, torch.float32)
    assert getattr(model, "hf_quantizer", None) is None
    assert "quantization_config" not in model.config.to_dict()
    dev = _deviation(_logits(model, g["input_ids"]), g["logits"])
    dev_long = _deviation(_logits(model, g["long_input_ids"]), g["long_logits"])
    base16 = _deviation(_logits(_load(SAMPLES / sample, torch.bfloat16), g["input_ids"]), g["logits"])
    report(f"{sample} block FP8 -> dequantize --to {to} (transformers) vs golden", [
        _fmt("fp32 compute", dev),
        _fmt("fp32 compute, 400 tokens", dev_long),
        _fmt("BF16 model, bf16 compute", base16),
    ])
    max_abs, mean_abs, top1 = BOUNDS["fp8-block-dequant"]
    assert dev[0] < max_abs and dev[1] < mean_abs and dev[2] >= top1, dev
    assert dev_long[0] < max_abs * 1.5 and dev_long[1] < mean_abs and dev_long[2] >= top1, dev_long
