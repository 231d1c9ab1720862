"""The calibration searches against NVIDIA ModelOpt itself (`modelopt.torch.quantization.calib.
histogram`: `_compute_amax_entropy`, `_compute_amax_percentile`, `_compute_amax_mse`), the code
whose algorithm Sources/Calibration follows. The fast tier checks the Swift searches against
Tests/Reference/calib_reference.py on the histograms of seeds 1 and 2 (AmaxSearchTests); here the
same histograms go through ModelOpt, and every chosen bin must agree with that reference, so
dsconvert, the reference and ModelOpt choose the same amax.

ModelOpt installs without its heavy dependencies (`make test-interop`: `pip install --no-deps
nvidia-modelopt` plus omegaconf, pulp and nvidia-ml-py); it runs on the CPU here.
"""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import ROOT

REFERENCE = ROOT / "Tests" / "Reference" / "calib_reference.py"

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from modelopt.torch.quantization.calib import histogram as mo


def cases():
    out = []
    for seed in (1, 2):
        text = subprocess.run([sys.executable, str(REFERENCE), str(seed)], check=True, capture_output=True, text=True).stdout
        out += [json.loads(line) for line in text.splitlines() if line.strip()]
    return out


CASES = cases()


def tensors(c):
    counts = torch.tensor(c["counts"], dtype=torch.float64)
    width = float.fromhex(c["width"])
    edges = torch.arange(len(c["counts"]) + 1, dtype=torch.float64) * width
    return counts, edges


def bin_of(amax, edges):
    """The bin whose upper edge is `amax` (ModelOpt returns edges[i])."""
    i = int(torch.argmin((edges - float(amax)).abs()))
    # ModelOpt returns the edge as float32: within its rounding, and far closer than a bin width.
    assert abs(float(edges[i]) - float(amax)) <= 1e-6 * max(1.0, abs(float(amax))), (amax, edges[i])
    return i


@pytest.mark.parametrize("k", [k for k, c in enumerate(CASES) if "kl_bin" in c])
def test_entropy_bin_matches_modelopt(k):
    c = CASES[k]
    counts, edges = tensors(c)
    amax = mo._compute_amax_entropy(counts.numpy(), edges.numpy(), 8, False, stride=1, start_bin=128)
    assert bin_of(amax, edges) == c["kl_bin"], f"{len(c['counts'])} bins"


@pytest.mark.parametrize("k", range(len(CASES)))
@pytest.mark.parametrize("p", [99.9, 99.99])
def test_percentile_bin_matches_modelopt(k, p):
    c = CASES[k]
    counts, edges = tensors(c)
    amax = mo._compute_amax_percentile(counts.numpy(), edges.numpy(), p)
    want = c["pct_bin" if p == 99.9 else "pct9999_bin"]
    assert bin_of(amax, edges) == want, f"{len(c['counts'])} bins, p {p}"


def modelopt_mse_int8(counts, edges):
    """ModelOpt's `_compute_amax_mse` loop with its own CPU fake quantizer called as intended.

    ModelOpt 0.47's `_compute_amax_mse` calls `fake_tensor_quant(centers, amax, num_bits, unsigned)`
    positionally, but `FakeTensorQuantFunction.forward` takes `(inputs, amax, bias=None,
    num_bits=8, unsigned=False, narrow_range=True, ...)`: the 8 lands in `bias` (subtracted from
    every centre) and `unsigned` in `num_bits`, so its histogram MSE picks meaningless bins
    (`test_modelopt_mse_call_is_still_shifted` keeps watch). This is the same loop — f32 centres,
    the same fake quantizer, `((q - c) ** 2 * counts).mean()` in f32, first argmin — with the
    arguments by name."""
    from modelopt.torch.quantization.tensor_quant import fake_tensor_quant
    centers = (edges[1:] + edges[:-1]) / 2
    mses = []
    for i in range(128, len(centers)):
        q = fake_tensor_quant(centers, centers[i], None, 8, False, True)
        mses.append(float(((q - centers) ** 2 * counts).mean()))
    return 128 + int(np.argmin(mses))


def test_modelopt_mse_call_is_still_shifted():
    """The positional call of ModelOpt's `_compute_amax_mse` still misreads its arguments (when a
    release fixes it, compare `_compute_amax_mse` directly instead of `modelopt_mse_int8`)."""
    from modelopt.torch.quantization.tensor_quant import fake_tensor_quant
    x, amax = torch.linspace(0, 10, 11), torch.tensor(4.0)
    intended = fake_tensor_quant(x, amax, None, 8, False, True)
    assert torch.allclose(intended[:5], torch.tensor([0.0, 1.007874, 2.015748, 2.992126, 4.0]), atol=1e-6)
    assert not torch.allclose(fake_tensor_quant(x, amax, 8, False), intended)


@pytest.mark.parametrize("k", [k for k, c in enumerate(CASES) if c["mse_int8_bin"] is not None])
def test_mse_int8_matches_modelopt(k):
    c = CASES[k]
    counts = torch.tensor(c["counts"], dtype=torch.float32)
    edges = torch.arange(len(c["counts"]) + 1, dtype=torch.float32) * np.float32(float.fromhex(c["width"]))
    # The chosen bin (its centre may differ in the last bit: the reference forms edges in f64).
    assert modelopt_mse_int8(counts, edges) == c["mse_int8_bin"], f"{len(c['counts'])} bins"
