# hybridzoo — `make demo`, `make test`, `make bench`. The first use creates .venv.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow bench lint clean-venv FORCE

# The torch requirement the venv was installed with; a different TORCH=... rewrites it, and so re-installs.
$(VENV)/.torch-requirement: FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH)' | cmp -s - $@ || echo '$(TORCH)' > $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch-requirement
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first and pinned, so that no dependency drags in an unpinned (CUDA) torch
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

.venv: $(VENV)/.installed

demo: .venv
	$(BIN)/hybridzoo demo

test: .venv
	$(BIN)/python -m pytest

test-slow: .venv
	$(BIN)/python -m pytest -m slow

bench: .venv
	$(BIN)/python benchmarks/run_all.py

lint: .venv
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

FORCE:
