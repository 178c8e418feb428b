# Two commands on a fresh machine: `make run` (main job) and `make test` (test suite).
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first, pinned, so that the CPU build is used where one is provided locally and no CUDA
# wheels are pulled by a looser range. Override on a GPU machine, e.g. `make TORCH_SPEC='torch==2.13.0' test`.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: install run test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m experiments.run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) outputs
