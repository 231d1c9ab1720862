"""Static check of vLLM / SGLang's loader rules on dsconvert's block-FP8 output.

vLLM and SGLang cannot run here (no GPU), so their rules are checked on the files:
* config.json: `quant_method: fp8`, `fmt: e4m3`, `activation_scheme: dynamic`,
  `weight_block_size: [128, 128]`;
* every F8_E4M3 tensor is a `.weight` with a sibling `weight_scale_inv`, F32, of shape
  [ceil(out/128), ceil(in/128)]; no `weight_scale` names; no orphan scales; embeddings, lm_head,
  norms, the router `mlp.gate` and its F32 `e_score_correction_bias` stay unquantized.
* Informational: for TP 1, 2, 4, 8, which weights satisfy the 128-divisibility of their
  tensor-parallel partitions, two ways:
  - the split-dim rule (docs/reference.md): column-parallel weights split dim 0, row-parallel dim 1,
    each partition a multiple of 128; replicated weights always pass;
  - vLLM's `validate_fp8_block_shape` (SGLang has the same function) applied to the layers vLLM
    builds (q/k/v fused into QKVParallelLinear, gate/up into MergedColumnParallelLinear,
    DeepSeek's q_a + kv_a into a replicated merged layer, experts into FusedMoE), which also
    rejects a merged layer whose non-last part is not a multiple of 128 even at TP 1, and
    FusedMoE's "output_size of gate's and up's weight = N is not divisible by block_n" rule
    (expert parallelism keeps experts whole). Head-count divisibility is listed too.
  The samples are small (hidden 128 / 256), so most TP sizes fail; that is expected and printed,
  not asserted (run with -s to see the tables).
"""
import math
import re

import pytest
import torch

from conftest import SAMPLES, SAMPLE_NAMES, read_checkpoint, read_config, report

BLOCK = 128
TP_SIZES = (1, 2, 4, 8)
NEVER_QUANTIZED = re.compile(r"(embed_tokens|lm_head|norm|mlp\.gate\.|e_score_correction_bias|eh_proj|shared_head)")


