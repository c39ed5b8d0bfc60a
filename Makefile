# The README's commands, word for word. `make dev` runs the stack locally; `make test` runs
# every test. Both install what they need (into the git-ignored .tools/) on first use.

SHELL := /bin/bash
CARGO ?= cargo
VENV := .tools/venv/bin

.PHONY: dev test check lint unit template tools

## Start DynamoDB Local and serve every route on 127.0.0.1:$${PORT:-3000}.
dev:
	tools/install.sh dynamodb-local
	$(CARGO) run -p cgm-local --bin cgm-dev

## Everything CI runs: formatting, clippy, unit and integration tests, template checks.
test: tools lint unit template

tools:
	tools/install.sh all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Unit and integration tests, with a DynamoDB Local of their own on a free port.
unit:
	$(CARGO) build --locked -p cgm-local --bin with-dynamodb-local
	target/debug/with-dynamodb-local $(CARGO) nextest run --workspace --locked --no-fail-fast

template:
	$(VENV)/cfn-lint infra/template.yaml

## The faster loop while editing: formatting, clippy and the tests, no install checks.
check: lint unit
