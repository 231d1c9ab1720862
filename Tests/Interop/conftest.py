"""Tier 2 (interop, opt-in): dsconvert's output checked against the real Python stack.

Run (after building the CLI):

    DSCONVERT=$PWD/.build/release/dsconvert python3 -m pytest -q Tests/Interop

or `make test-interop`. Needs torch, transformers, compressed-tensors, safetensors, numpy,
ml_dtypes and pytest; a missing one is an error (never a skip). Every conversion runs once per
session, into pytest's temporary directory; `-s` shows the measured tolerances and tables.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "Samples"
GOLDEN = SAMPLES / "golden"
SAMPLE_NAMES = ("deepseek-v3-tiny", "qwen2-tiny", "llama-tiny")

_REQUIRED = ("torch", "transformers", "compressed_tensors", "safetensors", "numpy", "ml_dtypes")
_missing = [m for m in _REQUIRED if importlib.util.find_spec(m) is None]
if _missing:
    raise pytest.UsageError(
        f"the interop tests need {', '.join(_missing)}: run `make test-interop`, which installs "
        "torch, transformers, compressed-tensors and pytest")

# llm-compressor pins an older torch than this tier's, so its comparison runs in its own venv
# (`make test-llmcompressor`, which sets DSCONVERT_LLMCOMPRESSOR=1); elsewhere it is not collected.
if os.environ.get("DSCONVERT_LLMCOMPRESSOR") == "1":
    if importlib.util.find_spec("llmcompressor") is None:
        raise pytest.UsageError("DSCONVERT_LLMCOMPRESSOR=1 needs llmcompressor: run `make test-llmcompressor`, "
                                "which installs it into .venv-llmc")
    collect_ignore = []
else:
    collect_ignore = ["test_llmcompressor_static.py"]

# Arguments of each conversion the tests use, by name.
QUANTIZE_ARGS = {
    "fp8-block": ["--fp8"],
    "fp8-tensor": ["--fp8", "--granularity", "tensor"],
    "fp8-channel": ["--fp8", "--granularity", "channel"],
    "int8-channel": ["--int8"],
    "int8-tensor": ["--int8", "--granularity", "tensor"],
    "fp8-channel-weight-only": ["--fp8", "--granularity", "channel", "--weight-only"],
}


def _binary():
    path = os.environ.get("DSCONVERT")
    if not path:
        raise pytest.UsageError(
            "set DSCONVERT to the dsconvert binary, e.g. "
            "`DSCONVERT=$PWD/.build/release/dsconvert python3 -m pytest Tests/Interop` (or run `make test-interop`)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise pytest.UsageError(f"DSCONVERT={path} is not an executable file")
    return path


class Converter:
    """Runs dsconvert once per (input, conversion) and remembers the output directory."""

    def __init__(self, binary, base):
        self.binary = binary
        self.base = base
        self.cache = {}

    def run(self, args, out_name):
        out = self.base / out_name
        if out_name in self.cache:
            return self.cache[out_name]
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"`dsconvert {' '.join(map(str, args))}` exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
        self.cache[out_name] = out
        return out

    def quantize(self, sample, kind, input_dir=None, label=None):
        """Output directory of `dsconvert quantize <kind>` on a sample (or on `input_dir`)."""
        src = pathlib.Path(input_dir) if input_dir else SAMPLES / sample
        name = f"{label or sample}--{kind}"
        return self.run(["quantize", *QUANTIZE_ARGS[kind], str(src), str(self.base / name)], name)

    def dequantize(self, sample, kind, to="bf16", input_dir=None, label=None):
        """Output directory of `dsconvert dequantize --to <to>` of the `kind` output."""
        q = self.quantize(sample, kind, input_dir=input_dir, label=label)
        name = f"{label or sample}--{kind}--dequant-{to}"
        return self.run(["dequantize", str(q), str(self.base / name), "--to", to], name)


@pytest.fixture(scope="session")
def converter(tmp_path_factory):
    return Converter(_binary(), tmp_path_factory.mktemp("dsconvert-interop"))


# ------------------------------------------------------------------ checkpoint helpers

def read_checkpoint(directory):
    """({name: torch tensor}, {name: file}) for every *.safetensors file of a directory."""
    from safetensors.torch import load_file
    tensors, files = {}, {}
    for f in sorted(pathlib.Path(directory).glob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            tensors[k] = v
            files[k] = f.name
    return tensors, files


def read_config(directory):
    with open(pathlib.Path(directory) / "config.json", encoding="utf-8") as f:
        return json.load(f)


def report(title, rows):
    """Prints a small table (shown with `pytest -s`)."""
    print(f"\n== {title}")
    for r in rows:
        print("   " + r)
    sys.stdout.flush()
