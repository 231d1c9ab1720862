"""The committed engine fixture Tests/Fixtures/quantized_golden_logits.safetensors is what
Tests/Reference/quantized_goldens.py computes today: transformers fp32 on the exactly dequantized
weights of dsconvert's quantized samples (and of the nonzero-bias deepseek copy). Regenerate it
with the same script if this fails after an intended change."""
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

from conftest import ROOT, SAMPLES

ENTRIES = {
    "ds-fp8-block": ("deepseek-v3-tiny", "fp8-block"),
    "ds-fp8-channel": ("deepseek-v3-tiny", "fp8-channel"),
    "ds-int8-channel": ("deepseek-v3-tiny", "int8-channel"),
    "qwen2-fp8-block": ("qwen2-tiny", "fp8-block"),
    "qwen2-int8-tensor": ("qwen2-tiny", "int8-tensor"),
    "llama-fp8-block": ("llama-tiny", "fp8-block"),
    "llama-fp8-tensor": ("llama-tiny", "fp8-tensor"),
}
SCRIPT = ROOT / "Tests" / "Reference" / "quantized_goldens.py"


def test_committed_quantized_goldens_are_current(converter, tmp_path):
    pairs = [f"{name}={converter.quantize(sample, kind)}" for name, (sample, kind) in ENTRIES.items()]
    bias = tmp_path / "bias-ds"
    subprocess.run([sys.executable, str(SCRIPT), "--bias-copy", str(SAMPLES / "deepseek-v3-tiny"), str(bias)], check=True)
    pairs.append(f"bias-ds={bias}")
    out = tmp_path / "goldens.safetensors"
    subprocess.run([sys.executable, str(SCRIPT), str(out), *pairs], check=True, capture_output=True)
    now, committed = load_file(str(out)), load_file(str(ROOT / "Tests" / "Fixtures" / "quantized_golden_logits.safetensors"))
    assert sorted(now) == sorted(committed)
    for k in committed:
        if k.endswith("/logits"):
            assert np.abs(now[k] - committed[k]).max() <= 1e-5, k
        else:
            assert np.array_equal(now[k], committed[k]), k
