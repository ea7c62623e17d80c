# The two set-up commands of the README: `make main` (meta-train and evaluate the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build; a GPU user sets TORCH to the build of their CUDA (see README).
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

.PHONY: main test
main: $(VENV)/.installed
	$(VENV)/bin/lazymeta train

test: $(VENV)/.installed
	$(PY) -m pytest -n 2
