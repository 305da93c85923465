# Two entry points: `make demo` and `make test`. Both create .venv on first use.
# `make rknn-env` creates the separate environment of `edgestereo compile --target rk3588`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := demo

# rknn-toolkit2 pins an old torch/numpy/onnx: it lives in its own venv, never in .venv.
RKNN_VENV ?= .venv-rknn
RKNN_STAMP := $(RKNN_VENV)/.installed

.PHONY: demo test test-slow mutation rknn-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgestereo sample motorcycle --out $(DEMO_DIR)
	$(BIN)/edgestereo infer $(DEMO_DIR)/im0.png $(DEMO_DIR)/im1.png --calib $(DEMO_DIR)/calib.txt \
		--gt $(DEMO_DIR)/disp0.pfm --out $(DEMO_DIR)/out

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Mutation testing of ops/ and evaluation/metrics.py ([tool.mutmut] in pyproject.toml; docs/testing.md).
# mutmut runs the tests in mutants/: PYTHONPATH=src makes them import the mutated copy there, not .venv's
# editable install of this checkout.
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet 'mutmut>=3.8,<4'
	rm -rf mutants
	PYTHONPATH=src $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

$(RKNN_STAMP): rknn-requirements.txt
	test -x $(RKNN_VENV)/bin/python || $(PYTHON) -m venv $(RKNN_VENV)
	$(RKNN_VENV)/bin/python -m pip install --quiet --upgrade pip
	# --no-deps: its torch<=2.4 pin would pull a multi-GB CUDA torch. Its ONNX path runs with the same
	# CPU torch as .venv (it imports torch at start-up); its other requirements are pinned in the file.
	$(RKNN_VENV)/bin/python -m pip install --quiet --no-deps rknn-toolkit2==2.5.0
	$(RKNN_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(RKNN_VENV)/bin/python -m pip install --quiet -r rknn-requirements.txt
	$(RKNN_VENV)/bin/python -c "from rknn.api import RKNN"
	touch $(RKNN_STAMP)

rknn-env: $(RKNN_STAMP)

clean:
	rm -rf $(VENV) $(RKNN_VENV) $(DEMO_DIR) mutants .pytest_cache .ruff_cache
