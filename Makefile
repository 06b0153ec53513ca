# The README's commands. Each target creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= production
BASE ?= main

.PHONY: plan plan-diff docs test venv clean

$(BIN)/.installed: requirements.txt requirements-dev.txt policy/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

## make plan [STACK=production]: what the stack would create, cost and take, offline (no credentials,
## no Pulumi CLI); writes build/plan/<stack>.json and .svg
plan: venv
	$(BIN)/python -m tools.plan $(STACK)

## make plan-diff [BASE=main] [STACKS="staging production"]: the plan of this tree against the plan at a git ref
plan-diff: venv
	$(BIN)/python -m tools.plan.diff $(BASE) $(foreach s,$(STACKS),--stack $(s))

## make docs: refresh the platform picture the README shows (docs/plan/production.svg)
docs: venv
	$(BIN)/python -m tools.plan production --quiet --out docs/plan
	rm -f docs/plan/production.json docs/plan/production.policy.json

## make test: the whole test suite, offline
test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache
