"""A .dspack loaded into a transformers model on the CPU with the Python reader
(Formats/python/dspack): the logits equal, bit for bit, those of the same model loaded from its
safetensors folder by `AutoModelForCausalLM.from_pretrained`; FP8 weights come back as
torch.float8_e4m3fn tensors equal to safetensors.torch's reading of the quantized folder.
"""
import json
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

from conftest import GOLDEN, ROOT, SAMPLES, read_checkpoint, report

sys.path.insert(0, str(ROOT / "Formats" / "python"))
import dspack  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def _model_from_pack(path, dtype):
    """A transformers model built from the pack's embedded config.json, its weights the reader's
    tensors (views of the mapping) handed to `from_pretrained(None, config=, state_dict=)`, so that
    transformers' own loading (key renames, fused experts, tied weights, dtype casts) applies."""
    pack = dspack.open(path)
    config = json.loads(pack.file("config.json"))
    cfg = AutoConfig.for_model(config.pop("model_type"), **config)
    cls = AutoModelForCausalLM._model_mapping[type(cfg)]
    tensors = dspack.load(path)
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    return cls.from_pretrained(None, config=cfg, state_dict=tensors, dtype=dtype).eval()


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16))
@pytest.mark.parametrize("sample", ("qwen2-tiny", "llama-tiny", "deepseek-v3-tiny"))
def test_pack_loads_into_transformers_with_identical_logits(converter, sample, dtype):
    pack = converter.run(["pack", str(SAMPLES / sample), str(converter.base / f"{sample}.dspack")], f"{sample}.dspack")
    ids = load_file(str(GOLDEN / f"{sample}.safetensors"))["input_ids"].long()
    ref = AutoModelForCausalLM.from_pretrained(str(SAMPLES / sample), dtype=dtype).eval()
    model = _model_from_pack(pack, dtype)
    with torch.no_grad():
        a = ref(input_ids=ids).logits
        b = model(input_ids=ids).logits
    report(f"{sample} {dtype}: pack vs safetensors", [f"logits {tuple(a.shape)}, max |Δ| {(a.float() - b.float()).abs().max().item()}"])
    assert torch.equal(a, b)


def test_fp8_weights_come_back_as_float8_e4m3fn(converter):
    q = converter.quantize("deepseek-v3-tiny", "fp8-block")
    pack = converter.run(["pack", str(q), str(converter.base / "ds-fp8.dspack")], "ds-fp8.dspack")
    ref, _ = read_checkpoint(q)
    got = dspack.load(pack)
    fp8 = [n for n, t in ref.items() if t.dtype == torch.float8_e4m3fn]
    assert len(fp8) > 20
    assert set(got) == set(ref)
    for n, t in ref.items():
        assert got[n].dtype == t.dtype, n
        assert got[n].shape == t.shape, n
        assert torch.equal(got[n].view(torch.uint8), t.view(torch.uint8)), n
