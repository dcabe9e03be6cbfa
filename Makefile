# medallion: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# One build profile serves `make test` and `make pipeline` (dev, with optimised dependencies:
# see Cargo.toml), so a fresh clone pays for one cold build.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/debug/medallion
WAREHOUSE ?= warehouse
DATA ?= lab_data
MEDALLION = $(BIN) --warehouse $(WAREHOUSE) --data $(DATA)
# Other Delta readers for `make interop`, pinned, in an ignored virtual environment.
VENV := .venv
INTEROP_PACKAGES := deltalake==1.6.6 polars==2.1.0 duckdb==1.4.4 duckdb-ext-delta==1.4.4.20260205 pyarrow==26.0.1

.PHONY: help build man completions data patients bronze silver gold pipeline test bench interop soak lint fmt clean clean-data

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build the medallion binary (dev profile, optimised dependencies)
	$(CARGO) build --bin medallion

man: build ## Man pages from the binary: target/man/medallion.1 and one per command
	$(BIN) man --out target/man

completions: build ## Shell completion scripts (bash, zsh, fish, powershell, elvish) in target/completions/
	mkdir -p target/completions
	$(BIN) completions bash > target/completions/medallion.bash
	$(BIN) completions zsh > target/completions/_medallion
	$(BIN) completions fish > target/completions/medallion.fish
	$(BIN) completions powershell > target/completions/_medallion.ps1
	$(BIN) completions elvish > target/completions/medallion.elv

data: build ## Generate the lab's source data under lab_data/ if it is not there
	@if [ -e $(DATA)/healthcare/batch/patient_info.csv ]; then \
		echo "data: $(DATA)/healthcare already holds data (make clean-data to regenerate)"; \
	else \
		$(MEDALLION) generate; \
	fi

patients: build ## Load the patient CSV into dim_patients
	$(MEDALLION) patients

bronze: build ## Stream new tracker files into fact_heartrate_bronze (exactly once)
	$(MEDALLION) bronze

silver: build ## Refresh fact_heartrate_silver from new bronze rows (MERGE)
	$(MEDALLION) silver

gold: build ## Refresh fact_heartrate_gold and fact_heartrate_daily from silver changes (MERGE)
	$(MEDALLION) gold

pipeline: data build ## Build, generate the data if absent, run every layer, print gold
	$(MEDALLION) pipeline

test: lint ## Lint, then run every test (unit and integration)
	$(CARGO) test --all-targets

bench: ## Release build, then bench/run (x1, x10; BENCH_SCALE=100 adds x100) and micro benchmarks
	$(CARGO) build --release --bin medallion --example micro
	MEDALLION_BIN=$(TARGET_DIR)/release/medallion python3 bench/run
	$(TARGET_DIR)/release/examples/micro

interop: build ## Read every table with Python deltalake, Polars and DuckDB; compare with medallion show
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(INTEROP_PACKAGES)
	$(VENV)/bin/python tests/interop/check.py $(BIN)

# `random_kills` names both kill tests: bronze's and the whole pipeline's.
soak: ## The random-kill tests (bronze, pipeline) with 500 rounds each, and their kill counts
	MEDALLION_KILL_ROUNDS=500 $(CARGO) test --test it random_kills -- --nocapture

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt

clean-data: ## Remove the generated data and the warehouse's tables
	rm -rf $(DATA)/healthcare $(WAREHOUSE)/healthcare_dlh.db

clean: clean-data ## Remove data, tables and build output
	$(CARGO) clean
