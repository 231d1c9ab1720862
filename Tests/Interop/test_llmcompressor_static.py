"""dsconvert's static W8A8 checkpoints against llm-compressor's own (issue 16 item 6). Opt-in:
`make test-llmcompressor` builds .venv-llmc (llm-compressor 0.14 pins an older torch than the
interop tier's) and runs this file with DSCONVERT_LLMCOMPRESSOR=1; without it the file is not
collected.

For qwen2-tiny, llama-tiny and deepseek-v3-tiny and both static schemes (INT8 W8A8: per-channel
INT8 weights, static per-tensor INT8 activations; FP8: llm-compressor's `FP8` preset, per-tensor
weights and activations), llm-compressor's oneshot (Tests/Reference/llmcompressor_static.py, its
global-maximum `static_minmax` observer) and `dsconvert calibrate --method minmax` +
`dsconvert quantize ... --act static --ranges` run on the same windows of Samples/calib.txt.
What llm-compressor 0.14 does, read from its source and confirmed here:
* it observes the input of every module matching `targets: [Linear]` less `ignore`: lm_head is
  ignored by the recipe (as dsconvert never quantizes it), deepseek's router is no nn.Linear in
  transformers 5, and the fused experts are linearised into one Linear per expert projection, every
  token through every expert (dsconvert's default all-experts mode);
* calibration runs the unquantized model (its sequential pipeline keeps quantization disabled
  while observing and propagating), so the maxima are those of the plain forward;
* input_scale = max(|min|, |max|) / (bit range / 2) computed in the observed activation's dtype
  (calculate_qparams), stored with shape [1] in the weight's dtype.
So the model runs twice on llm-compressor's side: in BF16 as people run it (its checkpoint: names,
shapes, dtypes, config, weights and weight_scale byte for byte; its input_scale from maxima of
BF16 activations) and in F32 as dsconvert's engine computes (maxima and input scales to the bit).
"""
import json
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from conftest import ROOT, SAMPLES, read_config, report

sys.path.insert(0, str(ROOT / "Tests" / "Reference"))
from st_raw import read_dir  # noqa: E402

RUNNER = ROOT / "Tests" / "Reference" / "llmcompressor_static.py"
TEXT = SAMPLES / "calib.txt"
WINDOWS = int(os.environ.get("DSCONVERT_LLMC_SAMPLES", "16"))
CTX = 256
HALF_RANGE = {"int8": np.float32(127.5), "fp8": np.float32(448.0)}
QUANTIZE = {"int8": ["--int8"], "fp8": ["--fp8", "--granularity", "tensor"]}
MODELS = ("qwen2-tiny", "llama-tiny", "deepseek-v3-tiny")
SCHEMES = ("int8", "fp8")
_runs = {}


