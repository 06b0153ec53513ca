# The README's commands. Each target creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= production

.PHONY: plan test venv clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

## make plan [STACK=production]: what the stack would create, offline (no credentials, no Pulumi CLI)
plan: venv
	$(BIN)/python -m tools.plan $(STACK)

## make test: the whole test suite, offline
test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache
