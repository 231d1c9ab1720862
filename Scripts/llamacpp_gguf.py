"""llama.cpp as a reference: GGUF files of dsconvert's models made by llama.cpp's own converter.

Used by Scripts/bench_llamacpp.py and Tests/Interop/test_llamacpp.py (both opt-in). Nothing of
llama.cpp is kept in this repository: the converter (`convert_hf_to_gguf.py`, its `conversion`
package and `gguf-py`) is taken from the llama-cpp-python source distribution on PyPI, the same
release as the installed `llama_cpp` module, unpacked into $LLAMACPP_CACHE
(default /tmp/dsconvert-llamacpp); $LLAMACPP_SRC names an unpacked llama.cpp tree instead.

Two things the converter needs told about dsconvert's samples:
  * their tokenizer is a byte-level BPE trained for the samples, so llama.cpp's table of known
    pre-tokenizer hashes does not know it; its pre-tokenizer is ByteLevel with the GPT-2 regex
    (`use_regex`), which is llama.cpp's "gpt-2" pre-tokenizer, and that is what is written.
    (The checks here feed token ids, never text.)
  * deepseek_v3 configs have no `scoring_func` key (transformers' deepseek_v3 always scores the
    router with a sigmoid); the converter then writes no `deepseek2.expert_gating_func` and
    llama.cpp falls back to softmax. `gguf()` converts a copy whose config.json says
    `"scoring_func": "sigmoid"` (weights linked, not copied), so the GGUF says sigmoid (2).
"""
import glob
import json
import os
import subprocess
import sys
import tarfile

CACHE = os.environ.get("LLAMACPP_CACHE", "/tmp/dsconvert-llamacpp")
GATING_SIGMOID = 2  # llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID (gguf.ExpertGatingFuncType)


def _installed_version():
    import llama_cpp
    return llama_cpp.__version__


def converter_dir():
    """Folder holding convert_hf_to_gguf.py, conversion/ and gguf-py/ of the installed release."""
    if os.environ.get("LLAMACPP_SRC"):
        return os.environ["LLAMACPP_SRC"]
    version = _installed_version()
    root = os.path.join(CACHE, f"llama-cpp-python-{version}")
    vendor = os.path.join(root, "vendor", "llama.cpp")
    if os.path.isfile(os.path.join(vendor, "convert_hf_to_gguf.py")):
        return vendor
    os.makedirs(CACHE, exist_ok=True)
    sdists = glob.glob(os.path.join(CACHE, f"llama_cpp_python-{version}.tar.gz"))
    if not sdists:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-binary", "llama-cpp-python", f"llama-cpp-python=={version}", "-d", CACHE], check=True)
        sdists = glob.glob(os.path.join(CACHE, f"llama_cpp_python-{version}.tar.gz"))
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    keep = tuple(prefix + p for p in ("convert_hf_to_gguf.py", "conversion/", "gguf-py/"))
    with tarfile.open(sdists[0]) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(keep)]
        tar.extractall(CACHE, members=members, filter="data")
    os.rename(os.path.join(CACHE, f"llama_cpp_python-{version}"), root)
    return vendor


def _convert_worker(src, outtype, out):
    """Runs in a child process: llama.cpp's converter with the pre-tokenizer named (see above)."""
    vendor = converter_dir()
    sys.path[:0] = [vendor, os.path.join(vendor, "gguf-py")]
    from conversion import base
    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
    import convert_hf_to_gguf
    sys.argv = ["convert_hf_to_gguf.py", src, "--outtype", outtype, "--outfile", out]
    convert_hf_to_gguf.main()


def _source_for(model, work):
    """The model folder, or for deepseek_v3 without scoring_func a linked copy that names sigmoid."""
    with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "deepseek_v3" or "scoring_func" in cfg:
        return model
    copy = os.path.join(work, os.path.basename(os.path.normpath(model)) + "-sigmoid")
    os.makedirs(copy, exist_ok=True)
    for name in os.listdir(model):
        dst = os.path.join(copy, name)
        if name != "config.json" and not os.path.exists(dst):
            os.symlink(os.path.abspath(os.path.join(model, name)), dst)
    cfg["scoring_func"] = "sigmoid"
    with open(os.path.join(copy, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    return copy


def gguf(model, outtype, work=None):
    """Path of `model` converted to GGUF `outtype` (f32, bf16, q8_0), made once into `work`."""
    work = work or os.path.join(CACHE, "gguf")
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, f"{os.path.basename(os.path.normpath(model))}-{outtype}.gguf")
    if os.path.isfile(out) and os.path.getmtime(out) >= os.path.getmtime(os.path.join(model, "config.json")):
        return out
    src = _source_for(model, work)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--convert", src, outtype, out + ".part"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"convert_hf_to_gguf.py {src} --outtype {outtype} failed:\n{proc.stderr[-4000:]}")
    os.replace(out + ".part", out)
    return out


def metadata(path, key):
    """One scalar field of a GGUF file, read with llama.cpp's gguf-py."""
    vendor = converter_dir()
    if os.path.join(vendor, "gguf-py") not in sys.path:
        sys.path.insert(0, os.path.join(vendor, "gguf-py"))
    import gguf as gguf_py
    field = gguf_py.GGUFReader(path).get_field(key)
    return None if field is None else field.contents()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--convert":
        _convert_worker(*sys.argv[2:])
    else:
        sys.exit("usage: llamacpp_gguf.py --convert MODEL_DIR OUTTYPE OUT.gguf")
