# edml: every target installs what it needs on first use (venv, Python packages, Kafka jars).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_HOME ?= .edml/kafka
KAFKA_PORT ?= 9092
export EDML_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(KAFKA_PORT)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: help install kcat kafka-jars kafka-up kafka-down kafka-status registry-app registry-up registry-down \
        registry-status topics lint fmt test test-unit \
        test-integration demo clean data train

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PY) >/dev/null || { echo "make: $(PY) not found: install Python 3.11 (or pass PY=/path/to/python3.11)"; exit 2; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools==80.9.0' 'wheel==0.45.1'
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create the venv and install edml with pinned dependencies

kafka-jars: $(STAMP) ## Fetch the Kafka broker jars from Maven Central (kafka/lib)
	$(BIN)/python -c "from edml.kafka.local_broker import ensure_jars; print(ensure_jars())"

kafka-up: kafka-jars ## Start the local KRaft broker (no-op when it runs)
	$(BIN)/edml kafka up --home $(KAFKA_HOME) --port $(KAFKA_PORT)

kafka-down: $(STAMP) ## Stop the local broker
	$(BIN)/edml kafka down --home $(KAFKA_HOME) --port $(KAFKA_PORT)

kafka-status: $(STAMP) ## Is the local broker running?
	$(BIN)/edml kafka status --home $(KAFKA_HOME) --port $(KAFKA_PORT)

REGISTRY_HOME ?= .edml/registry
REGISTRY_PORT ?= 8081

registry-app: $(STAMP) ## Fetch Apicurio Registry (the local schema registry) from Maven Central (registry/app)
	$(BIN)/python -c "from edml.schemas.local_registry import ensure_app; print(ensure_app())"

registry-up: registry-app ## Start the local schema registry (no-op when it runs); prints its URL
	$(BIN)/edml registry up --home $(REGISTRY_HOME) --port $(REGISTRY_PORT)

registry-down: $(STAMP) ## Stop the local schema registry
	$(BIN)/edml registry down --home $(REGISTRY_HOME) --port $(REGISTRY_PORT)

registry-status: $(STAMP) ## Is the local schema registry running?
	$(BIN)/edml registry status --home $(REGISTRY_HOME) --port $(REGISTRY_PORT)

topics: kafka-up ## Create the topics (idempotent)
	$(BIN)/edml topics create

lint: $(STAMP) ## ruff, the import layers (import-linter) and mypy
	$(BIN)/ruff check .
	$(BIN)/python tools/check_package.py layers
	$(BIN)/python tools/check_package.py types

fmt: $(STAMP) ## ruff --fix and format
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

test-unit: $(STAMP) ## Unit tests (no Kafka)
	$(BIN)/pytest -m "not kafka" -q

test: $(STAMP) kafka-jars registry-app kcat ## Every test: unit and integration against a real broker and registry the tests start
	$(BIN)/pytest -q -n 2 --dist loadfile  # two workers, each with its own broker; a module stays on one worker

# kcat reads what edml writes in one interop test, skipped without it
kcat: ## Install kcat when missing (apt-get, as root); otherwise say how
	@command -v kcat >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing kcat (apt-get install kcat)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat) >/dev/null 2>&1 \
	      || echo "make: could not install kcat: its test will be skipped (apt-get install kcat)"; \
	  else \
	    echo "make: kcat is missing: its test will be skipped (install it: sudo apt-get install kcat, or brew install kcat)"; \
	  fi; }

TRIPS ?= 200000
SEED ?= 0
MODEL ?= $(shell date -u +%Y%m%d-%H%M%S)

data: $(STAMP) ## Generate TRIPS synthetic trips into data/trips.avro (seeded by SEED)
	$(BIN)/edml generate --n $(TRIPS) --seed $(SEED) --out data/trips.avro

train: $(STAMP) ## Train the wide & deep model on data/trips.avro into models/MODEL (default: a UTC timestamp)
	@test -f data/trips.avro || { echo "make: data/trips.avro is missing: run make data first"; exit 2; }
	$(BIN)/edml train --data data/trips.avro --out models/$(MODEL) --seed $(SEED)

