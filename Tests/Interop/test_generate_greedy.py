"""`dsconvert generate` (greedy, KV cache) gives the tokens transformers' `generate` gives
(do_sample=False, fp32 from the BF16 samples) for a few prompts of each sample model."""
import json
import subprocess

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM

from conftest import GOLDEN, SAMPLES, SAMPLE_NAMES, _binary

NEW_TOKENS = 24


@pytest.mark.parametrize("sample", SAMPLE_NAMES)
def test_greedy_tokens_match_transformers(sample, tmp_path):
    torch.set_num_threads(2)
    ids = load_file(str(GOLDEN / f"{sample}.safetensors"))["long_input_ids"][0]
    model = AutoModelForCausalLM.from_pretrained(str(SAMPLES / sample), dtype=torch.float32).eval()
    for start, length in [(0, 8), (100, 40), (300, 60)]:
        prompt = np.ascontiguousarray(ids[start:start + length].astype(np.int32))
        path = tmp_path / f"prompt-{start}.safetensors"
        save_file({"input_ids": prompt}, str(path))
        out = subprocess.run([_binary(), "generate", str(SAMPLES / sample), "--ids", str(path), "--max-tokens", str(NEW_TOKENS), "--json"],
                             capture_output=True, text=True, check=True)
        got = json.loads(out.stdout)["tokens"]
        with torch.no_grad():
            ref = model.generate(torch.tensor(prompt[None, :], dtype=torch.int64), do_sample=False, max_new_tokens=NEW_TOKENS)
        want = ref[0, length:].tolist()  # both stop after the end-of-sequence token, if one comes
        assert got == want, f"{sample} prompt {start}+{length}: {got} != {want}"
