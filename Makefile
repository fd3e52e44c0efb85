# sesguard: build, test and run locally. The Python tools (cargo-lambda, moto, cfn-lint, cbor2
# for the test server's CloudWatch, and aws-sam-translator for the rehearsal's IAM audit) are
# installed from PyPI into .venv on first use; nothing else is needed but the Rust toolchain.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY_TOOLS := cargo-lambda==1.9.2 moto[server]==5.2.5 cfn-lint==1.58.0 cbor2==6.3.0 aws-sam-translator==1.115.0
TOOLS_STAMP := $(VENV)/.installed-$(shell printf '%s' '$(PY_TOOLS)' | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# The SAM CLI `make deploy` uses. The smoke run checks make deploy's parameters with its own
# parser: the package alone, with the three modules that parser imports (2 s, not the whole
# CLI's 40 s and 340 MB), in a virtualenv of its own so that it never shadows the full install.
SAM_CLI := aws-sam-cli==1.170.0
SAM_PARSER := $(VENV)/sam-parser

# Local runs: the embedded store and the example configuration.
export SESGUARD_STORE ?= sqlite:.sesguard/sesguard.db
export SESGUARD_CONFIG ?= infra/sesguard.example.toml
# Prevention's DNS: none in local runs and tests unless named (`make demo` starts a zone of its
# own with `sesguard dns serve`; tests start theirs). Deployed functions use the VPC's resolver.
export SESGUARD_DNS ?= off
WATCH_PORT ?= 9000
FUNCTION ?= ingest

.PHONY: help demo tools build test lint fmt bench bench-ingest fuzz watch smoke rehearsal wire-faults deploy clean browser-tools browser-test api-check load

help: ## List the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo: tools ## Start here: the functions under cargo lambda watch play an incident, checked step by step
	$(VENV)/bin/python3 tests/demo.py

tools: $(TOOLS_STAMP) ## Install cargo-lambda, moto and cfn-lint into .venv (once)
$(TOOLS_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_TOOLS)
	rm -f $(VENV)/.installed-* && touch $@

build: tools ## Build every function for Lambda (release, arm64)
	cargo lambda build --release --arm64

test: tools ## Run every test (starts and stops a local DynamoDB-compatible server)
	tests/with-local-dynamodb cargo test --locked

lint: tools ## rustfmt, clippy (warnings as errors) and cfn-lint on the SAM template
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cfn-lint infra/template.yaml

fmt: ## Format the code
	cargo fmt --all

bench: ## Criterion benchmarks
	cargo bench --locked

fuzz: ## Every cargo-fuzz target for 20 s (nightly; `fuzz/run --runs 10000000 TARGET` for a long run)
	fuzz/run

LOAD_RATE ?= 1000
LOAD_SECONDS ?= 20
LOAD_PROFILE ?= bench
LOAD_ARGS ?=
# `--check` fails the run on a criterion; empty, the run only reports.
LOAD_CHECK ?= --check
LOAD_OUT ?= target/load
load: ## One account at $(LOAD_RATE) sends/s with its feedback: sender and ingest processes on fakecloud's DynamoDB (installed and cached on first use); checks the scale criteria; report in target/load
	cargo bench --locked --profile $(LOAD_PROFILE) --bench load -- \
	  --fakecloud "$$(tests/rehearsal/install-fakecloud)" \
	  --rate $(LOAD_RATE) --seconds $(LOAD_SECONDS) --out $(LOAD_OUT) $(LOAD_CHECK) $(LOAD_ARGS)

BENCH_ENVELOPES ?= 5000
bench-ingest: ## `sesguard ingest --verify` over $(BENCH_ENVELOPES) signed bounce envelopes (one per file) and 3 forged ones, release build, /usr/bin/time -v
	cargo build --locked --release --bin sesguard
	rm -rf target/bench-ingest && mkdir -p target/bench-ingest
	python3 tests/sns-sign.py --bulk $(BENCH_ENVELOPES) --forged 3 target/bench-ingest/cert.pem \
	  arn:aws:sns:us-east-1:111111111111:ses-feedback target/bench-ingest/envelopes
	cd target/bench-ingest && /usr/bin/time -v ../release/sesguard --store sqlite:store.db \
	  --config ../../infra/sesguard.example.toml --json ingest --verify --cert cert.pem \
	  --topic arn:aws:sns:us-east-1:111111111111:ses-feedback envelopes/*.json \
	  2> time.txt >summary.json || echo "exit $$? (1: the forged ones failed, as they must)"
	@cat target/bench-ingest/summary.json; grep -E "failed .*forged" target/bench-ingest/time.txt | head -3
	@grep -E "Elapsed|Maximum resident|User time|System time" target/bench-ingest/time.txt
	@python3 -c "import re,sys; t=open('target/bench-ingest/time.txt').read(); \
	  m=re.search(r'Elapsed .*: (?:(\d+):)?(\d+):([\d.]+)', t); s=(int(m.group(1) or 0)*3600+int(m.group(2))*60+float(m.group(3))); \
	  cpu=float(re.search(r'User time .*: ([\d.]+)',t).group(1))+float(re.search(r'System time .*: ([\d.]+)',t).group(1)); \
	  print(f'{$(BENCH_ENVELOPES)/s:,.0f} envelopes/s wall, {$(BENCH_ENVELOPES)/cpu:,.0f} per CPU-second')"

watch: tools ## Serve the functions locally on 127.0.0.1:$(WATCH_PORT) (cargo lambda watch)
	cargo lambda watch --invoke-address 127.0.0.1 --invoke-port $(WATCH_PORT)

invoke-%: tools ## Invoke $(FUNCTION) (default ingest) under `make watch` with events/{,ses/,send/,admin/}%.json
	cargo lambda invoke $(FUNCTION) --invoke-address 127.0.0.1 --invoke-port $(WATCH_PORT) \
	  --data-file $(firstword $(wildcard events/$*.json events/ses/$*.json events/send/$*.json events/admin/$*.json) events/$*.json)

# schemathesis in a virtualenv of its own: its dependencies stay out of moto's way.
SCHEMATHESIS_VENV := $(VENV)/schemathesis
SCHEMATHESIS_VERSION := 4.32.5
$(SCHEMATHESIS_VENV)/.installed-$(SCHEMATHESIS_VERSION):
	python3 -m venv $(SCHEMATHESIS_VENV)
	$(SCHEMATHESIS_VENV)/bin/pip install --quiet --disable-pip-version-check schemathesis==$(SCHEMATHESIS_VERSION)
	rm -f $(SCHEMATHESIS_VENV)/.installed-* && touch $@

api-check: tools $(SCHEMATHESIS_VENV)/.installed-$(SCHEMATHESIS_VERSION) ## schemathesis --checks all on the admin function under cargo lambda watch (SEED=, default 1)
	$(VENV)/bin/python3 tests/api-check.py --seed $(or $(SEED),1)

CHROMIUM := /usr/bin/chromium
browser-tools: $(CHROMIUM) ## Install Debian's chromium and chromium-driver (once; needs root and Debian's package registry)
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver

browser-test: tools browser-tools ## The status page under cargo lambda watch in headless Chromium; screenshot in target/status-page.png
	$(VENV)/bin/python3 tests/status-page.py

rehearsal: tools ## What a deployment does, rehearsed locally: the stack and the functions as deployed, on fakecloud (installed and cached on first use)
	$(VENV)/bin/python3 tests/rehearsal/rehearsal.py

wire-faults: tools ## The sender as deployed on fakecloud with faults on the wire to SESv2 (lost connections, a held answer, 5xx, throttling): every request reaches SES exactly once
	$(VENV)/bin/python3 tests/rehearsal/wire_faults.py

smoke: tools $(SAM_PARSER)/.installed ## Run the functions under cargo lambda watch: every sample, the webhook URL, the sender, the deploy parameter
	SAM_PYTHON=$(SAM_PARSER)/bin/python3 tests/lambda-smoke

$(SAM_PARSER)/.installed:
	python3 -m venv $(SAM_PARSER)
	$(SAM_PARSER)/bin/pip install --quiet --disable-pip-version-check --no-deps \
	  $(SAM_CLI) click==8.1.8 ruamel.yaml==0.19.1 tomlkit==0.15.1
	touch $@

STACK ?= sesguard
DEPLOY_CONFIG ?= sesguard.toml
PARAMS ?=
SESGUARD_CLI := cargo run --quiet --locked --bin sesguard --
deploy: tools ## Build and deploy the SAM stack to AWS (your credentials; STACK=, DEPLOY_CONFIG=, PARAMS=)
	@test -f "$(DEPLOY_CONFIG)" || { echo "DEPLOY_CONFIG=$(DEPLOY_CONFIG): no such file (start from infra/sesguard.example.toml)" >&2; exit 1; }
	$(SESGUARD_CLI) --config "$(DEPLOY_CONFIG)" config check
	mkdir -p .sesguard
	$(SESGUARD_CLI) --config "$(DEPLOY_CONFIG)" config deploy-parameter >.sesguard/deploy-parameter
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(SAM_CLI)
	sam build --template-file infra/template.yaml --beta-features
	sam deploy --stack-name $(STACK) --resolve-s3 --capabilities CAPABILITY_IAM \
	  --parameter-overrides "$$(cat .sesguard/deploy-parameter) $(PARAMS)" $(DEPLOY_ARGS)

clean: ## Remove build output and local state
	cargo clean
	rm -rf .sesguard
