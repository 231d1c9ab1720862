"""`dsconvert eval` against Tests/Reference/eval_reference.py (torch + transformers, eager fp32,
weights dequantized exactly in f32): every statistic of the JSON report, on a slice of
Samples/eval.txt and the first multiple-choice items, for a block-FP8 and an INT8 candidate of
the deepseek sample and a per-tensor FP8 qwen2, in both window schemes."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLES, report

SCRIPT = ROOT / "Tests" / "Reference" / "eval_reference.py"
CHARS = 60_000   # about 16 k tokens: 60+ windows of 256
MC_ITEMS = 40

# (relative, absolute) tolerance per statistic: the engine and torch differ by float32 rounding
# (logits within ~1e-5), which moves perplexities by ~1e-6 relative and per-token KL (≈1e-3) by
# ~1e-5 relative; percentiles of a few hundred thousand values move by at most one neighbour.
TOL = {
    "perplexity": (1e-5, 0), "perplexity_error": (1e-3, 0),
    "kl_mean": (2e-3, 1e-7), "kl_mean_error": (5e-3, 1e-8), "kl_median": (5e-3, 1e-7),
    "kl_p90": (5e-3, 1e-7), "kl_p95": (5e-3, 1e-7), "kl_p99": (5e-3, 1e-7), "kl_p999": (1e-2, 1e-6),
    "kl_max": (1e-2, 1e-6),
    "top1_agreement": (0, 2e-4), "top1_agreement_error": (0, 2e-5),
    "ppl_ratio": (1e-5, 0), "ln_ppl_ratio": (0, 1e-5), "ppl_difference": (0, 1e-3),
    "ln_ppl_correlation": (0, 1e-5),
    "delta_p_mean": (0, 1e-6), "delta_p_rms": (2e-3, 1e-7), "delta_p_median": (0, 1e-6),
    "delta_p_p01": (0, 1e-5), "delta_p_p99": (0, 1e-5), "delta_p_min": (0, 1e-4), "delta_p_max": (0, 1e-4),
    "mc_accuracy": (0, 0), "mc_accuracy_norm": (0, 0), "mc_accuracy_delta": (0, 0),
}


def run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} exited with {p.returncode}:\n{p.stderr[-3000:]}"
    return json.loads(p.stdout)


def close(name, got, want):
    rel, ab = TOL[name]
    return abs(got - want) <= ab + rel * abs(want)


@pytest.mark.parametrize("sample,kind,scheme", [
    ("deepseek-v3-tiny", "fp8-block", "dsconvert"),
    ("deepseek-v3-tiny", "int8-channel", "llama.cpp"),
    ("qwen2-tiny", "fp8-tensor", "dsconvert"),
])
def test_eval_matches_transformers(converter, tmp_path, sample, kind, scheme):
    text = tmp_path / "eval-slice.txt"
    text.write_text((SAMPLES / "eval.txt").read_text(encoding="utf-8")[:CHARS], encoding="utf-8")
    mc = tmp_path / "mc.jsonl"
    mc.write_text("".join((SAMPLES / "eval_mc.jsonl").read_text(encoding="utf-8").splitlines(True)[:MC_ITEMS]), encoding="utf-8")
    cand, ref = converter.quantize(sample, kind), SAMPLES / sample
    flags = ["--llama-cpp"] if scheme == "llama.cpp" else []
    ours = run_json([converter.binary, "eval", str(cand), "--ref", str(ref), "--text", str(text), "--ctx", "256",
                     "--mc", str(mc), "--json", "-q", *flags])
    theirs = run_json([sys.executable, str(SCRIPT), str(cand), "--ref", str(ref), "--text", str(text), "--ctx", "256",
                       "--mc", str(mc), *flags])
    assert ours["windows"] == theirs["windows"]
    rows, bad = [], []
    for side in ("candidate", "reference"):
        assert ours[side]["tokens"] == theirs[side]["tokens"]
        for k in ("perplexity", "perplexity_error", "mc_accuracy", "mc_accuracy_norm"):
            ok = close(k, ours[side][k], theirs[side][k])
            rows.append(f"{side:9} {k:22} {ours[side][k]:.8g} vs {theirs[side][k]:.8g}{'' if ok else '  <-- differs'}")
            bad += [] if ok else [f"{side}.{k}"]
    for k in TOL:
        if k in theirs["comparison"]:
            got, want = ours["comparison"][k], theirs["comparison"][k]
            ok = close(k, got, want)
            rows.append(f"comparison {k:21} {got:.8g} vs {want:.8g}{'' if ok else '  <-- differs'}")
            bad += [] if ok else [k]
    report(f"eval {sample} {kind} ({scheme} windows): dsconvert vs transformers", rows)
    assert not bad, f"statistics that differ from the reference: {bad}"
