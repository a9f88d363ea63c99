# Trickle — the two quick-start commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test setup lint lint-extension extension typecheck test-py test-js bench clean

run: setup  ## install, seed the demo reader/creator/payee, serve on SQLite in ./data
	$(BIN)/trickle demo

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml verifier/pyproject.toml publisher/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./verifier -e ./publisher -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: setup lint lint-extension typecheck test-js test-py  ## install, then run every check and test

# lint-imports: the dependency rules of docs/architecture.md, as contracts in pyproject.toml.
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service verifier publisher
	$(BIN)/lint-imports --no-logo

extension: node_modules/.installed  ## the store packages: dist/trickle-<version>-{chromium,firefox}.zip
	node extension/package.mjs

# Mozilla's linter on the Firefox package, as addons.mozilla.org would run it.
lint-extension: extension
	npx --no-install web-ext lint --source-dir dist/firefox --warnings-as-errors

# mypy --strict on the packages, tests/ and bench/ (the files in pyproject.toml's [tool.mypy]).
typecheck:
	$(BIN)/mypy
	npx --no-install tsc -p tsconfig.json

test-js:
	node --test sdk_js_bridge/test/ extension/test/

test-py:
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/receipts.py

clean:
	rm -rf $(VENV) node_modules dist .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
