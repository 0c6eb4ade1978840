# Two entry points for a fresh clone (only Python 3.11 needed): `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench ui clean

# byte-compiled at install (pip's default): where PYTHONDONTWRITEBYTECODE is set, as on our CI box, a module
# is never compiled on import, so a venv installed with --no-compile recompiles torch & co. in every process
PIP := $(BIN)/python -m pip install --quiet

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[dev]"
	@touch $(STAMP)

# The tests also drive a sweep on a real Ray cluster on 127.0.0.1: the optional extra (~250 MB), for tests only;
# installed in the same pip call as the rest (one resolve), which also makes `make run`'s stamp current.
RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[dev,ray]"
	@touch $(STAMP) $(RAY_STAMP)

## Set up (if needed) and run the main job: abuse detection with LightGBM on built-in synthetic data.
run: $(STAMP)
	$(BIN)/airush

## Set up (if needed) and run the whole test suite, one worker per core (a test file stays on one worker,
## so its module fixtures are built once).
test: $(RAY_STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

## Tests without the slow end-to-end CLI runs.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench_cli.py

## Open the MLflow UI on the store airush records to from here (= `airush ui`; MLFLOW_TRACKING_URI wins).
ui: $(STAMP)
	$(BIN)/airush ui

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
