"""`shard --plan --emit vllm|sglang` against the engines' own argument parsers (opt-in:
`make test-serving`, which installs vLLM and SGLang without their GPU stacks into .venv-serving).

The launch command dsconvert prints is parsed by the real parsers, imported from the installed
packages (never a copy of their flag lists):
- vLLM: the `vllm` CLI's own parser with its `serve` subcommand (`ServeSubcommand.subparser_init`,
  FlexibleArgumentParser), on the CPU platform (VLLM_TARGET_DEVICE=cpu);
- SGLang: `prepare_server_args`, what `python3 -m sglang.launch_server` runs (argparse plus
  ServerArgs and its __post_init__).
Every `--flag` dsconvert writes must be one of the parser's option strings exactly (argparse
would otherwise accept an abbreviation), and the parsed values must be the plan's: TP, PP, EP,
context length, concurrent sequences, memory fraction, KV-cache dtype, node count, the model path.
The plans are made on DeepSeek-V3's real layout (block-FP8 release shapes, sparse files).
"""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("DSCONVERT") or str(ROOT / ".build" / "release" / "dsconvert")

# (tp, pp, ep, gpu): one 8×H200 node; two 8×H100 nodes as TP 8 × PP 2 and as TP 16.
PLANS = [(8, 1, 8, "H200"), (8, 2, 8, "H100"), (16, 1, 16, "H100")]


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("v3") / "DeepSeek-V3"
    subprocess.run([BIN, "synth", "--arch", "deepseek-v3", "--scale", "1", "--sparse", "--fp8", str(d), "-q"], check=True)
    return str(d)


def plan(model, engine, tp, pp, ep, gpu):
    out = subprocess.run([BIN, "shard", model, "--plan", "--tp", str(tp), "--pp", str(pp), "--ep", str(ep), "--gpu", gpu,
                          "--kv-cache-dtype", "fp8", "--max-model-len", "32768", "--max-seqs", "4", "--emit", engine, "--json"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    assert r["launch"], f"no launch command for TP {tp} × PP {pp}: {out[:400]}"
    return r["plan"], r["launch"]


def exact_flags(launch, parser_actions):
    known = {s for a in parser_actions for s in a.option_strings}
    return [t for t in launch if t.startswith("--") and t not in known]


@pytest.mark.parametrize("tp,pp,ep,gpu", PLANS)
def test_vllm_parses_the_launch_command(model, tp, pp, ep, gpu):
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    p, launch = plan(model, "vllm", tp, pp, ep, gpu)
    assert launch[:3] == ["vllm", "serve", model]
    parser = FlexibleArgumentParser(description="vLLM CLI")
    sub = parser.add_subparsers(required=False, dest="subparser")
    serve = ServeSubcommand().subparser_init(sub)
    assert exact_flags(launch, serve._actions) == []
    a = parser.parse_args(launch[1:])
    assert a.model_tag == model
    assert (a.tensor_parallel_size, a.pipeline_parallel_size) == (p["tp"], p["pp"]) == (tp, pp)
    assert a.enable_expert_parallel is (ep > 1)
    assert (a.max_model_len, a.max_num_seqs) == (32768, 4)
    assert a.gpu_memory_utilization == p["mem_util"]
    assert a.kv_cache_dtype == "fp8"
    assert a.trust_remote_code is True


@pytest.mark.parametrize("tp,pp,ep,gpu", PLANS)
def test_sglang_parses_the_launch_command(model, tp, pp, ep, gpu):
    import argparse

    from sglang.srt.server_args import ServerArgs, prepare_server_args

    p, launch = plan(model, "sglang", tp, pp, ep, gpu)
    assert launch[:3] == ["python3", "-m", "sglang.launch_server"]
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    assert exact_flags(launch, parser._actions) == []
    s = prepare_server_args(launch[3:])
    assert s.model_path == model
    assert (s.tp_size, s.pp_size, s.ep_size) == (tp, pp, ep)
    assert s.nnodes == p["nodes"] == tp * pp // 8
    if s.nnodes > 1:
        assert s.node_rank == 0 and s.dist_init_addr
    assert (s.context_length, s.max_running_requests) == (32768, 4)
    assert s.mem_fraction_static == p["mem_util"]
    assert s.kv_cache_dtype == "fp8_e4m3"
    assert s.trust_remote_code is True


def test_the_flag_check_is_not_vacuous():
    """argparse accepts abbreviations; the exact-name check does not."""
    import argparse

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from sglang.srt.server_args import ServerArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    serve = ServeSubcommand().subparser_init(parser.add_subparsers(dest="subparser"))
    assert exact_flags(["--tensor-parallel", "8", "--max-model-len", "1"], serve._actions) == ["--tensor-parallel"]
    sgl = argparse.ArgumentParser()
    ServerArgs.add_cli_args(sgl)
    assert exact_flags(["--tp-siz", "8", "--tp-size", "8"], sgl._actions) == ["--tp-siz"]
