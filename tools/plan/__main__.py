"""`python -m tools.plan [STACK] [--out DIR] [--quiet] [--no-cache]`: report, JSON and picture of a stack's plan."""

from __future__ import annotations

import gc

if __name__ == "__main__":
    # The imports below (the program, pydantic's models, the Pulumi SDKs) create objects by the hundred thousand and
    # free almost none: the cyclic collector's passes over them were a fifth of the imports' time. A planner process
    # keeps it off until it exits (main, exit_process).
    gc.disable()

import argparse
import itertools
import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, NoReturn

from config import ConfigError
from tools import mockrun
from tools.mockrun import ROOT, Run, Secret, StackFileError, run_stack, stacks
from tools.runcache import RunCache
from policy.rules import CAPACITY_RULE
from tools.plan import architecture, html, model, report, timeline

DEFAULT_OUT = ROOT / "build" / "plan"
# Runs of this tree recorded by earlier plans (git-ignored, like all of build/). The mock run is most of a plan's
# time; its entry is keyed by everything a run depends on (tools/runcache.py: the config, every file of the tree,
# the installed packages, the environment), so an unchanged stack is planned from the record, identically.
RUN_CACHE = ROOT / "build" / "run-cache"
# Environment variables named like a credential (HCLOUD_TOKEN, AWS_SECRET_ACCESS_KEY, ...).
CREDENTIAL_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|(^|_)(API_?)?KEY(_|$)|AUTH", re.I)


class PlanRuns(RunCache):
    """The plan's recorded runs. A run whose secrets hold a credential from the environment is not written down:
    offline every secret is a placeholder, except what the program takes from the environment (the Hetzner
    provider's HCLOUD_TOKEN, in a stack without hcloud:token), which is a real one."""

    def storable(self, result: Run | dict[str, Any]) -> bool:
        credentials = {value for name, value in os.environ.items() if CREDENTIAL_NAME.search(name) and len(value) >= 8}
        if not credentials:
            return True
        if not isinstance(result, Run):  # a plan (plan_stack): none of its text may hold one
            return not any(credential in text for text in _secret_texts(result, inside=True) for credential in credentials)
        secret_outputs = [value for key, value in result.outputs.items() if key in result.secret_outputs]
        texts = itertools.chain(_secret_texts([r.inputs for r in result.resources]),
                                _secret_texts(secret_outputs, inside=True))
        return not any(credential in text for text in texts for credential in credentials)


def _secret_texts(value: Any, inside: bool = False) -> Iterator[str]:
    """The strings inside `value` that are secret (in a `Secret`, or all of them when `inside` one)."""
    if isinstance(value, Secret):
        yield from _secret_texts(value.value, True)
    elif isinstance(value, str):
        if inside:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_texts(item, inside)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _secret_texts(item, inside)


def plan_stack(stack: str) -> dict[str, Any]:
    """model.build of the stack's run; with a run cache, the plan is kept beside the run (kind "plan", as the tests
    keep theirs): a repeated plan of an unchanged tree reads both back instead of building again (the policy pack
    over every resource, the cost and limits: about a third of a recorded plan's time)."""
    cache = mockrun.cache
    if cache is None or mockrun._fakes_replaced():
        return model.build(run_stack(stack))
    values, secret_keys = mockrun.stack_config(stack)
    return cache.recorded(values, secret_keys, stack, lambda *config: model.build(run_stack(stack)), kind="plan")


@contextmanager
def recorded_runs(cache: RunCache | None) -> Iterator[RunCache | None]:
    """Runs read from and stored in `cache` meanwhile (None: every run executes), unless a cache is set already
    (the tests' shared one, $ADPLATFORM_RUN_CACHE); yields the cache in use."""
    saved = mockrun.cache
    mockrun.cache = saved if saved is not None and cache is not None else cache
    try:
        yield mockrun.cache
    finally:
        mockrun.cache = saved


def write(plan: dict[str, Any], out: Path) -> dict[str, Path]:
    """build/plan/<stack>.json, .svg (architecture), .timeline.svg, .html (both and the rest, one page)
    and .policy.json (the pack's config for `--policy-pack-config`)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{plan['stack']}.json", "svg": out / f"{plan['stack']}.svg",
             "timeline": out / f"{plan['stack']}.timeline.svg", "html": out / f"{plan['stack']}.html",
             "policy": out / f"{plan['stack']}.policy.json"}
    paths["json"].write_text(json.dumps(plan, indent=1, sort_keys=True, default=str) + "\n")
    pictures = architecture.svg(plan), timeline.svg(plan)
    paths["svg"].write_text(pictures[0])
    paths["timeline"].write_text(pictures[1])
    paths["html"].write_text(html.render(plan, pictures))
    # The admin CIDRs, and the pools' capacity at the max for the capacity rule (the stack config and the provider's
    # sizes, which the pack cannot read); production-stateful-protected decides by stack name (production*).
    paths["policy"].write_text(json.dumps({
        "admin-ports-from-admin-cidrs": {"adminCidrs": plan["policy"]["settings"]["adminCidrs"]},
        CAPACITY_RULE: {"capacity": plan.get("capacity") or {}},
    }, indent=1) + "\n")
    return paths


def main(argv: list[str]) -> int:
    # One run and its report, then the process exits: the cyclic collector's passes over the run's objects (a
    # second at the end of a production run) would free nothing the exit does not. Restored for in-process callers.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _main(argv)
    finally:
        if collecting:
            gc.enable()


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__)
    parser.add_argument("stack", nargs="?", default="production")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write <stack>.json/.svg")
    parser.add_argument("--quiet", action="store_true", help="write the files, print only their paths")
    parser.add_argument("--check", action="store_true", help="exit 3 when the policy pack finds a violation")
    parser.add_argument("--no-cache", action="store_true",
                        help="run the program even when build/run-cache holds its run of this tree and config")
    args = parser.parse_args(argv)
    if args.stack not in stacks():
        print(f"no stack file Pulumi.{args.stack}.yaml (stacks: {', '.join(stacks())})", file=sys.stderr)
        return 2
    own = None if args.no_cache else PlanRuns(RUN_CACHE, ROOT)
    with recorded_runs(own) as cache:
        if cache is own and own is not None:
            own.prune()  # only this tree's runs are ever read again
        try:
            # Whether the program's run is read back (the plan made from it, or the run itself, recorded before).
            config = mockrun.stack_config(args.stack)
            reused = cache is not None and any(cache.holds(*config, args.stack, kind) for kind in ("plan", ""))
            plan = plan_stack(args.stack)
        except (ConfigError, StackFileError) as exc:
            print(exc, file=sys.stderr)
            return 1
    if reused and not args.quiet:
        print("(the program's run recorded for this tree and config, read back; --no-cache runs it again)",
              file=sys.stderr)
    paths = write(plan, args.out)
    if not args.quiet:
        print(report.render(plan))
        print()
    print("Wrote " + ", ".join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in paths.values()))
    violations = plan["policy"]["violations"]
    if args.check and violations:
        for v in violations:
            print(f"policy violation [{v['rule']}] {v['urn']}: {v['message']}", file=sys.stderr)
        return 3
    return 0


def exit_process(code: int) -> NoReturn:
    """Exit without the interpreter's last cyclic collection. Python runs one at exit even with the collector off,
    and after a run it walks and frees hundreds of thousands of the SDK's objects (1 to 1.5 s of a production
    plan) that the process's end releases anyway; frozen objects are left out of it. atexit handlers and the
    flushing of open files still happen."""
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    exit_process(main(sys.argv[1:]))
