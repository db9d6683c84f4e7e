# Pawlens: `make demo` runs the main job, `make test` runs the whole suite.
# Both set up .venv first if needed (Python 3.10+, pip; torch comes from PyPI or the local wheel mirror).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pawlens-setup
EXTRAS ?= export,gpu,openvino,gui,test

.PHONY: setup test test-fast demo lint gui-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test-fast: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"

demo: setup
	$(VENV)/bin/pawlens-demo

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