def _ceil(a, b):
    return -(-a // b)


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_block_fp8_names_dtypes_scale_shapes(converter, sample):
    out = converter.quantize(sample, "fp8-block")
    q = read_config(out)["quantization_config"]
    assert q == {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [BLOCK, BLOCK]}
    src, _ = read_checkpoint(SAMPLES / sample)
    dst, files = read_checkpoint(out)
    fp8 = [n for n, t in dst.items() if t.dtype == torch.float8_e4m3fn]
    assert fp8
    assert not [n for n in dst if n.endswith(".weight_scale") or n.endswith(".input_scale")]
    for n in fp8:
        assert n.endswith(".weight"), n
        s = n[: -len(".weight")] + ".weight_scale_inv"
        assert s in dst, f"{n} has no {s}"
        assert dst[s].dtype == torch.float32, s
        out_dim, in_dim = dst[n].shape
        assert tuple(dst[s].shape) == (_ceil(out_dim, BLOCK), _ceil(in_dim, BLOCK)), (s, tuple(dst[s].shape))
        assert files[s] == files[n], f"{s} is not in the same file as its weight"
        assert torch.isfinite(dst[s]).all() and (dst[s] > 0).all(), s
    for s in (n for n in dst if n.endswith(".weight_scale_inv")):
        assert dst[s[: -len("_scale_inv")]].dtype == torch.float8_e4m3fn, f"orphan scale {s}"
    for n, t in src.items():
        if NEVER_QUANTIZED.search(n):
            assert dst[n].dtype == t.dtype and torch.equal(dst[n], t), f"{n} must stay as it is"
    if "model.layers.1.mlp.gate.e_score_correction_bias" in dst:
        assert dst["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == torch.float32


# ------------------------------------------------------------------ TP partitions (informational)

def _split_rule(name, shape, tp, cfg):
    """The split-dim rule for one weight: None when every partition is a multiple of 128."""
    out_dim, in_dim = shape
    proj = name.split(".")[-2]
    if tp == 1 or proj in ("q_a_proj", "kv_a_proj_with_mqa"):
        return None  # not split (TP 1: the whole weight, partial edge blocks allowed) or replicated
    if proj in ("o_proj", "down_proj"):
        if in_dim % tp:
            return f"in {in_dim} not divisible by TP"
        return None if (in_dim // tp) % BLOCK == 0 else f"in/TP = {in_dim // tp}"
    if proj in ("k_proj", "v_proj"):
        nkv = cfg.get("num_key_value_heads", cfg["num_attention_heads"])
        hd = out_dim // nkv
        part = max(1, nkv // tp) * hd  # heads replicated when TP > kv heads
        return None if part % BLOCK == 0 else f"out part = {part}"
    if out_dim % tp:
        return f"out {out_dim} not divisible by TP"
    return None if (out_dim // tp) % BLOCK == 0 else f"out/TP = {out_dim // tp}"


def _vllm_validate(tp, input_size, output_size, input_per_part, parts):
    """vLLM's / SGLang's validate_fp8_block_shape (fp8_utils.py), block 128x128."""
    if tp > 1 and input_size // input_per_part == tp and input_per_part % BLOCK:
        return f"input_size_per_partition = {input_per_part} is not divisible by block_k = {BLOCK}"
    is_tp_split = tp > 1 and output_size // sum(parts) == tp
    merged = len(parts) > 1
    if is_tp_split or merged:
        for p in (parts if is_tp_split else parts[:-1]):
            if p % BLOCK:
                return f"output_partition_size = {p} is not divisible by block_n = {BLOCK}"
    return None


def _vllm_layers(dst, cfg):
    """{layer label: (member weight names, function tp -> error or None)} for layer 0/1 shapes."""
    shapes = {n: tuple(t.shape) for n, t in dst.items() if t.dtype == torch.float8_e4m3fn}
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    layers = {}

    def add(label, entry):
        names, check = entry
        if label in layers:
            layers[label][0].extend(names)
        else:
            layers[label] = (list(names), check)

    def column(names, ins, outs):
        def check(tp):
            if any(o % tp for o in outs):
                return "output not divisible by TP"
            return _vllm_validate(tp, ins, sum(outs), ins, [o // tp for o in outs])
        return names, check

    def row(names, ins, out):
        def check(tp):
            if ins % tp:
                return "input not divisible by TP"
            return _vllm_validate(tp, ins, out, ins // tp, [out])
        return names, check

    def replicated(names, ins, outs):
        return names, (lambda tp: _vllm_validate(1, ins, sum(outs), ins, list(outs)))

    def qkv(names, hidden, hd):
        def check(tp):
            if nh % tp:
                return f"{nh} heads not divisible by TP"
            if (tp >= nkv and tp % nkv) or (tp < nkv and nkv % tp):
                return f"{nkv} kv heads incompatible with TP"
            kvp = max(1, nkv // tp)
            output_size = (nh // tp + 2 * kvp) * tp * hd
            return _vllm_validate(tp, hidden, output_size, hidden, [nh // tp * hd, kvp * hd, kvp * hd])
        return names, check

    def fused_moe(names, inter, n_experts, ep):
        def check(tp):
            if ep:
                if n_experts % tp:
                    return f"{n_experts} experts not divisible by EP"
                part = inter
            else:
                if inter % tp:
                    return "intermediate not divisible by TP"
                part = inter // tp
            if part % BLOCK:
                return f"output_size of gate's and up's weight = {part} is not divisible by block_n = {BLOCK}"
            return None
        return names, check

    prefixes = sorted({n.rsplit(".", 2)[0] for n in shapes if ".experts." not in n})
    # Attention and dense / shared MLPs, keyed by their module prefix.
    for p in prefixes:
        layer = re.sub(r"layers\.\d+", "layers.L", p)
        if p.endswith("self_attn"):
            if f"{p}.q_proj.weight" in shapes:
                q, k, v = (shapes[f"{p}.{x}_proj.weight"] for x in "qkv")
                add(f"{layer}.qkv_proj {q[0]}+{k[0]}+{v[0]} x {q[1]}",
                                  qkv([f"{p}.{x}_proj" for x in "qkv"], q[1], k[0] // nkv))
            if f"{p}.q_a_proj.weight" in shapes:
                qa, kva = shapes[f"{p}.q_a_proj.weight"], shapes[f"{p}.kv_a_proj_with_mqa.weight"]
                add(f"{layer}.fused_qkv_a_proj {qa[0]}+{kva[0]} x {qa[1]} (replicated)",
                                  replicated([f"{p}.q_a_proj", f"{p}.kv_a_proj_with_mqa"], qa[1], (qa[0], kva[0])))
                for x in ("q_b_proj", "kv_b_proj"):
                    s = shapes[f"{p}.{x}.weight"]
                    add(f"{layer}.{x} {s[0]} x {s[1]}", column([f"{p}.{x}"], s[1], (s[0],)))
            o = shapes[f"{p}.o_proj.weight"]
            add(f"{layer}.o_proj {o[0]} x {o[1]}", row([f"{p}.o_proj"], o[1], o[0]))
        elif f"{p}.gate_proj.weight" in shapes:
            g, d = shapes[f"{p}.gate_proj.weight"], shapes[f"{p}.down_proj.weight"]
            add(f"{layer}.gate_up_proj {g[0]}+{g[0]} x {g[1]}", column([f"{p}.gate_proj", f"{p}.up_proj"], g[1], (g[0], g[0])))
            add(f"{layer}.down_proj {d[0]} x {d[1]}", row([f"{p}.down_proj"], d[1], d[0]))
    experts = sorted({n.split(".experts.")[0] for n in shapes if ".experts." in n})
    for p in experts:
        layer = re.sub(r"layers\.\d+", "layers.L", p)
        g = shapes[f"{p}.experts.0.gate_proj.weight"]
        n_experts = len({n.split(".experts.")[1].split(".")[0] for n in shapes if n.startswith(p + ".experts.")})
        members = [n[: -len(".weight")] for n in shapes if n.startswith(p + ".experts.")]
        add(f"{layer}.experts (FusedMoE, {n_experts} x {g[0]} x {g[1]}, TP-sliced)", fused_moe(members, g[0], n_experts, False))
        add(f"{layer}.experts (FusedMoE, expert parallel EP=N)", fused_moe(members, g[0], n_experts, True))
    return layers


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_tensor_parallel_partitions_report(converter, sample):
    out = converter.quantize(sample, "fp8-block")
    cfg = read_config(out)
    dst, _ = read_checkpoint(out)
    shapes = {n: tuple(t.shape) for n, t in dst.items() if t.dtype == torch.float8_e4m3fn}
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)

    # Split-dim rule, per weight (grouped by projection and shape).
    groups = {}
    for n, s in sorted(shapes.items()):
        key = (re.sub(r"\.\d+\.", ".N.", n[: -len(".weight")]), s)
        groups.setdefault(key, []).append(n)
    rows = [f"{'weight':<58} {'shape':>11}  " + "  ".join(f"TP{tp:<2}" for tp in TP_SIZES)]
    per_weight_ok = {tp: 0 for tp in TP_SIZES}
    for (label, s), names in groups.items():
        verdicts = [_split_rule(names[0], s, tp, cfg) for tp in TP_SIZES]
        for tp, v in zip(TP_SIZES, verdicts):
            per_weight_ok[tp] += len(names) * (v is None)
        cells = "  ".join(("ok  " if v is None else "no  ") for v in verdicts)
        reasons = "; ".join(f"TP{tp}: {v}" for tp, v in zip(TP_SIZES, verdicts) if v)
        rows.append(f"{label + (f' (x{len(names)})' if len(names) > 1 else ''):<58} {str(s):>11}  {cells} {reasons}")
    rows.append("weights passing: " + ", ".join(f"TP{tp} {per_weight_ok[tp]}/{len(shapes)}" for tp in TP_SIZES))
    report(f"{sample}: split-dim rule (partition % 128 == 0) per block-FP8 weight", rows)

    # vLLM's validate_fp8_block_shape on the layers vLLM builds.
    layers = _vllm_layers(dst, cfg)
    covered = {m for names, _ in layers.values() for m in names}
    assert covered == {n[: -len(".weight")] for n in shapes}, sorted({n[: -len(".weight")] for n in shapes} - covered)
    rows, loads = [], {}
    for label, (names, check) in layers.items():
        verdicts = [check(tp) for tp in TP_SIZES]
        rows.append(f"{label:<70} " + "  ".join(("ok" if v is None else "no") for v in verdicts)
                    + "   " + "; ".join(f"TP{tp}: {v}" for tp, v in zip(TP_SIZES, verdicts) if v))
        if "expert parallel" not in label:
            for tp, v in zip(TP_SIZES, verdicts):
                loads[tp] = loads.get(tp, True) and v is None
    heads = {tp: nh % tp == 0 and ((tp < nkv and nkv % tp == 0) or (tp >= nkv and tp % nkv == 0)) for tp in TP_SIZES}
    rows.append(f"heads: {nh} attention / {nkv} kv: TP " + ", ".join(str(tp) for tp in TP_SIZES if heads[tp]) + " divide")
    rows.append("vLLM would load the block-FP8 checkpoint (no EP) at TP: "
                + (", ".join(str(tp) for tp in TP_SIZES if loads[tp] and heads[tp]) or "none of 1, 2, 4, 8"))
    report(f"{sample}: vLLM/SGLang validate_fp8_block_shape per fused layer (TP {', '.join(map(str, TP_SIZES))})", rows)
    # Sanity of the model itself: TP 1 always satisfies the split-dim rule.
    assert per_weight_ok[1] == len(shapes)