def llmcompressor(base, sample, scheme, dtype):
    key = (sample, scheme, dtype)
    if key not in _runs:
        out = base / f"llmc-{sample}-{scheme}-{dtype}"
        proc = subprocess.run([sys.executable, str(RUNNER), str(SAMPLES / sample), scheme, dtype, str(TEXT), str(WINDOWS), str(CTX), str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"llm-compressor oneshot on {sample} ({scheme}, {dtype}) exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
        with open(out / "observed.json") as f:
            observed = json.load(f)
        assert observed["windows"] == WINDOWS and observed["ctx"] == CTX
        _runs[key] = (out, observed["inputs"])
    return _runs[key]


def dsconvert(converter, sample, scheme):
    """(checkpoint dir, {module: amax}) of calibrate --method minmax + quantize --act static."""
    name = f"{sample}-{scheme}-minmax"
    ranges = converter.base / f"{name}.json"
    converter.run(["calibrate", str(SAMPLES / sample), "--text", str(TEXT), "--samples", str(WINDOWS), "--ctx", str(CTX),
                   "--method", "minmax", "--target", scheme, "-o", str(ranges)], f"{name}.json")
    out = converter.run(["quantize", *QUANTIZE[scheme], "--act", "static", "--ranges", str(ranges), str(SAMPLES / sample),
                         str(converter.base / f"{name}-static")], f"{name}-static")
    with open(ranges) as f:
        r = json.load(f)
    assert r["windows"] == WINDOWS and r["ctx"] == CTX and r["expert_mode"] == "all"
    return out, {c: i["amax"] for i in r["inputs"] for c in i["consumers"]}


def bf16_bits(x):
    return int(np.asarray(x, dtype=ml_dtypes.bfloat16).reshape(-1).view(np.uint16)[0])


def input_scales(tensors):
    return {k[: -len(".input_scale")]: v for k, v in tensors.items() if k.endswith(".input_scale")}


# ------------------------------------------------------------------ the BF16 checkpoint

@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sample", MODELS)
def test_checkpoint_matches_llmcompressor(converter, sample, scheme):
    """The same tensors (names, shapes, dtypes) and, input_scale aside, the same bytes: weights,
    weight_scale and every tensor left high precision."""
    theirs_dir, _ = llmcompressor(converter.base, sample, scheme, "bfloat16")
    ours_dir, _ = dsconvert(converter, sample, scheme)
    theirs, ours = read_dir(theirs_dir), read_dir(ours_dir)
    assert sorted(theirs) == sorted(ours), (sorted(set(theirs) - set(ours))[:8], sorted(set(ours) - set(theirs))[:8])
    differ = []
    for k in sorted(theirs):
        a, b = theirs[k], ours[k]
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (k, a.dtype, a.shape, b.dtype, b.shape)
        if not k.endswith(".input_scale") and a.tobytes() != b.tobytes():
            differ.append(k)
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:6]}"
    scales = input_scales(ours)
    assert scales and all(v.shape == (1,) and v.dtype == ml_dtypes.bfloat16 for v in scales.values())
    assert set(scales) == {k[: -len(".weight_scale")] for k in ours if k.endswith(".weight_scale")}
    report(f"{sample} {scheme}: llm-compressor's checkpoint", [
        f"{len(theirs)} tensors, same names / shapes / dtypes; all but the {len(scales)} input_scale byte-identical"])


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sample", MODELS)
def test_quantization_config_matches_llmcompressor(converter, sample, scheme):
    """Every field vLLM reads is the same; llm-compressor also records its observers' names (and a
    few empty fields), which nothing reads; `ignore` names the same modules (llm-compressor lists
    the modules it left, dsconvert the patterns)."""
    import torch
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils.match import is_match

    theirs_dir, _ = llmcompressor(converter.base, sample, scheme, "bfloat16")
    ours_dir, _ = dsconvert(converter, sample, scheme)
    a, b = read_config(theirs_dir), read_config(ours_dir)
    rest = sorted(k for k in set(a) | set(b) if k != "quantization_config" and a.get(k) != b.get(k))
    assert not rest, [(k, a.get(k), b.get(k)) for k in rest]
    qa, qb = a["quantization_config"], b["quantization_config"]
    for k in ("quant_method", "format", "quantization_status", "kv_cache_scheme", "global_compression_ratio"):
        assert qa.get(k) == qb.get(k), (k, qa.get(k), qb.get(k))
    ca, cb = QuantizationConfig.model_validate(qa), QuantizationConfig.model_validate(qb)
    (ga,), (gb,) = ca.config_groups.values(), cb.config_groups.values()
    assert ga.targets == gb.targets == ["Linear"]
    informative = {"observer", "observer_kwargs"}
    for part in ("weights", "input_activations"):
        da = {k: v for k, v in getattr(ga, part).model_dump().items() if k not in informative}
        db = {k: v for k, v in getattr(gb, part).model_dump().items() if k not in informative}
        assert da == db, (part, da, db)
    assert ga.output_activations is None and gb.output_activations is None
    assert ga.input_activations.dynamic is False and ga.input_activations.strategy == "tensor"
    # `ignore`: the same modules left high precision, by each list's own matching.
    modules = sorted({k.rsplit(".", 1)[0] for k in read_dir(SAMPLES / sample) if k.endswith(".weight")})
    dummy = torch.nn.Linear(1, 1, bias=False, device="meta")
    ig_a = [m for m in modules if is_match(m, dummy, ca.ignore or [])]
    ig_b = [m for m in modules if is_match(m, dummy, cb.ignore or [])]
    assert ig_a == ig_b, (ca.ignore, cb.ignore)
    extra = sorted(set(qa) - set(qb))
    report(f"{sample} {scheme}: quantization_config", [
        f"same fields; llm-compressor adds {extra} and observer names "
        f"(weights {ga.weights.observer}, inputs {ga.input_activations.observer})",
        f"ignore: llm-compressor {ca.ignore}, dsconvert {cb.ignore} -> the same {len(ig_a)} modules"])


# ------------------------------------------------------------------ input_scale

