# One vocabulary for every part: dev, demo, test, lint, bench, build, deploy.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SAMENV := .venv-sam
SAM    := $(SAMENV)/bin/sam
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev demo test lint bench build deploy clean system-deps

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

$(SAMENV)/.installed:
	$(PYTHON) -m venv $(SAMENV)
	$(SAMENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

## dev: the project's virtualenv (.venv) and the AWS SAM CLI (.venv-sam)
dev: $(BIN)/.installed $(SAMENV)/.installed

system-deps:
	@scripts/ensure-system-deps

## demo: set up, then transcribe the bundled sample on the embedded local runtime
demo: $(BIN)/.installed
	$(BIN)/ytcaption transcribe samples/sample.mp3 --output-dir captions

## test: the whole suite (unit, integration against moto, e2e on the local runtime)
test: dev system-deps
	$(BIN)/python -m pytest

## lint: ruff (with security rules), mypy, cfn-lint and sam validate --lint
lint: dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint

## bench: import time, engine quality/speed, local runtime overhead (each prints its ratio)
bench: dev system-deps
	$(BIN)/python -m bench.import_time
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.pipeline

## build: sam build (the media Lambdas and the transcriber are images: needs Docker)
build: dev
	$(SAM) build

## deploy: sam deploy with samconfig.toml's default environment
deploy: build
	$(SAM) deploy

clean:
	rm -rf $(VENV) $(SAMENV) .aws-sam captions .pytest_cache .mypy_cache .ruff_cache
