# dsconvert — the few commands people run. Each target installs what it needs on a fresh
# Debian machine (apt packages, small PyPI references), so `make demo` and `make test` work
# on a clean clone with nothing else done first.

SWIFT      ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
PYTHON     ?= python3
APT_PKGS   := libzstd-dev libssl-dev libxxhash-dev pkg-config gcc openssl zstd
PIP_PKGS   := numpy ml_dtypes safetensors tokenizers xxhash cryptography
INTEROP_PKGS := torch transformers compressed-tensors pytest
BIN        := .build/release/dsconvert
SAMPLE     := Samples/deepseek-v3-tiny
OUT        := out

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps deps-apt deps-pip build demo test test-interop test-serving bench bench-engine bench-eval bench-gemm eval-table bench-transport bench-pack bench-shard bench-llamacpp test-llamacpp deps-llamacpp test-llmcompressor fuzz clean

all: build

deps: deps-apt deps-pip

# apt packages, only when missing (apt-get update once first, as a new machine needs).
deps-apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The small Python packages the tests use as independent references.
deps-pip:
	@$(PYTHON) -c "import numpy, ml_dtypes, safetensors, tokenizers, xxhash, cryptography" 2>/dev/null || \
		$(PYTHON) -m pip install -q --disable-pip-version-check $(PIP_PKGS)

build: deps-apt
	$(SWIFT) build -c release --product dsconvert

# The main job on the bundled sample: inspect it, quantize it to DeepSeek block FP8, inspect the result.
demo: build
	$(BIN) inspect $(SAMPLE) --summary
	$(BIN) quantize --fp8 $(SAMPLE) $(OUT)/deepseek-v3-tiny-fp8
	$(BIN) inspect $(OUT)/deepseek-v3-tiny-fp8 --summary

# The test suite (XCTest; Python references: numpy, ml_dtypes, safetensors, xxhash).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

# Interop tier (opt-in, ~5 GB of torch): compressed-tensors, torch and transformers as references.
test-interop: build
	$(PYTHON) -m pip install -q --disable-pip-version-check $(PIP_PKGS) $(INTEROP_PKGS)
	# NVIDIA ModelOpt's histogram calibrator (the KL / percentile / MSE reference) without its GPU stack.
	$(PYTHON) -c "import modelopt.torch.quantization.calib.histogram" 2>/dev/null || \
		{ $(PYTHON) -m pip install -q --disable-pip-version-check --no-deps nvidia-modelopt && \
		  $(PYTHON) -m pip install -q --disable-pip-version-check omegaconf pulp nvidia-ml-py; }
	DSCONVERT=$(CURDIR)/$(BIN) $(PYTHON) -m pytest -q Tests/Interop

# Launch commands (`shard --plan --emit`) against vLLM's and SGLang's own argument parsers (opt-in):
# both installed without their GPU stacks (--no-deps, plus the small packages their parsers import)
# into .venv-serving, which sees the system's torch and transformers.
SERVING_VENV := .venv-serving
SERVING_PKGS := vllm==0.34.0 sglang==0.5.23
SERVING_DEPS := pybase64 pillow starlette fastapi uvicorn watchfiles msgspec pyzmq aiohttp multidict yarl propcache \
	aiohappyeyeballs aiosignal frozenlist opentelemetry-api cachetools prometheus-client openai openai-harmony cbor2 \
	uvloop partial-json-parser llguidance xgrammar apache-tvm-ffi
