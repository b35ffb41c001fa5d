# GeoTriplet: `make demo` sets everything up and runs the pipeline; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.geotriplet-installed
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo synth materialize query serve test test-fast lint format ui bench clean-data e2e e2e-slurm bench-slurm

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/geotriplet synth
	$(BIN)/geotriplet materialize
	$(BIN)/geotriplet query

query: setup
	$(BIN)/geotriplet query

serve: setup
	$(BIN)/geotriplet serve

synth: setup
	$(BIN)/geotriplet synth

materialize: setup
	$(BIN)/geotriplet materialize

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

e2e: setup
	VENV=$(VENV) bash tests/e2e/run_compose_e2e.sh

e2e-slurm: setup
	VENV=$(VENV) bash tests/e2e/run_compose_e2e.sh --slurm

bench-slurm: setup
	VENV=$(VENV) bash tests/e2e/run_compose_e2e.sh --slurm --bench

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ui: setup
	mkdir -p data/dagster_home && DAGSTER_HOME=$(CURDIR)/data/dagster_home $(BIN)/dagster dev -m geotriplet_assets.definitions

bench: setup
	$(BIN)/python benchmarks/bench_catalogue.py
	$(BIN)/python benchmarks/bench_cold_start.py
	$(BIN)/python benchmarks/bench_embedding.py
	$(BIN)/python benchmarks/bench_neighbours.py
	$(BIN)/python benchmarks/bench_sampler.py
	$(BIN)/python benchmarks/bench_retrieval_metrics.py
	$(BIN)/python benchmarks/bench_locate.py
	$(BIN)/python benchmarks/bench_thumbnails.py
	$(BIN)/python benchmarks/bench_rerank.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_search.py --keep benchmarks/results/search-bundles
	$(BIN)/python benchmarks/bench_search.py --index ivfpq
	$(BIN)/python benchmarks/bench_service_http.py
	$(BIN)/python benchmarks/bench_bundle_start.py --bundles benchmarks/results/search-bundles
	$(BIN)/python benchmarks/bench_scale.py --sizes 10000 100000
	$(BIN)/python benchmarks/bench_training_memory.py

clean-data:
	rm -rf data
