# The two set-up commands of the README: `make main` (meta-train and evaluate the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch from PyTorch's CPU index (PyPI's default build carries CUDA, several GB); where that
# index cannot be reached, pip's own sources. A GPU user sets both, e.g. TORCH=torch TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# torch is installed again whenever TORCH or TORCH_INDEX changes
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s %s' '$(TORCH)' '$(TORCH_INDEX)' | cksum | cut -d' ' -f1)

$(TORCH_STAMP):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --timeout 20 --retries 0 --index-url "$(TORCH_INDEX)" "$(TORCH)" \
	  || $(PY) -m pip install -q "$(TORCH)"
	rm -f $(VENV)/.torch-*
	touch $@

$(VENV)/.installed: pyproject.toml $(TORCH_STAMP)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

.PHONY: main test
# --continue: a killed `make main` continues where it stopped; a finished one is evaluated again
main: $(VENV)/.installed
	$(VENV)/bin/lazymeta train --config configs/fewshot/main.yaml --continue

test: $(VENV)/.installed
	$(PY) -m pytest -n 2
