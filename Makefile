# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# Embedded defaults: local stores, no telemetry, loopback servers.
export MLFLOW_DISABLE_TELEMETRY := true
# MLFLOW_TRACKING_URI is not exported: when set it wins over params.yaml's tracking.uri (as in MLflow itself)
MLFLOW_UI_STORE ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///mlflow.db)
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: venv test test-all demo ui plots bench lint clean

# `make demo` installs what the pipeline needs; `make test` adds the test extras (pytest, moto, dask, dvc-s3, ...).
# torch comes first, through pip, so that pip's own configuration picks the build (an index for CUDA or CPU
# wheels, a local wheel); the other ~200 packages (MLflow, Prefect, DVC and theirs) through uv, which resolves,
# downloads, unpacks and byte-compiles them in parallel (on 2 cores 23 s where pip takes 80), or through pip
# where uv cannot. Byte-compiled at install, as pip does: with PYTHONDONTWRITEBYTECODE set, a stage process would
# otherwise compile its ~5,000 imported modules again every time (8 s each on 2 cores).
TORCH_REQ = $(shell $(PYTHON) -c 'import re, tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
	print(next(d for d in deps if re.match(r"torch\s*[<>=!~]", d)))')
INSTALL = $(PY) -m uv pip install -q --compile-bytecode --python $(PY) -e $(1) || $(PY) -m pip install -q -e $(1)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv "$(TORCH_REQ)" || $(PY) -m pip install -q "$(TORCH_REQ)"
	$(call INSTALL,.)
	rm -f $(TEST_STAMP)
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(call INSTALL,".[test]")
	touch $(TEST_STAMP)

venv: $(TEST_STAMP)

test: $(TEST_STAMP)
	$(PY) -m pytest -q

test-all: $(TEST_STAMP)
	$(PY) -m pytest -q -m ""

demo: $(STAMP)
	$(PY) -m flows.demo

ui: $(STAMP)
	@echo "Prefect UI: http://127.0.0.1:4200   MLflow UI: http://127.0.0.1:5000   (Ctrl-C stops both)"
	trap 'kill 0' EXIT; \
	$(PY) -m prefect server start --host 127.0.0.1 --port 4200 & \
	$(PY) -m mlflow ui --backend-store-uri $(MLFLOW_UI_STORE) --host 127.0.0.1 --port 5000 & \
	wait

plots: $(STAMP)
	$(PY) -m flows.plots

bench: $(STAMP)
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/data_throughput.py
	$(PY) benchmarks/predict_throughput.py

lint: $(STAMP)
	$(PY) -m pip install -q ruff && $(PY) -m ruff check spectralgpt flows tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
