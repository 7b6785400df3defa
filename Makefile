# Strata: every target creates its own virtual environment from the pinned constraints.
# The interpreter: the first Python 3.11 that can make a virtual environment, the system's first.
# Distributions build theirs with profile-guided and link-time optimization (Debian's
# /usr/bin/python3.11 ran `strata bench engine` 5-24% faster than a default pyenv build on the
# same machine; docs/node.md, "The interpreter"). `make setup PYTHON=/path/to/python3.11` overrides.
PYTHON ?= $(shell for p in /usr/bin/python3.11 python3.11; do \
	$$p -c "import venv, ensurepip" 2>/dev/null && { command -v $$p; break; }; done)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Ring 0 compiled by mypyc into the virtual environment (src/strata/compiled.py): rebuilt when a
# ring-0 source changes; `make setup COMPILE=0` leaves ring 0 interpreted (no C compiler needed).
COMPILE ?= 1
COMPILED := $(VENV)/strata-compiled/manifest.json
RING0_SOURCES := $(wildcard src/strata/core/*.py src/strata/core/*.c src/strata/state/*.py src/strata/modules/*/*.py \
	src/strata/stf/*.py) src/strata/compiled.py
ifeq ($(COMPILE),1)
RING0 := $(COMPILED)
endif
# Node tools from the npm registry (Anvil, the local Ethereum node the ethereum DA tests run).
NODE_STAMP := node_modules/.installed

.PHONY: setup run replay test test-long lint bench bench-node clean

# The npm tools are an order-only prerequisite: a new package-lock.json reinstalls node_modules
# without rebuilding the virtual environment.
$(STAMP): pyproject.toml constraints.txt | $(NODE_STAMP)
	@test -n "$(PYTHON)" && command -v $(PYTHON) >/dev/null || { echo "error: no Python 3.11 with venv and ensurepip found (Strata needs Python 3.11; on Debian: apt install python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,plot]"
	@touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (the DA tests need Node 20 and npm for Anvil)"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $(NODE_STAMP)

$(COMPILED): $(STAMP) $(RING0_SOURCES)
	STRATA_PURE=1 $(BIN)/strata compile || { echo "error: compiling ring 0 failed (it needs gcc and the Python 3.11 headers: apt install gcc python3.11-dev); \`make setup COMPILE=0\` runs it interpreted instead"; exit 1; }

setup: $(STAMP) $(RING0)

## The main job: a one-machine devnet with live markets (demo market maker and taker); Ctrl-C stops it.
run: setup
	$(BIN)/strata devnet --demo $(DEVNET_ARGS)

## Replay the real NASDAQ (LOBSTER) sample through the matching engine and check it.
replay: setup
	$(BIN)/strata replay-book --format lobster data/lobster/AAPL_2012-06-21_34200000_57600000_message_10.csv \
		--initial-book data/lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv \
		--check-steps data/lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

## The test command: lint, types, the import-layer contract, then the test suite.
test: lint $(RING0)
	$(BIN)/pytest

## Heavy campaigns (long differential and property runs).
test-long: setup
	$(BIN)/pytest -m long

bench: setup
	$(BIN)/strata bench engine

## A real node under load over its API (about 2 minutes).
bench-node: setup
	$(BIN)/strata bench node

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
