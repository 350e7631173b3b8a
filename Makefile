# categorizer: every target installs what it needs itself (fresh machine friendly).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two models that never overwrite each other: tests use the quick `--fast` build in artifacts/model; `make bench`
# measures the default recipe (the README's figures), built in its own artifacts/served tree. `make up` serves the
# quick model at once and builds artifacts/served in the background; the gate then promotes it like a retrain.
MODEL := artifacts/model/manifest.json
SERVED_ARTIFACTS := artifacts/served
SERVED := $(SERVED_ARTIFACTS)/model/manifest.json
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install model served-model up down test lint bench load clean synth browser

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch==2.13.0 is pinned in the train extra: the CPU wheel on this disk, never the CUDA build.
	$(BIN)/pip install -q -e '.[train,infra,dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv with everything

$(MODEL): | $(STAMP)
	$(BIN)/categorizer model build --fast

$(SERVED): | $(STAMP)
	CATEGORIZER_ARTIFACTS=$(SERVED_ARTIFACTS) $(BIN)/categorizer model build

model: $(MODEL)  ## build the tests' model (--fast recipe) if none exists

served-model: $(SERVED)  ## build the served model (recipe `auto`: 5 min or more on 2 cores) if none exists

up: $(MODEL)  ## run the system locally (embedded AWS on 127.0.0.1): quick model now, default recipe built behind it
	$(BIN)/categorizer up --served $(SERVED_ARTIFACTS)

down:  ## stop the local system (state is kept in .local/)
	@if [ -x $(BIN)/categorizer ]; then $(BIN)/categorizer down; else echo "not installed"; fi

browser:  ## Debian's chromium for the console's browser tests (installed once, if missing)
	@test -x /usr/bin/chromium || { apt-get update -q && apt-get install -y -q chromium; }

test: $(MODEL) browser  ## run the test suite
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(SERVED)  ## engine vs its peers, API handler vs engine, API cold start as Lambda runs it (bench/results/)
	$(BIN)/categorizer bench --model $(SERVED_ARTIFACTS)/model
	$(BIN)/python bench/api_handler.py --model $(SERVED_ARTIFACTS)/model --lambda-env
	$(BIN)/python bench/api_cold_start.py --model $(SERVED_ARTIFACTS) --as-lambda

node_modules/.bin/cdk: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

synth: $(STAMP) node_modules/.bin/cdk  ## synthesize dev + prod offline (real layer build), cdk-nag, cfn-lint
	AWS_EC2_METADATA_DISABLED=true node_modules/.bin/cdk synth -c stage=all --quiet
	$(BIN)/cfn-lint --config-file infra/cfnlintrc.yaml cdk.out/Categorizer-*.template.json

load: $(MODEL)  ## bounded load test of the local API on loopback (concurrency 8)
	$(BIN)/python bench/load_api.py

clean:
	rm -rf $(VENV) artifacts cdk.out .local layers/build
