# medallion: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# One build profile serves `make test` and `make pipeline` (dev, with optimised dependencies:
# see Cargo.toml), so a fresh clone pays for one cold build.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BIN := $(TARGET_DIR)/debug/medallion
# `make bench` builds release in a target folder of its own, so a debug build (tests) never
# waits for its lock.
BENCH_TARGET_DIR := $(abspath $(TARGET_DIR))/bench
WAREHOUSE ?= warehouse
DATA ?= lab_data
MEDALLION = $(BIN) --warehouse $(WAREHOUSE) --data $(DATA)
# Python tools, pinned, in one ignored virtual environment: other Delta readers for `make
# interop` (Python deltalake, Polars, DuckDB with its delta extension and httpfs for S3, Spark's
# API through Sail, a Spark Connect server without a JVM) and moto, a local S3 endpoint for the
# tests, `make interop` and `make s3-demo`. The stamp holds the list it was installed from: a
# changed pin installs again.
VENV := .venv
VENV_STAMP := $(VENV)/.installed
INTEROP_PACKAGES := deltalake==1.6.6 polars==2.1.0 duckdb==1.4.4 duckdb-ext-delta==1.4.4.20260205 \
	duckdb-ext-httpfs==1.4.4.20260205 pyarrow==26.0.1 \
	moto[server]==5.2.5 pysail==0.7.2 pyspark[connect]==4.0.1
# The tests that need an S3 endpoint start this moto server; without it they are skipped.
MOTO := $(abspath $(VENV))/bin/moto_server
HAVE_PYTHON := $(shell command -v python3)
# `make report REPORT=/tmp/lake.html` writes it elsewhere.
REPORT ?= report.html
# The browser test's screenshot and report: build artifacts, not in git.
BROWSER_OUT := $(TARGET_DIR)/report
# `make s3-demo S3_DEMO_ARGS=--keep` leaves moto up, with the tables, until Ctrl-C.
S3_DEMO_ARGS ?=

.PHONY: help build man completions data patients bronze silver gold pipeline report test browser-test bench venv interop s3-demo soak lint fmt clean clean-data

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

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

report: build ## Write the warehouse as one HTML file, report.html (after make pipeline; REPORT=FILE)
	$(MEDALLION) report --out $(REPORT)

test: $(if $(HAVE_PYTHON),venv) lint ## Lint, then run every test (unit and integration; S3 ones on moto from the venv; the report in headless Chromium)
ifeq ($(HAVE_PYTHON),)
	@echo "*** make test: python3 not found: no venv, no moto: the S3 tests will be SKIPPED ***" >&2
	$(CARGO) test --all-targets
	@echo "*** make test: python3 not found: the S3 tests and the browser test were SKIPPED ***" >&2
else
	MEDALLION_MOTO=$(MOTO) MEDALLION_PYTHON=$(VENV)/bin/python $(CARGO) test --all-targets
	@$(MAKE) --no-print-directory browser-test
endif

# Chromium from Debian's packages, installed here when it is missing and this is a root shell
# with apt-get (as on CI); elsewhere install it yourself (`apt-get install chromium`).
browser-test: build ## The report in headless Chromium, networking off: its screenshot must not be blank (installs chromium)
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "browser-test: installing Debian's chromium"; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
				|| echo "browser-test: apt-get could not install chromium" >&2; \
		fi; \
	fi
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then \
		python3 tests/browser/check_report.py $(BIN) "$$(command -v chromium || command -v chromium-browser)" $(BROWSER_OUT); \
	else \
		echo "*** browser-test: chromium is not installed and could not be (not root, or no apt-get): the browser test was SKIPPED ***" >&2; \
	fi

# `make bench BENCH_S3=1` adds bench/run's S3 measurement on moto (x10), which runs on the venv's
# Python (moto, deltalake, Polars).
BENCH_PYTHON = $(if $(filter 1,$(BENCH_S3)),$(VENV)/bin/python,python3)
bench: venv ## Release build, then bench/run (x1, x10, beside the Python peer and Sail; BENCH_SCALE=100 adds x100, 1000 also x1000; BENCH_S3=1 S3 on moto) and micro benchmarks
	CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build --release --bin medallion --example micro
	BENCH_S3=$(BENCH_S3) MEDALLION_BIN=$(BENCH_TARGET_DIR)/release/medallion $(BENCH_PYTHON) bench/run
	$(BENCH_TARGET_DIR)/release/examples/micro

venv: ## The Python venv (.venv/): interop readers, Sail, moto; installed again only when a pin changes
	@if [ "$$(cat $(VENV_STAMP) 2>/dev/null)" != "$(INTEROP_PACKAGES)" ]; then \
		set -e; \
		test -x $(VENV)/bin/python || { rm -rf $(VENV); python3 -m venv $(VENV); }; \
		echo "venv: installing $(INTEROP_PACKAGES) into $(VENV)"; \
		$(VENV)/bin/pip install -q --disable-pip-version-check $(foreach p,$(INTEROP_PACKAGES),'$(p)'); \
		echo "$(INTEROP_PACKAGES)" > $(VENV_STAMP); \
	fi

interop: build venv ## Read every table (local, then on moto's S3) with deltalake, Polars, DuckDB, Spark via Sail
	$(VENV)/bin/python tests/interop/check.py $(BIN)

s3-demo: build venv ## The pipeline on a local S3 (moto): where the tables are, how to read them (S3_DEMO_ARGS=--keep)
	$(VENV)/bin/python tests/interop/s3_demo.py $(BIN) $(S3_DEMO_ARGS)

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
