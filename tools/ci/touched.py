"""`python -m tools.ci.touched BASE [--json]`: the stacks a change (BASE...HEAD) touches.

A change to the program (code, dependencies, the project file, the policy pack) touches every stack;
a change to `Pulumi.<stack>.yaml` touches that stack. The GitLab pipeline expresses the same rule
with `rules:changes` (its path list must equal CODE_PATHS; a test checks it).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys

from tools.mockrun import ROOT, stacks

# Paths whose change can alter every stack's deployment (gitlab-ci glob syntax).
CODE_PATHS = (
    "Pulumi.yaml",
    "__main__.py",
    "program.py",
    "requirements.txt",
    "config/**/*",
    "providers/**/*",
    "components/**/*",
    "policy/**/*",
)


def _matches(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern) or (pattern.endswith("/**/*") and path.startswith(pattern[:-4]))


def touched(changed: list[str], all_stacks: list[str]) -> list[str]:
    if any(_matches(path, pattern) for path in changed for pattern in CODE_PATHS):
        return list(all_stacks)
    return [s for s in all_stacks if f"Pulumi.{s}.yaml" in changed]


def changed_files(base: str) -> list[str]:
    result = subprocess.run(["git", "-C", str(ROOT), "diff", "--name-only", f"{base}...HEAD"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"touched: cannot diff against {base!r}: {result.stderr.strip()}")
    return [line for line in result.stdout.splitlines() if line]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.ci.touched", description=__doc__)
    parser.add_argument("base", help="the merge base or target branch, e.g. origin/main")
    parser.add_argument("--json", action="store_true", help="print a JSON list (for a CI matrix)")
    args = parser.parse_args(argv)
    found = touched(changed_files(args.base), stacks())
    print(json.dumps(found) if args.json else "\n".join(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
