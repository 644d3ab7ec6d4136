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

# `make demo` installs what the pipeline needs; `make test` adds the test extras (pytest, moto, dask, dvc-s3, ...),
# about 30 s more on 2 cores
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	rm -f $(TEST_STAMP)
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[test]"
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
