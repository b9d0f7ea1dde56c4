# Two commands set everything up on a fresh machine (Python 3.11+ and git):
#   make run   - create .venv, install the pinned runtime (requirements.lock), load the demo basin if the store
#                is empty, start the app
#   make test  - the same .venv plus the pinned test tools (requirements-dev.lock), then the whole test suite
#   make wheel-check - build the wheel, install it with requirements.lock into a fresh venv, run `mlpe demo` and
#                `mlpe export leaks` from it (.ci/run does this before the tests)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test install lint bench profile clean wheel-check screenshots ui-timing

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install -q -r requirements.lock -r requirements-dev.lock
	touch $(DEV_STAMP)

install: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/mlpe demo --if-empty
	$(BIN)/streamlit run app/main.py

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

wheel-check: $(STAMP)
	PYTHON=$(PYTHON) bash .ci/wheel_check

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/fusion.py
	$(BIN)/python benchmarks/ranking.py
	$(BIN)/python benchmarks/dispatch.py
	$(BIN)/python benchmarks/basin.py

# the README's screenshots: the browser tests drive every page in Chromium and save them to docs/screenshots
# (`make test` saves them to a temporary folder, so a test run leaves the tree clean)
screenshots: $(DEV_STAMP)
	MLPE_SHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_browser.py

# the browser tests with their timing targets checked (page loads, clicks, the 50,000-leak map): on a quiet machine
ui-timing: $(DEV_STAMP)
	MLPE_UI_TIMING=1 $(BIN)/python -m pytest -q tests/test_browser.py

# cProfile of each store-bound command on the 100,000-asset basin; profiles go to a new temp folder (printed)
profile: $(STAMP)
	$(BIN)/python benchmarks/profile.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
