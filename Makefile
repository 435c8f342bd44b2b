# newsmon: the commands a newcomer needs. `make run` and `make test` do all the set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
KAFKA_DIR := .cache/kafka/dev

.PHONY: help venv system run test lint fmt typecheck pytest unit integration kafka kafka-stop schemas bench demo clean

help:
	@echo "make run         install into .venv and run the whole pipeline in one process"
	@echo "make test        install (and the system tools: java, maven, promtool, node; helm"
	@echo "                 built once), then ruff, mypy and pytest (starts its own Kafka broker)"
	@echo "make kafka       start a local Kafka 4 broker on 127.0.0.1:9092 (make kafka-stop)"
	@echo "make schemas     regenerate docs/schemas from the wire contracts"
	@echo "make bench       run the benchmarks under bench/"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# java, maven, promtool, node: installed when missing (as root), else one line naming the
# packages; then helm, built once (scripts/install-chart-tools.sh).
system:
	scripts/setup-system.sh

run: $(STAMP)
	$(BIN)/newsmon run

demo: $(STAMP)
	$(BIN)/newsmon demo

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench

fmt: $(STAMP)
	$(BIN)/ruff check --fix pipeline tests bench
	$(BIN)/ruff format pipeline tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) system
	$(BIN)/pytest

test: system lint typecheck pytest

unit: $(STAMP) system
	$(BIN)/pytest tests/unit

integration: $(STAMP) system
	$(BIN)/pytest tests/integration

kafka:
	scripts/kafka.sh start $(KAFKA_DIR) 9092 9093

kafka-stop:
	scripts/kafka.sh stop $(KAFKA_DIR)

schemas: $(STAMP)
	$(BIN)/newsmon schemas --out docs/schemas

bench: $(STAMP)
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
