# Set-up, the main job and the tests. Everything runs offline on the CPU build of torch.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: setup browser run test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(PY) scripts/generate.py configs/txt2img.yaml

# Debian's chromium opens the HTML reports in the tests; where it cannot be installed, that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  timeout 300 apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 300 apt-get install -y -q chromium >/dev/null 2>&1) || \
	  echo "note: chromium could not be installed here; the report's browser test will be skipped"

# The import contracts (pyproject.toml's [tool.importlinter], docs/layers.md) first: seconds, and they name the import.
test: setup browser
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

clean:
	rm -rf $(VENV)
