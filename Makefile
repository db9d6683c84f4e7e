# Pawlens: `make demo` runs the main job, `make test` runs the whole suite.
# Both set up .venv first if needed (Python 3.10+, pip; torch comes from PyPI or the local wheel mirror).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pawlens-setup
EXTRAS ?= export,gpu,openvino,gui,serve,test
# The Triton server binary (nvidia-pytriton bundles tritonserver 2.51 + its Python backend); --no-deps: see pyproject's serve extra.
TRITON ?= nvidia-pytriton==0.7.0

.PHONY: setup test test-fast demo lint gui-check gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	$(PY) -m pip install -q --no-deps '$(TRITON)'
	touch $(STAMP)

# The whole suite in one pytest process (the last line is pytest's summary).
test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -m "not slow"

demo: setup
	$(VENV)/bin/pawlens-demo

# ruff, then pyright: every import resolves (pyproject's [tool.pyright] says which checks are on).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pyright --pythonpath $(PY)

gui-check: setup
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/pawlens bench-gui --make-models runs/bench/gui/models

# Every CUDA code path once; without a GPU: steps 1 and 6 on the CPU. README "GPU check" says how to run it on a lent GPU.
gpu-check: setup
	$(PY) tools/gpu_check.py --out runs/gpu_check

clean:
	rm -rf runs .pytest_cache
