# hybridzoo — `make demo`, `make test`, `make bench`. The first use creates .venv.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow bench bench-peers lint clean-venv FORCE

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

# The peers' own venvs: PhiFlow beside our torch; deepinv needs a torchvision that PyPI built with its torch,
# which does not import beside our CPU build (see benchmarks/tomography.py), and gets hybridzoo too, so that
# ours is also timed on the peer's torch.
PEER_VENV := benchmarks/.venv
# on our torch (TORCH): another TORCH=... re-installs it too, so that both sides of the comparison share it
$(PEER_VENV)-phiflow/.installed: $(VENV)/.torch-requirement
	$(PYTHON) -m venv $(PEER_VENV)-phiflow
	$(PEER_VENV)-phiflow/bin/python -m pip install "$(TORCH)"
	$(PEER_VENV)-phiflow/bin/python -m pip install phiflow "$(TORCH)"
	touch $@

$(PEER_VENV)-deepinv/.installed: pyproject.toml
	$(PYTHON) -m venv $(PEER_VENV)-deepinv
	$(PEER_VENV)-deepinv/bin/python -m pip install torch==2.14.1 torchvision==0.29.1
	$(PEER_VENV)-deepinv/bin/python -m pip install deepinv torch==2.14.1 torchvision==0.29.1
	$(PEER_VENV)-deepinv/bin/python -m pip install --no-deps -e .
	touch $@

bench-peers: $(PEER_VENV)-phiflow/.installed $(PEER_VENV)-deepinv/.installed

# the aerofoil extra: AeroSandbox, and with it NeuralFoil, the aerofoil benchmark's peer
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -e ".[dev,aerofoil]"
	touch $@

bench: .venv $(VENV)/.bench-installed bench-peers
	$(BIN)/python benchmarks/run_all.py

lint: .venv
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)

FORCE:
