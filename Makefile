# lro-grpc developer targets. Every target creates or reuses .venv itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck protos check-generated wheel-check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the main job: a batch of operations against the embedded emulator
demo: $(STAMP)
	$(VENV)/bin/lro-grpc demo

## test: lint, type check, generated-code drift check, the test suite, then the installed wheel
test: $(STAMP) lint typecheck check-generated
	$(PY) -m pytest -q
	$(PY) tools/check_wheel.py

## wheel-check: build the wheel, install it in a fresh virtualenv, run the CLI and type-check a user script
wheel-check: $(STAMP)
	$(PY) tools/check_wheel.py

lint: $(STAMP)
	$(PY) -m ruff check lro_grpc tests tools benchmarks
	$(PY) -m ruff format --check lro_grpc tests tools benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy lro_grpc

## protos: regenerate generated/ from protos/ (never edit generated/ by hand)
protos: $(STAMP)
	$(PY) tools/gen_protos.py

## check-generated: fail if regenerating would change generated/
check-generated: $(STAMP)
	$(PY) tools/gen_protos.py
	git diff --exit-code --stat -- generated/ || (echo "generated/ is stale: run 'make protos' and commit" >&2; exit 1)
	test -z "$$(git status --porcelain -- generated/)" || (git status --porcelain -- generated/ >&2; echo "generated/ has untracked output: run 'make protos' and commit" >&2; exit 1)

## bench: client CPU/memory/latency benchmarks against the incumbent
bench: $(STAMP)
	$(PY) benchmarks/bench_waiter.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_journal.py
	$(PY) benchmarks/bench_ray.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
