# Acreage — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-unit test-integration lint promtool chromium ui bench bench-engine bench-peer bench-state bench-recovery bench-explain bench-takeover bench-pipeline bench-api bench-exports bench-check bench-scenes bench-ticks bench-native broker-fetch clean soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

broker-fetch:
	bash deploy/kafka/broker.sh fetch

## promtool: Debian's prometheus package when promtool is missing (needs root or sudo).
promtool:
	bash deploy/debian-package.sh prometheus promtool "for promtool's rule tests"

## ui: the page's npm packages (uPlot, Leaflet), as package-lock.json pins them, into
## node_modules/ (git-ignored); the worker serves them at /ui/vendor.
UI_STAMP := node_modules/.package-lock.json
ui: $(UI_STAMP)

$(UI_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $(UI_STAMP)

## chromium: Debian's chromium for the browser test when it is missing (needs root or sudo).
chromium:
	bash deploy/debian-package.sh chromium chromium "for the page's browser test"

## make run: embedded broker + worker + API, sample data replayed; Ctrl-C stops all.
run: $(STAMP) broker-fetch ui
	bash deploy/run.sh

## make test: installs what it needs, then lint, unit, property and integration tests.
test: $(STAMP) broker-fetch promtool chromium ui lint
	$(PY) -m pytest -q

test-unit: $(STAMP) promtool
	$(PY) -m pytest -q -m "not integration"

test-integration: $(STAMP) broker-fetch chromium ui
	$(PY) -m pytest -q -m integration

lint: $(STAMP)
	$(VENV)/bin/ruff check schemas aggregates streams tests bench
	$(VENV)/bin/mypy schemas aggregates streams bench

## make soak: the fault matrix (kill -9, scale out/in, broker restart, cold start) 10 times;
## prints stalls, losses, duplicates and 5xx per run and in total; all must be 0.
soak: $(STAMP) broker-fetch
	$(PY) -m tests.soak --runs $(or $(RUNS),10)

bench: bench-engine bench-peer bench-recovery bench-explain bench-pipeline bench-api bench-exports bench-check bench-scenes bench-ticks bench-native

## bench-engine: the scale section stores 1M pieces, as issue 9's goal says (minutes);
## PIECES=200000 for a quick run.
bench-engine: $(STAMP)
	$(PY) -m bench.engine --profile 5000 --pieces-scale $(or $(PIECES),1000000)

## bench-peer: engine with intake vs an incremental PostGIS peer on the same workload;
## installs PostGIS from Debian's packages when missing, else says why the peer is skipped.
bench-peer: $(STAMP)
	$(PY) -m bench.postgis_peer --events 5000

bench-state: $(STAMP)
	$(PY) -m bench.state --events $(or $(EVENTS),200000) $(if $(STATE),--state $(STATE))

## bench-explain: explain my bill's time and the bytes it adds, on bench-state's state.
bench-explain: $(STAMP)
	$(PY) -m bench.explain --events $(or $(EVENTS),20000)

## bench-recovery: bench-state on a store built afresh, then bench-takeover of it: memory
## per event, the takeover from the table, and the takeover with Kafka's recovery.
bench-recovery: $(STAMP) broker-fetch
	rm -rf .data/bench-state
	$(PY) -m bench.state --events $(or $(EVENTS),200000) --state .data/bench-state
	$(PY) -m bench.takeover --state .data/bench-state
	rm -rf .data/bench-state

## bench-takeover STATE=DIR: a worker takes over the changelog of a store that
## `make bench-state STATE=DIR` built; assignment to first metered event, recovery included.
bench-takeover: $(STAMP) broker-fetch
	$(PY) -m bench.takeover --state $(STATE)

bench-pipeline: $(STAMP) broker-fetch
	$(PY) -m bench.pipeline

bench-api: $(STAMP)
	$(PY) -m bench.api_reads

bench-exports: $(STAMP)
	$(PY) -m bench.exports --records $(or $(RECORDS),200000)

## bench-check: one ledger's preview of a satellite scene (a check's work) beside its add.
bench-check: $(STAMP)
	$(PY) -m bench.check

## bench-scenes: a real worker meters satellite scenes; the longest its loop was held.
bench-scenes: $(STAMP) broker-fetch
	$(PY) -m bench.scenes

## bench-ticks: a real worker meters 1,000 owners, then one tick over them all, then a
## second worker joins; the longest its loop was held (OWNERS=... to change).
OWNERS ?= 1000
bench-ticks: $(STAMP) broker-fetch
	$(PY) -m bench.ticks --owners $(OWNERS)

## bench-native: how much of the engine's and the Meter's time GEOS, GeographicLib,
## libspatialindex and RocksDB take (py-spy's native samples; py-spy installed here, a
## benchmark tool, not a dependency).
bench-native: $(STAMP)
	$(PY) -m pip install -q py-spy
	$(PY) -m bench.native --events $(or $(EVENTS),5000)

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
