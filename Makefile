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

NODE_TOOLS := tools/ci/node

# Bytecode on even where the environment turns it off (PYTHONDONTWRITEBYTECODE): otherwise every `make plan`, test
# worker and planner process a test starts compiles the program again, and each test worker rewrites the test
# modules' asserts again (7 s a process); __pycache__ is git-ignored and the run cache ignores it.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: plan plan-diff policy docs test preview up verify drift refresh destroy pulumi-cli venv node-tools cloud-init-schema clean

$(BIN)/.installed: requirements.txt requirements-dev.txt policy/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

# gitlab-ci-local, the GitLab CI parser the pipeline tests run offline, pinned by its lock file. No install
# scripts run (it has no native parts). Without npm the tests that need it are skipped, and say why.
$(NODE_TOOLS)/node_modules/.installed: $(NODE_TOOLS)/package.json $(NODE_TOOLS)/package-lock.json
	npm ci --prefix $(NODE_TOOLS) --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

node-tools:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_TOOLS)/node_modules/.installed; \
	else echo "npm not found: the GitLab CI parser tests will be skipped (install Node.js 20 and npm)" >&2; fi

# cloud-init's JSON schema (not on PyPI): extracted from Debian's pinned, checksummed cloud-init package into
# tools/ci/cloud-init (git-ignored). Offline it warns and the user data schema tests skip (CI: they fail).
cloud-init-schema: venv
	$(BIN)/python -m tools.ci.cloud_init_schema

## make plan [STACK=production] [PLAN_ARGS=--no-cache]: what the stack would create, cost and take, offline (no
## credentials, no Pulumi CLI); writes build/plan/<stack>.json and .svg. An unchanged tree and config read back the
## program's run recorded in build/run-cache (the same plan, faster); --no-cache runs the program again
plan: venv
	$(BIN)/python -m tools.plan $(STACK) $(PLAN_ARGS)

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

## make verify: the live acceptance check after `pulumi up` (nodes, releases, stores, hostnames and
## certificates, alerts, backups, a write and read per store with a consumer's login, node autoscaler,
## restore drills) with the stack's kubeconfig output; needs kubectl; fails on any problem
verify: venv pulumi-cli
	@command -v kubectl >/dev/null || { echo "make verify needs kubectl (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 2; }
	$(BIN)/python -m tools.verify $(STACK_REF)

## make drift: fails when the deployed stack differs from the program (pulumi preview --refresh
## --expect-no-changes), e.g. a change made by hand; the scheduled pipelines run it per deployed stack
drift: venv pulumi-cli
	$(BIN)/python -m tools.plan $(STACK) --quiet
	$(PULUMI) preview --stack $(STACK_REF) --refresh --expect-no-changes --diff $(POLICY) $(PULUMI_ARGS)

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
test: venv node-tools cloud-init-schema
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build .pytest_cache $(NODE_TOOLS)/node_modules tools/ci/cloud-init
