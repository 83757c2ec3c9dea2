# Every target creates .venv if missing and installs torch (CPU build by default; a GPU user
# overrides TORCH_SPEC, e.g. `make demo TORCH_SPEC=torch` or a CUDA wheel index via PIP_EXTRA).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.blip-rl-installed

.PHONY: install demo test test-all test-props bench clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(PIP_EXTRA) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/blip-rl train --config configs/quick.yaml --run-dir runs/quick-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Property tests with random examples, 20x as many as the derandomized default run (by hand).
test-props: $(STAMP)
	BLIP_RL_PROPS=1 $(BIN)/python -m pytest -q tests/core/test_bits.py tests/envs/test_games.py tests/test_faults.py -k "frozen_interval or quantization or bits_never or normalize_score or fuzz"

bench: $(STAMP)
	$(BIN)/python benchmarks/ppo_speed.py
	$(BIN)/python benchmarks/fisher_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
