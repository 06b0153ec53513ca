# The README's commands. Each target creates the virtualenv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= production
BASE ?= main
PULUMI ?= pulumi
ORG ?=
PULUMI_ARGS ?=
STACK_REF = $(if $(ORG),$(ORG)/)$(STACK)
POLICY = --policy-pack policy --policy-pack-config build/plan/$(STACK).policy.json

.PHONY: plan plan-diff policy docs test preview up refresh destroy pulumi-cli venv clean

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

## make policy: the policy pack over every stack's offline plan; fails on any violation
policy: venv
	@set -e; for stack in $$($(BIN)/python -c 'from tools.mockrun import stacks; print(*stacks())'); do \
		$(BIN)/python -m tools.plan $$stack --quiet --check; done

## The real path (Pulumi CLI + credentials; see README). STACK=<stack> [ORG=<org>] [PULUMI_ARGS=...]
## make preview: pulumi preview --diff with the policy pack
preview: venv pulumi-cli
	$(BIN)/python -m tools.plan $(STACK) --quiet
	$(PULUMI) preview --stack $(STACK_REF) --refresh --diff $(POLICY) $(PULUMI_ARGS)

## make up: pulumi up with the policy pack (shows the preview and asks, unless PULUMI_ARGS=--yes)
up: venv pulumi-cli
	$(BIN)/python -m tools.plan $(STACK) --quiet
	$(PULUMI) up --stack $(STACK_REF) --refresh $(POLICY) $(PULUMI_ARGS)

## make refresh: reconcile the state with what really exists
refresh: venv pulumi-cli
	$(PULUMI) refresh --stack $(STACK_REF) $(PULUMI_ARGS)

## make destroy: tear a stack down; production* stacks also need CONFIRM=<stack>
destroy: venv pulumi-cli
	@case "$(STACK)" in production*) if [ "$(CONFIRM)" != "$(STACK)" ]; then \
		echo "make destroy: refusing to destroy $(STACK) without CONFIRM=$(STACK) (its stateful resources are also protected: pulumi state unprotect first)" >&2; \
		exit 2; fi;; esac
	$(PULUMI) destroy --stack $(STACK_REF) $(PULUMI_ARGS)

pulumi-cli:
	@command -v $(PULUMI) >/dev/null || { echo "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); 'make plan' needs none" >&2; exit 2; }

## make docs: refresh the platform picture the README shows (docs/plan/production.svg)
docs: venv
	$(BIN)/python -m tools.plan production --quiet --out docs/plan
	rm -f docs/plan/production.json docs/plan/production.policy.json docs/plan/production.timeline.svg docs/plan/production.html

## make test: the whole test suite, offline
test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache
