"""`python -m tools.plan.scale [SERVERS ...]`: how long the plan of a large cluster takes (issue 22: 500 servers in
under a minute, the cost linear in servers).

The production stack file with general-role pools added (`bulk1`, `bulk2`, ... of at most MAX_POOL servers each)
until it has each number of servers given; each is run (never read from a cache), built, written and reported in
this process, and timed. The stack as it is comes first: it also pays the imports, so the sizes after it compare.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from config.model import MAX_POOL_NODES as MAX_POOL
from tools.mockrun import execute, stack_config
from tools.plan import model, report
from tools.plan.__main__ import write
from tools.plan.limits import config_of

STACK = "production"


def bulk_pools(servers: int) -> list[dict[str, Any]]:
    """General-role pools of `servers` servers in all, none over MAX_POOL."""
    count = -(-servers // MAX_POOL)
    return [{"name": f"bulk{i + 1}", "role": "general", "count": servers // count + (i < servers % count)}
            for i in range(count)]


def grown(servers: int) -> tuple[dict[str, Any], set[str]]:
    """The stack file's config with pools added to reach `servers` servers (its own count when it has more)."""
    values, secret = stack_config(STACK)
    cluster = config_of(STACK, values, secret).cluster
    own = cluster.control_plane.count + sum(pool.count for pool in cluster.pools)
    extra = bulk_pools(max(servers - own, 0))
    stated = values["adplatform:cluster"]
    # Room for every node (config/rules.py): a /24 of pods each (a /14 holds 1024), an address each in the subnet.
    room = {"podCidr": "10.240.0.0/14", "subnetCidr": "10.0.0.0/22"} if extra else {}
    return {**values, "adplatform:cluster": {**stated, **room, "pools": [*stated.get("pools", []), *extra]}}, secret


def measure(servers: int) -> str:
    values, secret = grown(servers)
    started = time.perf_counter()
    run = execute(values, secret, STACK)
    ran = time.perf_counter()
    plan = model.build(run)
    built = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write(plan, Path(out))
        report.render(plan)
    done = time.perf_counter()
    return (f"{len(plan['servers'])} servers, {len(run.resources)} resources, "
            f"{sum(len(r.dependencies) for r in run.resources)} dependencies: run {ran - started:.1f} s, "
            f"build {built - ran:.1f} s, write and report {done - built:.1f} s, total {done - started:.1f} s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan.scale", description=__doc__)
    parser.add_argument("servers", nargs="*", type=int, default=[100, 250, 500])
    args = parser.parse_args(argv)
    gc.disable()  # as `make plan` runs (tools/plan/__main__.py)
    for servers in [0, *args.servers]:
        print(f"{STACK} as it is: " if servers == 0 else "", measure(servers), sep="", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
