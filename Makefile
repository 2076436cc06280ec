# Pulpit: the two commands a newcomer needs are `make run` and `make test`.
# Each bootstraps .venv from nothing, so they are the whole set-up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PULPIT := $(BIN)/pulpit

.PHONY: run test lint typecheck fmt clean bench demo messages

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/activate
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(PULPIT) db upgrade
	$(PULPIT) config apply config/examples/demo.yaml
	$(PULPIT) serve --demo-banner

test: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check core mailgw web workers config pulpit tests bench
	$(BIN)/ruff format --check core mailgw web workers config pulpit tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

fmt: $(VENV)/.installed-dev
	$(BIN)/ruff format core mailgw web workers config pulpit tests bench
	$(BIN)/ruff check --fix core mailgw web workers config pulpit tests bench

bench: $(VENV)/.installed-dev
	$(PY) bench/sla.py

# Re-extract the console's messages and merge them into the catalogues (then translate).
messages: $(VENV)/.installed-dev
	mkdir -p var
	$(BIN)/pybabel extract -F babel.cfg -o var/messages.pot .
	$(BIN)/pybabel update -i var/messages.pot -d web/locale

clean:
	rm -rf $(VENV) var .pytest_cache
