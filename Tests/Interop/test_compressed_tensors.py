"""dsconvert's compressed-tensors output against the compressed-tensors package itself.

For the FP8 per-tensor / per-channel and INT8 per-channel outputs of every sample:
* config.json's quantization_config parses with `QuantizationConfig.model_validate`, names the
  format the package infers for the scheme, and its weight / activation arguments are the
  package's presets (FP8 / FP8_DYNAMIC / W8A8);
* the modules the config quantizes (targets minus ignore, matched with the package's own
  `is_match`) are exactly the modules that carry `weight_scale`, each with the parameter names
  the package's compressor writes and the scale shape / dtype `initialize_module_for_quantization`
  creates;
* the bytes equal what the package computes from the BF16 weights: `calculate_qparams` on the
  min / max, then the registered compressor's `compress` (weight and weight_scale, bit for bit);
* the package's `decompress` equals `dsconvert dequantize --to bf16`, bit for bit;
* edge cases the samples lack (-0.0 weights, all-zero rows, F16 and F32 models) as well.
"""
import json
import shutil

import pytest
import torch
from compressed_tensors.compressors import BaseCompressor, ModelCompressor
from compressed_tensors.compressors.format import infer_module_format
from compressed_tensors.quantization import QuantizationArgs, QuantizationConfig
from compressed_tensors.quantization.lifecycle.initialize import initialize_module_for_quantization
from compressed_tensors.quantization.quant_scheme import FP8, FP8_DYNAMIC, INT8_W8A8
from compressed_tensors.quantization.utils import calculate_qparams
from compressed_tensors.utils.match import is_match
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.utils.quantization_config import CompressedTensorsConfig

from conftest import SAMPLES, SAMPLE_NAMES, read_checkpoint, read_config, report

CT_KINDS = ("fp8-tensor", "fp8-channel", "int8-channel")

EXPECTED = {
    # kind: (format, weights args, input activation args)
    "fp8-tensor": ("float-quantized", FP8["weights"], FP8_DYNAMIC["input_activations"]),
    "fp8-channel": ("float-quantized", FP8_DYNAMIC["weights"], FP8_DYNAMIC["input_activations"]),
    "int8-channel": ("int-quantized", INT8_W8A8["weights"], INT8_W8A8["input_activations"]),
    "int8-tensor": ("int-quantized",
                    QuantizationArgs(num_bits=8, type="int", strategy="tensor", symmetric=True, dynamic=False),
                    INT8_W8A8["input_activations"]),
}

_DUMMY_LINEAR = torch.nn.Linear(1, 1, bias=False, device="meta")


def _parse(directory):
    cfg = read_config(directory)
    qcfg = cfg["quantization_config"]
    qc = QuantizationConfig.model_validate(qcfg)
    assert len(qc.config_groups) == 1, qc.config_groups
    (name, scheme), = qc.config_groups.items()
    return cfg, qcfg, qc, scheme


def _linear_modules(tensors):
    """Modules that are Linear layers: every 2-D `.weight` except embeddings (as vLLM builds them:
    the MoE router `mlp.gate` is a ReplicatedLinear there; transformers fuses the experts)."""
    return sorted(n[: -len(".weight")] for n, t in tensors.items()
                  if n.endswith(".weight") and t.dim() == 2 and "embed_tokens" not in n
                  and t.dtype in (torch.bfloat16, torch.float16, torch.float32))


def _quantized_by_config(modules, scheme, ignore):
    return sorted(m for m in modules
                  if is_match(m, _DUMMY_LINEAR, scheme.targets) and not is_match(m, _DUMMY_LINEAR, ignore or []))


def _package_compress(w, scheme, fmt):
    """The package's own arithmetic: observer min/max in the weight's dtype (as llm-compressor's
    min-max observer), calculate_qparams, then the registered compressor (zero point included,
    as llm-compressor's initialisation always registers one)."""
    args = scheme.weights
    if args.strategy == "channel":
        mn, mx = torch.amin(w, dim=1, keepdim=True), torch.amax(w, dim=1, keepdim=True)
    else:
        mn, mx = torch.aminmax(w)
    scale, zp = calculate_qparams(mn, mx, args)
    compressor = BaseCompressor.get_value_from_registry(fmt)
    out = compressor.compress({"weight": w, "weight_scale": scale, "weight_zero_point": zp}, scheme)
    return out, compressor