test-serving: build
	$(PYTHON) -m pip install -q --disable-pip-version-check $(PIP_PKGS) $(INTEROP_PKGS)
	@[ -x $(SERVING_VENV)/bin/python ] || $(PYTHON) -m venv --system-site-packages $(SERVING_VENV)
	$(SERVING_VENV)/bin/python -c "import vllm, sglang" 2>/dev/null || \
		$(SERVING_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps $(SERVING_PKGS) $(SERVING_DEPS)
	VLLM_TARGET_DEVICE=cpu DSCONVERT=$(CURDIR)/$(BIN) $(SERVING_VENV)/bin/python -m pytest -q -p no:cacheprovider Tests/Serving

bench: build deps-pip
	$(SWIFT) build -c release --product dsconvert-bench
	Scripts/bench.sh

# dsconvert shard against cp -r (speed, peak RSS) and --plan on the 671B layout (Scripts/bench_shard.sh).
bench-shard: build
	Scripts/bench_shard.sh

# The CPU engine against transformers (eager fp32) on the samples, BF16 and block FP8 (opt-in: torch).
bench-engine: build deps-pip
	$(SWIFT) build -c release --product dsconvert-bench
	$(PYTHON) -m pip install -q --disable-pip-version-check $(INTEROP_PKGS)
	$(PYTHON) Scripts/bench_engine.py $(BIN)

# dsconvert eval against the transformers reference doing the same work (opt-in: torch).
# The engine's matrix product vs numpy float32 matmul (OpenBLAS sgemm) on every decoder weight shape of the samples.
bench-gemm: build deps-pip
	$(SWIFT) build -c release --product dsconvert-bench
	$(PYTHON) Scripts/bench_gemm.py .build/release/dsconvert-bench

bench-eval: build deps-pip
	$(PYTHON) -m pip install -q --disable-pip-version-check $(INTEROP_PKGS)
	$(PYTHON) Scripts/bench_eval.py $(BIN)

# The README's accuracy table: every sample against each quantize scheme (dsconvert eval, ~10 min).
eval-table: build
	$(PYTHON) Scripts/eval_table.py $(BIN)

# pack --zstd / decompress against the zstd command, BF16 and FP8 (samples and a 667 MB synthetic model).
bench-transport: build
	$(PYTHON) Scripts/bench_transport.py $(BIN)

# verify vs sha256sum / cat, open latency (10 MB and 10 GB packs), pack vs cp -r, the Python reader
# vs safetensors.numpy.load_file (Scripts/bench_pack.py; ~30 GB of disk in /tmp/dsconvert-bench-pack).
bench-pack: build deps-pip
	$(SWIFT) build -c release --product dsconvert-bench
	$(PYTHON) Scripts/bench_pack.py $(BIN) .build/release/dsconvert-bench

# llama.cpp as a reference (opt-in): llama-cpp-python from PyPI, built from source for this CPU
# (the first time ~10-15 min on 2 cores; g++ needed), and what llama.cpp's converter imports
# (torch, transformers, sentencepiece). The converter itself comes from the same release's sdist
# (Scripts/llamacpp_gguf.py unpacks it into /tmp/dsconvert-llamacpp); nothing of llama.cpp is kept here.
LLAMACPP_CMAKE_ARGS ?= -DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAMA_CURL=OFF
deps-llamacpp: deps-pip
	@dpkg -s g++ >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq g++; }
	@$(PYTHON) -c "import llama_cpp" 2>/dev/null || \
		CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PYTHON) -m pip install --disable-pip-version-check --no-binary llama-cpp-python llama-cpp-python
	$(PYTHON) -m pip install -q --disable-pip-version-check $(INTEROP_PKGS) sentencepiece

# The CPU engine against llama.cpp (F32, BF16 and Q8_0 GGUF) on the samples: prefill 1 x 512 and
# decode 128, 2 threads, alternating (Scripts/bench_llamacpp.py; BENCH_LARGE=1 adds a 0.49 B qwen2).
bench-llamacpp: build deps-llamacpp
	$(SWIFT) build -c release --product dsconvert-bench
	$(PYTHON) Scripts/bench_llamacpp.py $(BIN)

# llama.cpp reproduces the golden logits, and dsconvert forward agrees with it (Tests/Interop/test_llamacpp.py).
test-llamacpp: build deps-llamacpp
	DSCONVERT=$(CURDIR)/$(BIN) $(PYTHON) -m pytest -q -s Tests/Interop/test_llamacpp.py

# dsconvert's static W8A8 / FP8 checkpoints against llm-compressor's own on the samples (opt-in,
# Tests/Interop/test_llmcompressor_static.py; 7-12 min). llm-compressor 0.14 pins torch <= 2.14, older
# than the interop tier's, so it lives in its own venv, .venv-llmc: the CPU build of torch 2.13 where
# pip finds one (this machine's wheel folder), else PyPI's torch within llm-compressor's pins.
LLMC_VENV    := .venv-llmc
LLMC_PKGS    := llmcompressor==0.14.0.1 pytest numpy ml_dtypes safetensors tokenizers
test-llmcompressor: build
	@[ -x $(LLMC_VENV)/bin/python ] || $(PYTHON) -m venv $(LLMC_VENV)
	@$(LLMC_VENV)/bin/python -c "import llmcompressor, pytest, ml_dtypes" 2>/dev/null || { \
		$(LLMC_VENV)/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0+cpu" 2>/dev/null || \
		$(LLMC_VENV)/bin/python -m pip install -q --disable-pip-version-check "torch>=2.10,<=2.14.0"; \
		$(LLMC_VENV)/bin/python -m pip install -q --disable-pip-version-check $(LLMC_PKGS); }
	DSCONVERT=$(CURDIR)/$(BIN) DSCONVERT_LLMCOMPRESSOR=1 $(LLMC_VENV)/bin/python -m pytest -q -s Tests/Interop/test_llmcompressor_static.py

fuzz: deps
	Scripts/fuzz.sh

clean:
	rm -rf .build $(OUT)
