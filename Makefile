# Two entry points: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := demo

.PHONY: demo test test-slow mutation clean

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

clean:
	rm -rf $(VENV) $(DEMO_DIR) mutants .pytest_cache .ruff_cache
