# `make demo` and `make test` create .venv from this repo's own files when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1
# pytest-xdist workers, one compute thread each (tests/conftest.py): one per core of the CI machine.
TEST_WORKERS ?= 2

.PHONY: venv demo test test-fast lint bench clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml projects/example_plugin/setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=23"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-build-isolation --no-deps -e . -e projects/example_plugin
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/misc/make_demo_data.py data/demo_isic2018
	rm -rf work_dirs/demo
	$(PY) tools/train.py configs/demo/deeplab3_deit_s_demo_isic2018.py --work-dir work_dirs/demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check medtrans tools tests configs benchmarks projects

bench: $(STAMP)
	$(PY) benchmarks/train_step_overhead.py

clean:
	rm -rf $(VENV) work_dirs