def _bits(t):
    """The raw bits of a tensor as an integer tensor of the same element size."""
    return t.contiguous().view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _differs(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
    n = int((_bits(a) != _bits(b)).sum())
    return f"{n} of {a.numel()} elements differ" if n else None


# ------------------------------------------------------------------ config

@pytest.mark.parametrize("kind", CT_KINDS)
@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_quantization_config_parses_as_the_preset(converter, sample, kind):
    out = converter.quantize(sample, kind)
    cfg, qcfg, qc, scheme = _parse(out)
    fmt, weights, acts = EXPECTED[kind]
    assert qc.quant_method == "compressed-tensors"
    assert qc.format == fmt
    assert qc.quantization_status == "compressed"
    assert scheme.targets == ["Linear"]
    assert scheme.weights.model_dump() == weights.model_dump()
    assert scheme.input_activations.model_dump() == acts.model_dump()
    assert scheme.output_activations is None
    assert scheme.weights.dynamic is False and scheme.input_activations.dynamic is True
    assert scheme.input_activations.strategy == "token"
    # The package infers the same format for this scheme on a Linear layer.
    assert infer_module_format(torch.nn.Linear, scheme).value == fmt
    # What transformers builds its quantizer from.
    mc = ModelCompressor.from_compression_config(CompressedTensorsConfig.from_dict(dict(qcfg)))
    assert mc is not None and mc.quantization_config.format == fmt
    assert mc.quantization_config.config_groups == qc.config_groups
    # The model dtype is still named (the scale dtype comes from it).
    assert (cfg.get("torch_dtype") or cfg.get("dtype")) == "bfloat16"
    tensors, _ = read_checkpoint(SAMPLES / sample)
    ignore = qc.ignore or []
    assert "lm_head" in ignore
    if any(n.endswith("mlp.gate.weight") for n in tensors):
        assert any(is_match(n[: -len(".weight")], _DUMMY_LINEAR, ignore) for n in tensors if n.endswith("mlp.gate.weight"))


# ------------------------------------------------------------------ modules, names, shapes

@pytest.mark.parametrize("kind", CT_KINDS)
@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_quantized_modules_have_the_tensors_the_package_expects(converter, sample, kind):
    out = converter.quantize(sample, kind)
    _, _, qc, scheme = _parse(out)
    src, _ = read_checkpoint(SAMPLES / sample)
    dst, _ = read_checkpoint(out)
    modules = _linear_modules(src)

    # Cross-check the Linear list with the transformers model (built on the meta device).
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(SAMPLES / sample))
    hf_linear = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert hf_linear <= set(modules), sorted(hf_linear - set(modules))
    extra = set(modules) - hf_linear  # transformers fuses the experts and has its own router class
    assert all(".mlp.experts." in m or m.endswith(".mlp.gate") for m in extra), sorted(extra)

    wanted = _quantized_by_config(modules, scheme, qc.ignore)
    have = sorted(n[: -len(".weight_scale")] for n in dst if n.endswith(".weight_scale"))
    assert have == wanted, f"quantized by config but no scale: {sorted(set(wanted) - set(have))}; " \
                           f"scale but not quantized by config: {sorted(set(have) - set(wanted))}"
    assert wanted, "nothing quantized"

    compressor = BaseCompressor.get_value_from_registry(qc.format)
    param_names = set(compressor.compression_param_names(scheme))
    assert param_names == {"weight", "weight_scale"}  # symmetric: no weight_zero_point
    for m in wanted:
        w_in = src[m + ".weight"]
        lin = torch.nn.Linear(w_in.shape[1], w_in.shape[0], bias=False, device="meta", dtype=w_in.dtype)
        initialize_module_for_quantization(lin, scheme)
        stored = {n[len(m) + 1:] for n in dst if n.startswith(m + ".") and "." not in n[len(m) + 1:]}
        assert stored - {"bias"} == param_names, (m, stored)
        w, s = dst[m + ".weight"], dst[m + ".weight_scale"]
        assert w.dtype == scheme.weights.pytorch_dtype() and tuple(w.shape) == tuple(w_in.shape), m
        assert s.dtype == lin.weight_scale.dtype and tuple(s.shape) == tuple(lin.weight_scale.shape), \
            (m, s.dtype, tuple(s.shape), lin.weight_scale.dtype, tuple(lin.weight_scale.shape))
    # Everything not quantized is unchanged.
    for n, t in src.items():
        if n.endswith(".weight") and n[: -len(".weight")] in wanted:
            continue
        assert n in dst, n
        assert _differs(dst[n], t) is None, n


# ------------------------------------------------------------------ bytes

