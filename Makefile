# The two commands of the README, and the pieces they are made of.
# Everything installs what it needs on first use (uv, Python packages, Kafka jars, Go builds),
# cached in the standard places, so later runs start in seconds.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv/bin

.PHONY: run test lint typecheck unit stack-up stack-down stack-status deps contracts bench-redirect

## make run: Kafka, FerretDB, Jaeger and the four services in the foreground; Ctrl-C stops all.
run: deps
	$(VENV)/chorus up

## make test: ruff, mypy, the event-contract check and every test tier against a test stack
## that the tests start on their own ports and stop at the end.
test: deps lint typecheck
	$(VENV)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

deps:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

lint: deps
	$(VENV)/ruff check shared services tests bench
	$(VENV)/ruff format --check shared services tests bench

typecheck: deps
	$(VENV)/mypy

unit: deps
	$(VENV)/pytest -q tests/unit

stack-up: deps
	$(VENV)/chorus stack up

stack-down: deps
	$(VENV)/chorus stack down

stack-status: deps
	$(VENV)/chorus stack status

contracts: deps
	$(VENV)/chorus schemas --out docs/events
