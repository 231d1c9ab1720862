"""DeepSeek block FP8 (`dsconvert quantize --fp8`) against a torch reference.

The reference is the arithmetic of DeepSeek's own FP8 cast written with torch ops: f32 weights,
128x128 blocks (edge blocks zero-padded), amax per block, scale = amax.clamp(min=1e-12) / 448,
q = (w / scale).clamp(-448, 448).to(torch.float8_e4m3fn); dequantization (q.float() * scale)
rounded to the target dtype. Values and scales must be identical, bit for bit, for every
quantized weight of every sample, and so must `dsconvert dequantize --to bf16|f32`.
"""
import pytest
import torch

from conftest import SAMPLES, SAMPLE_NAMES, read_checkpoint, read_config, report

BLOCK = 128


def torch_block_fp8(w, block=BLOCK):
    w32 = w.to(torch.float32)
    r, c = w32.shape
    rp, cp = -(-r // block) * block, -(-c // block) * block
    padded = torch.zeros(rp, cp, dtype=torch.float32)
    padded[:r, :c] = w32
    blocks = padded.view(rp // block, block, cp // block, block)
    amax = blocks.abs().amax(dim=(1, 3))
    scale = amax.clamp(min=1e-12) / 448.0
    q = (blocks / scale[:, None, :, None]).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q.reshape(rp, cp)[:r, :c].contiguous(), scale


def torch_block_dequant(q, scale, dtype, block=BLOCK):
    r, c = q.shape
    s = scale.repeat_interleave(block, 0).repeat_interleave(block, 1)[:r, :c]
    return (q.to(torch.float32) * s).to(dtype)


def _ndiff(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return -1
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32}[a.element_size()]
    return int((a.contiguous().view(view) != b.contiguous().view(view)).sum())


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_block_fp8_equals_torch_reference(converter, sample):
    out = converter.quantize(sample, "fp8-block")
    cfg = read_config(out)
    assert cfg["quantization_config"]["weight_block_size"] == [BLOCK, BLOCK]
    src, _ = read_checkpoint(SAMPLES / sample)
    dst, _ = read_checkpoint(out)
    rows, bad, n, partial = [], [], 0, 0
    for name in sorted(dst):
        if not name.endswith(".weight_scale_inv"):
            continue
        m = name[: -len(".weight_scale_inv")]
        q_ref, s_ref = torch_block_fp8(src[m + ".weight"])
        dq, ds = _ndiff(dst[m + ".weight"], q_ref), _ndiff(dst[name], s_ref)
        n += 1
        shape = tuple(q_ref.shape)
        if shape[0] % BLOCK or shape[1] % BLOCK:
            partial += 1
        if dq or ds:
            bad.append(f"{m} {shape}: {dq} values, {ds} scales differ")
    rows.append(f"{n} weights ({partial} with partial edge blocks), {len(bad)} differ")
    report(f"{sample}: block FP8 vs torch float8_e4m3fn reference", rows + bad[:10])
    assert n > 0
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("to", ("bf16", "f32"))
@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_block_fp8_dequantize_equals_torch_reference(converter, sample, to):
    q_dir = converter.quantize(sample, "fp8-block")
    deq = converter.dequantize(sample, "fp8-block", to)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[to]
    qt, _ = read_checkpoint(q_dir)
    dt, _ = read_checkpoint(deq)
    src, _ = read_checkpoint(SAMPLES / sample)
    n, worst = 0, 0.0
    for name in qt:
        if not name.endswith(".weight_scale_inv"):
            continue
        m = name[: -len(".weight_scale_inv")]
        ref = torch_block_dequant(qt[m + ".weight"], qt[name], dtype)
        assert _ndiff(dt[m + ".weight"], ref) == 0, m
        assert (m + ".weight_scale_inv") not in dt
        w = src[m + ".weight"].float()
        worst = max(worst, float(((ref.float() - w).abs() / w.abs().amax()).max()))
        n += 1
    assert n > 0
    # Round trip: FP8 made from BF16 comes back with the same bytes (docs/reference.md).
    if to == "bf16":
        again = converter.quantize(sample, "fp8-block", input_dir=deq, label=f"{sample}-roundtrip")
        rt, _ = read_checkpoint(again)
        for name in qt:
            assert _ndiff(rt[name], qt[name]) == 0, f"round trip changed {name}"
    report(f"{sample}: dequantize --to {to} vs torch", [f"{n} weights identical; max |dequant - bf16| / amax(tensor) = {worst:.4g}"])
