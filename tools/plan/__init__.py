"""Offline plan: what `pulumi up` on a stack would create, cost and take, without credentials.

    python -m tools.plan [STACK] [--out build/plan]     (make plan STACK=...)
    python -m tools.plan.diff BASE [--stack STACK]      (make plan-diff BASE=<git ref>)

The program runs in-process under Pulumi mocks (tools/mockrun.py) with the stack file's config;
secrets only a real stack holds are placeholders, shown as [secret]. `build()` turns the run into
plain data (saved as build/plan/<stack>.json), which `report`, `draw` and `diff` work from.
"""
