# Set-up, the main job and the tests. Everything runs offline on the CPU build of torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: setup run test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(PY) scripts/generate.py configs/txt2img.yaml

test: setup
	$(PY) -m pytest

clean:
	rm -rf $(VENV)