@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sample", MODELS)
def test_input_scale_from_f32_activations_matches_to_the_bit(converter, sample, scheme):
    """llm-compressor on the F32 model: its observer's maxima are dsconvert's minmax amax up to
    the last bits of F32 op-order differences (transformers vs the engine); its input_scale is
    exactly f32(max / half range), and rounded to the model dtype it is dsconvert's to the bit
    wherever the maxima agree, within one BF16 ulp elsewhere."""
    theirs_dir, observed = llmcompressor(converter.base, sample, scheme, "float32")
    ours_dir, amax = dsconvert(converter, sample, scheme)
    theirs, ours = input_scales(read_dir(theirs_dir)), input_scales(read_dir(ours_dir))
    assert sorted(theirs) == sorted(ours) == sorted(observed)
    h = HALF_RANGE[scheme]
    rel, same_max, same_bits, off = [], 0, 0, []
    for m in sorted(ours):
        o = observed[m]
        assert o["dtype"] == "float32" and o["shape"] == [1]
        t = np.float32(max(-o["min"], o["max"]))
        assert theirs[m].dtype == np.float32 and theirs[m].shape == (1,)
        assert theirs[m][0] == t / h, (m, theirs[m][0], t / h)  # calculate_qparams, as read
        a = np.float32(amax[m])
        rel.append(abs(float(t) - float(a)) / float(a))
        ulps = bf16_bits(ours[m]) - bf16_bits(theirs[m].astype(ml_dtypes.bfloat16))
        assert bf16_bits(ours[m]) == bf16_bits(a / h)  # dsconvert's own rule, for the record
        if t == a:
            same_max += 1
            assert ulps == 0, (m, float(t), float(a))
        assert abs(ulps) <= 1, (m, float(t), float(a), ulps)
        same_bits += ulps == 0
        if ulps:
            off.append(f"{m}: {ulps:+d} ulp (max {float(t):.9g} vs {float(a):.9g})")
    assert max(rel) <= 1e-5, max(rel)
    report(f"{sample} {scheme}: F32 llm-compressor vs dsconvert, {len(ours)} inputs, {WINDOWS} x {CTX} tokens", [
        f"observed maxima: {same_max} identical, largest relative difference {max(rel):.3g}",
        f"input_scale (BF16): {same_bits} identical, {len(off)} one ulp apart", *off[:6]])


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sample", MODELS)
def test_input_scale_from_bf16_activations(converter, sample, scheme):
    """llm-compressor on the BF16 model observes BF16 activations (each a BF16 rounding of what the
    F32 engine computes, and the rounding errors of a BF16 forward on top), so its maxima differ
    from dsconvert's by BF16 noise: its input_scale is bf16(max / half range) of its own maxima,
    and the figures against dsconvert's are reported (bounded by 5 % to catch a wrong input; on
    16 windows the largest was 2.6 %, an expert's down_proj input in deepseek's last layer)."""
    theirs_dir, observed = llmcompressor(converter.base, sample, scheme, "bfloat16")
    ours_dir, amax = dsconvert(converter, sample, scheme)
    theirs, ours = input_scales(read_dir(theirs_dir)), input_scales(read_dir(ours_dir))
    assert sorted(theirs) == sorted(ours) == sorted(observed)
    h = HALF_RANGE[scheme]
    hist, rel = {}, []
    for m in sorted(ours):
        o = observed[m]
        assert o["dtype"] == "bfloat16" and o["shape"] == [1]
        t = max(-o["min"], o["max"])
        # calculate_qparams in BF16: bf16(bf16 max / bf16(half range)); both halves are exact in BF16.
        want = np.asarray(np.float32(t) / h, dtype=ml_dtypes.bfloat16)
        assert bf16_bits(theirs[m]) == bf16_bits(want), (m, theirs[m], want)
        rel.append((t - amax[m]) / amax[m])
        d = bf16_bits(ours[m]) - bf16_bits(theirs[m])
        hist[d] = hist.get(d, 0) + 1
    assert max(abs(r) for r in rel) <= 0.05, max(rel, key=abs)
    report(f"{sample} {scheme}: BF16 llm-compressor vs dsconvert, {len(ours)} inputs", [
        "input_scale, dsconvert minus llm-compressor in BF16 ulps: "
        + ", ".join(f"{k:+d}: {v}" for k, v in sorted(hist.items())),
        f"observed maxima (BF16 vs F32 engine): relative difference {min(rel):+.3g} ... {max(rel):+.3g}"])
