"""Recorded mock runs kept on disk, so the test suite runs each distinct config once.

Many tests need the same whole-program run (the production stack, a variant of it) and the suite's
worker processes cannot share memory. `RunCache` stores each successful run, pickled, under a key made
of everything a run depends on: the exact config (values, which keys are secret, the stack name), the
content of every source file the program could read, the installed packages, the Python version and
the environment (providers read AWS_REGION and the like). Change any of them and the key changes: an
entry is never stale, only unused. A per-key file lock makes a second process wait for the first one's
run instead of repeating it; entries are written to a temporary file and renamed, so a reader never
sees half of one. A run that raises is never stored (it runs again, and raises again).

Each hit is unpickled afresh, so a test that changes the run it got cannot affect another test.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import re
import shutil
import sys
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

# Not read by the program: git's store and caches wherever they are; the tests themselves, build output and the
# virtualenv at the top only (a `build` or `tests` folder of a component would be the program's own files).
SKIPPED_DIRS = frozenset({".git", ".pytest_cache", "__pycache__", "node_modules"})
SKIPPED_TOP_DIRS = frozenset({".venv", "build", "tests"})
# Environment variables that differ between the processes of one test session but never reach a run: pytest's,
# where tools/mockrun.py logs and caches runs, CI's switch for the node tools' tests (.ci/run), and what make adds for the planner processes it starts.
# (the Makefile's variables given on make's command line, such as `make drift STACK=staging`, are skipped too: see
# make_variables).
SKIPPED_ENV_PREFIXES = ("PYTEST_", "ADPLATFORM_RUN_LOG", "ADPLATFORM_RUN_CACHE", "ADPLATFORM_REQUIRE_NODE_TOOLS",
                        "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMINAL")
# The shell's bookkeeping, the terminal size pytest sets, and PYTHONDONTWRITEBYTECODE, which the Makefile unexports
# for the planner processes it starts (`make drift` from a test): none reaches a run.
SKIPPED_ENV = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "PYTHONDONTWRITEBYTECODE"})


def tree_digest(root: Path) -> str:
    """Digest of every file under `root` the program could read (paths and contents)."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        skipped = SKIPPED_DIRS | (SKIPPED_TOP_DIRS if directory == str(root) else set())
        dirs[:] = sorted(d for d in dirs if d not in skipped)
        for name in sorted(files):
            path = Path(directory, name)
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# The Makefile's own variables (STACK, PULUMI, PLAN_ARGS, ...): given on make's command line, they shape make's
# commands, never a run (the stack name is part of the config's key). Any other variable given there (`make plan
# AWS_REGION=...`) reaches the program's environment like an exported one, and the providers read some
# (providers/cloud.py).
MAKEFILE = Path(__file__).resolve().parent.parent / "Makefile"
MAKEFILE_VARIABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[?:+!]?=|\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]", re.M)


def makefile_variables(makefile: Path = MAKEFILE) -> set[str]:
    """The variables the Makefile assigns or uses."""
    try:
        return {name for pair in MAKEFILE_VARIABLE.findall(makefile.read_text()) for name in pair if name}
    except OSError:
        return set()


def make_variables() -> set[str]:
    """The Makefile's variables given on the command line of the make that started this process (make exports
    them, and lists them after `--` in MAKEFLAGS)."""
    given = {word.split("=", 1)[0] for word in os.environ.get("MAKEFLAGS", "").partition(" -- ")[2].split()
             if "=" in word}
    return given & makefile_variables()


def runtime_digest() -> str:
    """Digest of what runs the program besides our tree: Python, the installed packages (the Pulumi SDKs, and the
    unpinned ones the program also calls, such as PyYAML, whose output reaches resources), the environment."""
    sdks = sorted((d.metadata["Name"] or "", d.version) for d in metadata.distributions())
    skipped = SKIPPED_ENV | make_variables()
    env = sorted((k, v) for k, v in os.environ.items() if not k.startswith(SKIPPED_ENV_PREFIXES) and k not in skipped)
    return hashlib.sha256(json.dumps([sys.version, sdks, env]).encode()).hexdigest()


def config_key(values: dict[str, Any], secret_keys: set[str], stack: str) -> str | None:
    """The config's digest; None when it is not plain data (then it is not cached)."""
    try:
        text = json.dumps([stack, sorted(secret_keys), values], sort_keys=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


class RunCache:
    """Runs stored under `directory/<source digest>/<config digest>.pickle`."""

    def __init__(self, directory: Path, root: Path):
        self.directory = directory
        self.root = root
        self.executed = 0  # entries this process really made, runs or plans (the rest came from disk)

    @cached_property
    def generation(self) -> Path:
        """This tree's directory; computed once per process (a session does not edit its own sources)."""
        return self.directory / hashlib.sha256(f"{tree_digest(self.root)}:{runtime_digest()}".encode()).hexdigest()[:24]

    def prune(self) -> None:
        """Drop entries of other trees (call once per session, before any worker reads)."""
        if self.directory.is_dir():
            for old in self.directory.iterdir():
                if old != self.generation:
                    shutil.rmtree(old, ignore_errors=True)

    def key(self, values: dict[str, Any], secret_keys: set[str], stack: str) -> str | None:
        return config_key(values, secret_keys, stack)

    def holds(self, values: dict[str, Any], secret_keys: set[str], stack: str, kind: str = "") -> bool:
        """Whether an entry of this config (and kind) is stored: recorded() would read it back."""
        key = self.key(values, secret_keys, stack)
        return key is not None and (self.generation / f"{key}{f'.{kind}' if kind else ''}.pickle").exists()

    def recorded(self, values: dict[str, Any], secret_keys: set[str], stack: str,
                 execute: Callable[[dict[str, Any], set[str], str], Any], kind: str = "") -> Any:
        """The stored run of this config, or `execute`'s run of it, stored for the next caller. `kind` names
        something else made from the config's run alone (the tests' "plan": tools.plan.model.build of it), stored
        beside the run under the same key."""
        key = self.key(values, secret_keys, stack)
        if key is None:
            self.executed += 1
            return execute(values, secret_keys, stack)
        key += f".{kind}" if kind else ""
        entry = self.generation / f"{key}.pickle"
        try:
            self.generation.mkdir(parents=True, exist_ok=True)
            lock = open(self.generation / f"{key}.lock", "w")
        except OSError:  # the directory went away (another process's --cache-clear): run uncached
            self.executed += 1
            return execute(values, secret_keys, stack)
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if entry.exists():
                return pickle.loads(entry.read_bytes())
            self.executed += 1
            result = execute(values, secret_keys, stack)
            if self.storable(result):
                self._store(entry, result)
            return result

    def storable(self, result: Any) -> bool:
        """Whether a run may be written to disk (a subclass may refuse some; they then run each time)."""
        return True

    @staticmethod
    def _store(entry: Path, result: Any) -> None:
        partial = entry.with_suffix(f".{os.getpid()}.tmp")
        try:
            partial.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(partial, entry)
        except OSError:
            partial.unlink(missing_ok=True)  # not stored: the next caller runs it again
