# One vocabulary for every part: dev, demo, test, lint, bench, build, deploy.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SAMENV := .venv-sam
SAM    := $(SAMENV)/bin/sam
TOOLS  := .venv-tools
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev demo test lint audit bench build deploy clean system-deps lock

# requirements.lock pins every transitive dependency the suite ran with (make lock)
$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]" -c requirements.lock
	touch $@

# security tools live apart: their dependencies must not move the project's
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet checkov==3.3.30 pip-audit==2.10.1
	touch $@

$(SAMENV)/.installed:
	$(PYTHON) -m venv $(SAMENV)
	$(SAMENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

## dev: the project's virtualenv (.venv), the AWS SAM CLI (.venv-sam), checkov and pip-audit (.venv-tools)
dev: $(BIN)/.installed $(SAMENV)/.installed $(TOOLS)/.installed

system-deps:
	@scripts/ensure-system-deps

## demo: set up, then transcribe the bundled sample on the embedded local runtime
demo: $(BIN)/.installed
	$(BIN)/ytcaption transcribe samples/sample.mp3 --output-dir captions

## test: the whole suite (unit, integration against moto, e2e on the local runtime)
test: dev system-deps
	$(BIN)/python -m pytest

## lint: ruff (with its security rules), mypy, cfn-lint, sam validate --lint, checkov on the template
lint: dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint
	$(TOOLS)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download

## audit: known vulnerabilities in the locked dependencies (needs the OSV or PyPI advisory service)
audit: dev
	$(TOOLS)/bin/pip-audit --requirement requirements.lock --no-deps --disable-pip --progress-spinner off

## lock: re-pin requirements.lock from the current .venv
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

## bench: import time, engine quality/speed, local runtime and OpenAI-route overhead (each prints its ratio), load, cost
bench: dev system-deps
	$(BIN)/python -m bench.import_time
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.cost
	$(BIN)/python -m bench.openai_sync

## build: sam build (the media Lambdas and the transcriber are images: needs Docker)
build: dev
	$(SAM) build

## deploy: sam deploy with samconfig.toml's default environment
deploy: build
	$(SAM) deploy

clean:
	rm -rf $(VENV) $(SAMENV) $(TOOLS) .aws-sam captions .pytest_cache .mypy_cache .ruff_cache
