# The two commands of the README, and the pieces they are made of.
# Both install what they need first (make deps), idempotently, cached in the standard places
# (uv's cache, ~/.m2, Go's module and build caches, ~/.local/share/chorus), so later runs start
# in seconds and nothing is ever built under a test's timeout.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv/bin

.PHONY: run demo fuzz test lint typecheck unit stack-up stack-down stack-status deps deps-run python-env contracts image

## make run: Kafka, SecantusDB, Jaeger and the four services in the foreground; Ctrl-C stops all.
## make run DEMO=1: the same, and `chorus demo` plays a simulated program once everything is up.
run: deps-run
	$(VENV)/chorus up $(if $(DEMO),--demo)

## make demo: a simulated program played against a running `make run` (through its gateway);
## DEMO_ARGS passes options, e.g. DEMO_ARGS="--advocates 10 --days 7 --seed 3".
demo: python-env
	$(VENV)/chorus demo $(DEMO_ARGS)

## make fuzz: Schemathesis against a running `make run`, deeper than the tests' step, on a new
## seed each time (printed); FUZZ_ARGS passes options, e.g. FUZZ_ARGS="--seed 4242 --examples 100".
fuzz: python-env
	$(VENV)/chorus fuzz $(FUZZ_ARGS)

## make test: ruff, mypy, the event-contract check and every test tier against a test stack
## that the tests start on their own ports and stop at the end. The image is built first: the
## image smoke test only runs it, and nothing is built under a test's timeout.
test: deps image lint typecheck
	$(VENV)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## The Python environment: uv (from PyPI) and the locked packages in .venv.
python-env:
	@echo "install: Python environment (uv $(UV_VERSION), uv.lock)..." >&2
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet
	@echo "install: Python environment: ok" >&2

## What `make run` needs: the Python environment, the Kafka jars, SecantusDB and Jaeger.
deps-run: python-env
	@$(VENV)/chorus stack install

## What `make test` needs besides: the npm contract checkers, the Kubernetes tools, the image tools.
deps: python-env
	@$(VENV)/chorus stack install --test-tools

## The OCI image (no Docker engine): cached layers in ~/.cache/chorus/image/oci, tag dev, and
## build/chorus-image.tar for docker load / kind load. Only the layers that changed are rebuilt.
image: deps
	$(VENV)/python -m devtools.image build --uv "$(UV)"

lint: python-env
	$(VENV)/ruff check shared services devtools tests bench
	$(VENV)/ruff format --check shared services devtools tests bench

typecheck: python-env
	$(VENV)/mypy

unit: python-env
	$(VENV)/pytest -q tests/unit

stack-up: deps-run
	$(VENV)/chorus stack up

stack-down: python-env
	$(VENV)/chorus stack down

stack-status: python-env
	$(VENV)/chorus stack status

contracts: python-env
	$(VENV)/chorus schemas --out docs/events