def _compare_with_package(src_dir, out_dir, label):
    _, _, qc, scheme = _parse(out_dir)
    src, _ = read_checkpoint(src_dir)
    dst, _ = read_checkpoint(out_dir)
    problems, elements, count = [], 0, 0
    for name in sorted(dst):
        if not name.endswith(".weight_scale"):
            continue
        m = name[: -len(".weight_scale")]
        expected, _ = _package_compress(src[m + ".weight"], scheme, qc.format)
        for key in ("weight", "weight_scale"):
            d = _differs(dst[f"{m}.{key}"], expected[key])
            if d:
                problems.append(f"{m}.{key}: {d}")
        elements += src[m + ".weight"].numel()
        count += 1
    report(f"{label}: bytes vs compressed-tensors {qc.format} ({scheme.weights.strategy})",
           [f"{count} weights, {elements} values, {len(problems)} tensors differ"] + problems[:10])
    assert count > 0
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("kind", CT_KINDS)
@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_bytes_equal_the_package_quantizer(converter, sample, kind):
    _compare_with_package(SAMPLES / sample, converter.quantize(sample, kind), f"{sample} {kind}")


@pytest.mark.parametrize("kind", CT_KINDS)
@pytest.mark.parametrize("sample", ("qwen2-tiny", "deepseek-v3-tiny"))
def test_package_decompress_equals_dsconvert_dequantize(converter, sample, kind):
    q = converter.quantize(sample, kind)
    deq = converter.dequantize(sample, kind, "bf16")
    _, _, qc, scheme = _parse(q)
    qt, _ = read_checkpoint(q)
    dt, _ = read_checkpoint(deq)
    compressor = BaseCompressor.get_value_from_registry(qc.format)
    n = 0
    for name in qt:
        if name.endswith(".weight_scale"):
            m = name[: -len(".weight_scale")]
            ref = compressor.decompress({"weight": qt[m + ".weight"], "weight_scale": qt[name]}, scheme)["weight"]
            assert ref.dtype == torch.bfloat16
            d = _differs(dt[m + ".weight"], ref)
            assert d is None, f"{m}: {d}"
            n += 1
    assert n > 0


# ------------------------------------------------------------------ edge cases

def _edge_checkpoint(tmp_path, dtype):
    """llama-tiny in `dtype` with -0.0 weights, an all-zero row, an all -0.0 row, a row with a
    huge dynamic range (FP8 subnormals, INT8 zeros) and a constant row in q_proj."""
    d = tmp_path / f"llama-edge-{dtype}"
    shutil.copytree(SAMPLES / "llama-tiny", d)
    for p in d.iterdir():
        p.chmod(0o644)
    tensors = load_file(str(d / "model.safetensors"))
    torch_dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[dtype]
    tensors = {k: v.to(torch_dtype) for k, v in tensors.items()}
    w = tensors["model.layers.0.self_attn.q_proj.weight"].clone()
    w[0, :10] = -0.0
    w[1, :] = 0.0
    w[2, :] = -0.0
    w[3, 5] = -0.0
    w[4, :] = w[4, :] * 1e-4
    w[4, 0] = 3.0
    w[5, :] = 0.015625
    w[6, :] = -w[6, :].abs()
    tensors["model.layers.0.self_attn.q_proj.weight"] = w
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    cfg = json.loads((d / "config.json").read_text())
    cfg["torch_dtype"] = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[dtype]
    (d / "config.json").write_text(json.dumps(cfg, indent=2))
    return d


@pytest.mark.parametrize("kind", CT_KINDS + ("int8-tensor",))
@pytest.mark.parametrize("dtype", ("bf16", "f16", "f32"))
def test_edge_cases_equal_the_package_quantizer(converter, tmp_path, dtype, kind):
    src = _edge_checkpoint(tmp_path, dtype)
    out = converter.quantize(None, kind, input_dir=src, label=f"{tmp_path.name}-edge-{dtype}")
    _compare_with_package(src, out, f"llama-tiny edge cases ({dtype}) {kind}")


# ------------------------------------------------------------------ weight-only

@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_weight_only_fp8_is_the_format_the_package_infers(converter, sample):
    """--weight-only drops the activation entry; compressed-tensors then calls the format
    naive-quantized (same F8_E4M3 bytes as the dynamic scheme's weights)."""
    out = converter.quantize(sample, "fp8-channel-weight-only")
    cfg, qcfg, qc, scheme = _parse(out)
    assert scheme.input_activations is None
    assert scheme.weights.model_dump() == FP8_DYNAMIC["weights"].model_dump()
    assert qc.format == infer_module_format(torch.nn.Linear, scheme).value == "naive-quantized"
    mc = ModelCompressor.from_compression_config(CompressedTensorsConfig.from_dict(dict(qcfg)))
    assert mc is not None and mc.quantization_config.format == "naive-quantized"
    # Same weight bytes as the W8A8-dynamic channel output.
    a, _ = read_checkpoint(out)
    b, _ = read_checkpoint(converter.quantize(sample, "fp8-channel"))
    assert sorted(a) == sorted(b)
    for name in a:
        assert _bits(a[name]).equal(_bits(b[name])), name
