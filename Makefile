# Strata: every target creates its own virtual environment from the pinned constraints.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run replay test test-long lint bench bench-node clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Strata needs Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

## The main job: a one-machine devnet with live markets (demo market maker and taker); Ctrl-C stops it.
run: $(STAMP)
	$(BIN)/strata devnet --demo $(DEVNET_ARGS)

## Replay the real NASDAQ (LOBSTER) sample through the matching engine and check it.
replay: $(STAMP)
	$(BIN)/strata replay-book --format lobster data/lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv \
		--initial-book data/lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv \
		--check-steps data/lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

## The test command: lint, types, the import-layer contract, then the test suite.
test: lint
	$(BIN)/pytest

## Heavy campaigns (long differential and property runs).
test-long: $(STAMP)
	$(BIN)/pytest -m long

bench: $(STAMP)
	$(BIN)/strata bench engine

## A real node under load over its API (about 2 minutes).
bench-node: $(STAMP)
	$(BIN)/strata bench node

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
