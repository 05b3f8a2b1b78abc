# Two commands for a newcomer: `make run` and `make test`. Each installs what it needs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INTEROP_STAMP := $(VENV)/.installed-interop
PYTEST_WORKERS ?= 2
# matrix-js-sdk (Rust crypto) for the real-client E2EE test, from package-lock.json.
JS_CLIENT := tests/clients/js
JS_STAMP := $(JS_CLIENT)/node_modules/.installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Synapse, the federation peer of the interop tests: installed once, beside the test extra.
$(INTEROP_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,interop]'
	touch $(INTEROP_STAMP)

$(JS_STAMP): $(JS_CLIENT)/package.json $(JS_CLIENT)/package-lock.json
	cd $(JS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

install: $(STAMP)

# RUN_ARGS passes flags to `matrix-edge serve` (e.g. RUN_ARGS="--port 8010 --data-dir /tmp/d").
run: $(STAMP)
	$(BIN)/matrix-edge serve $(RUN_ARGS)

test: $(STAMP) $(INTEROP_STAMP) $(JS_STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/runtime_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