# --- publishing and CI: every pipeline stage runs one of these targets, locally too --------------
MODEL_NAME ?= trip-duration
# the model `make train` wrote: models/$(MODEL) when MODEL is given, else the newest folder in models/
MODEL_DIR ?= $(if $(filter command line environment,$(origin MODEL)),models/$(MODEL),$(patsubst %/,%,$(firstword $(shell ls -1td models/*/ 2>/dev/null))))
PUBLISH_ARGS ?=
IMAGE ?= edml
IMAGE_TAG ?= $(shell git rev-parse HEAD 2>/dev/null || echo dev)
IMAGE_PUSH ?= 0
CONTAINER_TOOL ?= $(shell command -v docker || command -v podman)
TOFU ?= tofu
TF_BACKEND_PREFIX ?= edml/prod

.PHONY: publish wheel image ci-test ci-package ci-deploy

publish: $(STAMP) ## Gate and publish MODEL_DIR (default: the newest in models/) as MODEL_NAME; prints the version
	@test -n "$(MODEL_DIR)" || { echo "make: no trained model in models/: run make data train (or pass MODEL_DIR=...)"; exit 2; }
	$(BIN)/edml publish --model-dir $(MODEL_DIR) --name $(MODEL_NAME) $(PUBLISH_ARGS)

# the replay gate: MODEL_DIR against the champion (default: the model topic's desired version) on
# REPLAY_ARCHIVE, a folder from `edml record`; without one, on trips generated after the training window
REPLAY_ARCHIVE ?=
REPLAY_TRIPS ?= 20000
REPLAY_AGAINST ?=
REPLAY_TOLERANCE ?= 0.05
REPLAY_OUT ?= out/replay-gate

.PHONY: replay-gate

replay-gate: $(STAMP) ## Replay REPLAY_ARCHIVE (default: generated trips) through MODEL_DIR vs the champion; fail if worse
	@test -n "$(MODEL_DIR)" || { echo "make: no trained model in models/: run make data train (or pass MODEL_DIR=...)"; exit 2; }
	@if [ -z "$(REPLAY_ARCHIVE)" ]; then rm -rf .edml/replay/generated && \
		$(BIN)/edml record --generate $(REPLAY_TRIPS) --out .edml/replay/generated; fi
	$(BIN)/edml replay --input $(or $(REPLAY_ARCHIVE),.edml/replay/generated) --model $(MODEL_DIR) \
		--model-name $(MODEL_NAME) --out $(REPLAY_OUT) --gate --tolerance $(REPLAY_TOLERANCE) \
		$(if $(REPLAY_AGAINST),--against $(REPLAY_AGAINST))

wheel: $(STAMP) ## Build the edml wheel into dist/
	rm -rf build  # setuptools builds in-tree: stale files in build/lib would end up in the wheel
	$(BIN)/pip wheel --no-deps --no-build-isolation -q -w dist .
	rm -rf build

image: ## Build the scorer container image IMAGE:IMAGE_TAG (docker or podman); IMAGE_PUSH=1 pushes it
	@test -n "$(CONTAINER_TOOL)" || { echo "make: no docker or podman to build the image with"; exit 2; }
	$(CONTAINER_TOOL) build -t $(IMAGE):$(IMAGE_TAG) .
	@if [ "$(IMAGE_PUSH)" = 1 ]; then $(CONTAINER_TOOL) push $(IMAGE):$(IMAGE_TAG); fi

ci-test: lint test ## CI stage test: ruff and every test

ci-package: wheel image ## CI stage package: the wheel and the container image

ci-deploy: ## CI stage deploy-app: tofu apply with scorer_image=IMAGE_REF (state in gs://TF_BACKEND_BUCKET)
	@test -n "$(IMAGE_REF)" || { echo "make: set IMAGE_REF=<repository>:<tag>, the image the package stage pushed"; exit 2; }
	@test -n "$(TF_BACKEND_BUCKET)" || { echo "make: set TF_BACKEND_BUCKET, the bucket of the OpenTofu state"; exit 2; }
	$(TOFU) -chdir=terraform init -input=false -backend-config="bucket=$(TF_BACKEND_BUCKET)" -backend-config="prefix=$(TF_BACKEND_PREFIX)"
	$(TOFU) -chdir=terraform apply -input=false -auto-approve -var "scorer_image=$(IMAGE_REF)"

.PHONY: tf-check tofu

tf-check: ## tofu fmt -check, validate and test terraform/ offline (OpenTofu + providers built from Go sources, cached)
	tools/tf-check.sh

tofu: ## Build (or reuse) OpenTofu from its Go module source into tools/bin/tofu
	tools/tf-check.sh tofu

REGISTRY ?=
demo: topics $(if $(REGISTRY),registry-up) ## Both stories end to end: taxi trips, then comment moderation (REGISTRY=1: through the local schema registry)
	$(if $(REGISTRY),EDML_SCHEMA_REGISTRY_URL=http://127.0.0.1:$(REGISTRY_PORT)/apis/ccompat/v7) $(BIN)/edml demo
	$(if $(REGISTRY),EDML_SCHEMA_REGISTRY_URL=http://127.0.0.1:$(REGISTRY_PORT)/apis/ccompat/v7) $(BIN)/edml demo --pipeline moderation

clean: ## Remove the venv, jars and local state
	rm -rf $(VENV) kafka/lib registry/app registry/download .edml

# --- benchmarks: one dedicated local broker, every pipeline on the same trips (bench/run.py) -------
.PHONY: bench bench-quick bench-routed

bench: $(STAMP) kafka-jars ## Throughput, latency and model-swap figures beside the ceiling and a Quix peer (<= 15 min)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.moderation

bench-quick: $(STAMP) kafka-jars ## A smaller bench run: fewer trips and variants (<= 3 min)
	$(BIN)/python -m bench.run --quick

bench-routed: $(STAMP) kafka-jars ## Only the taxi pipeline with two routes and an ensemble beside the single model (~2 min)
	$(BIN)/python -m bench.routed

# --- soak: a long run with model swaps; RSS and open files must stay flat (bench/soak.py) --------
.PHONY: soak
SOAK_MINUTES ?= 30

soak: $(STAMP) kafka-jars ## serve for SOAK_MINUTES (30) at a steady rate, a model swap every 3 min; RSS, fds, losses (not in CI)
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m bench.soak
