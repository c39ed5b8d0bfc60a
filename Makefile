# The README's commands, word for word. `make dev` runs the stack locally; `make test` runs
# every test. Both install what they need (into the git-ignored .tools/) on first use.

SHELL := /bin/bash
CARGO ?= cargo
VENV := .tools/venv/bin
# The SAM CLI, cargo-lambda and zig all come from one venv; no telemetry from CI.
SAM := PATH="$(CURDIR)/$(VENV):$$PATH" SAM_CLI_TELEMETRY=0 $(VENV)/sam

.PHONY: dev ehr test check lint unit template sam-build tools bench fuzz

## Start DynamoDB Local and serve every route on 127.0.0.1:$${PORT:-3000}.
dev:
	tools/install.sh dynamodb-local
	tools/install.sh fonts
	$(CARGO) run -p cgm-local --bin cgm-dev

## A stand-in EHR on 127.0.0.1:$${EHR_PORT:-3100} for the FHIR submitter of `make dev`; it
## prints the settings to start `make dev` with.
ehr:
	$(CARGO) run -p cgm-ehr

## Everything CI runs: formatting, clippy, template and OpenAPI checks, the arm64 build of
## every function, then the unit and integration tests (the runtime canary test runs those
## arm64 bootstraps).
test: tools lint template sam-build unit

tools:
	tools/install.sh all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Unit and integration tests, with a DynamoDB Local of their own on a free port.
unit:
	$(CARGO) build --locked -p cgm-local --bin with-dynamodb-local
	target/debug/with-dynamodb-local $(CARGO) nextest run --workspace --locked --no-fail-fast

## Lint and validate the SAM template and the OpenAPI document offline (no AWS account needed).
template:
	$(VENV)/cfn-lint infra/template.yaml
	$(SAM) validate --lint
	$(VENV)/openapi-spec-validator docs/openapi.yaml

## Build every function as SAM would for deployment: arm64 `bootstrap` files under
## .aws-sam/build/<Function>/, non-interactively.
sam-build:
	$(SAM) build --build-dir .aws-sam/build </dev/null
	tools/check-build.sh .aws-sam/build

## The faster loop while editing: formatting, clippy and the tests, no install checks.
check: lint unit

## Benchmarks: rewrites the figures in BENCHMARKS.md (not part of `make test`).
bench: tools sam-build
	$(CARGO) build --release --locked -p cgm-bench -p cgm-push -p cgm-read -p cgm-report -p cgm-local --bins
	target/release/with-dynamodb-local target/release/cgm-bench
	$(CARGO) bench --locked -p cgm-shared -p cgm-partner --bench hot_paths -- --noplot 2>&1 | tee target/criterion-summary.txt
	tools/bench-micro.sh target/criterion-summary.txt BENCHMARKS.md

## Fuzz the parsers of outside input (push bodies, Partner API answers) for FUZZ_SECONDS
## each, starting from the committed seeds. Not part of `make test`. Works on stable Rust:
## without a sanitizer (which needs nightly) cargo-fuzz passes only stable -C flags.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS := push_body partner_envelope
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t && cp fuzz/seeds/$$t/* fuzz/corpus/$$t/ && \
	  $(CARGO) fuzz run $$t --sanitizer none fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 || exit 1; \
	done
