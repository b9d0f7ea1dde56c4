# Two commands set everything up on a fresh machine (Python 3.11+ and git):
#   make run   - create .venv, install pinned dependencies, load the demo basin if the store is empty, start the app
#   make test  - create .venv, install pinned dependencies, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint bench profile clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mlpe demo --if-empty
	$(BIN)/streamlit run app/main.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/fusion.py
	$(BIN)/python benchmarks/ranking.py
	$(BIN)/python benchmarks/dispatch.py
	$(BIN)/python benchmarks/basin.py

# cProfile of each store-bound command on the 100,000-asset basin; profiles go to a new temp folder (printed)
profile: $(STAMP)
	$(BIN)/python benchmarks/profile.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
