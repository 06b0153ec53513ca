"""Shared fixtures: whole-program runs under Pulumi mocks, cached per stack.

Every run goes through tools/runcache.py: a config the session (or an earlier session on the same
sources) already ran is read back from .pytest_cache instead of run again, also across xdist workers.
`pytest --cache-clear` starts from nothing.

The helpers live in tests/runs.py (import them from `tests.runs`); the names below are re-exported for tests
that still import them from here (tests/ is a package: this file is loaded once, as `tests.conftest`)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Bytecode on even where the environment turns it off (PYTHONDONTWRITEBYTECODE), as `make test` has it: pytest keeps
# each test module with its asserts rewritten in tests/__pycache__ only when it may write bytecode, and otherwise
# every worker rewrites all of them again at collection (6 s a process); the program's modules likewise.
sys.dont_write_bytecode = False

from tools import mockrun  # noqa: E402
from tools.mockrun import Run  # noqa: E402
from tools.runcache import RunCache  # noqa: E402
from tests import balance, validators  # noqa: E402
from tests.runs import (  # noqa: E402,F401 (re-exported)
    BACKUP_CREDENTIALS, LOWER_LAYERS, SECRET_KEYS, UP_TO_K3S, UP_TO_PLATFORM, UP_TO_SERVICES, VALID_KEY, base_raw,
    k3s_config, lower_layers, node_labels, nodes_without_topology, run_raw, script_param, stack_run)


def pytest_configure(config: pytest.Config) -> None:
    global timings
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider: every run executes
    if cache is None:
        return
    validators.shellcheck_clean = cache.mkdir("adplatform-shellcheck-clean")
    mockrun.cache = RunCache(cache.mkdir("adplatform-runs"), ROOT)
    os.environ[mockrun.RUN_CACHE] = str(mockrun.cache.directory)  # for the planner processes tests start
    if not hasattr(config, "workerinput"):  # the main process, before any xdist worker starts
        mockrun.cache.prune()
        timings = balance.Timings()


# --- the cyclic garbage collector (issue 22) -------------------------------------------------------------------------
# After collection a worker holds what it keeps to its end (modules, the SDKs, the collected tests): frozen, the
# collector's passes leave them out. A test then allocates millions of short-lived objects (runs read back from the
# cache, parsed YAML, plans), and at the default threshold (700) the collector walks the young generation thousands of
# times a session. Measured cold on test_k3s.py and test_data_drills.py: 4.2 s of collector CPU -> 1.7 s. Only when
# the collector runs changes, never what it frees (a run turns it off itself: tools/mockrun.py).
YOUNG_THRESHOLD = (50_000, 20, 10)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*YOUNG_THRESHOLD)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """No last walk of the heap at the process's exit (a second a worker, over its runs): freed by the exit anyway;
    atexit handlers and file flushing still run (as tools/plan/__main__.py exit_process)."""
    gc.freeze()


# --- both workers busy to the end (tests/balance.py) ----------------------------------------------------------

timings: balance.Timings | None = None  # the main process's (None in the workers and without pytest's cache)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """loadfile, the longest files (by the last sessions' record) first."""
    if config.getoption("dist") == "loadfile" and timings is not None:
        return balance.make_scheduler(config, log, config.cache.get(balance.RECORD, {}))
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if timings is not None:
        timings.add(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if timings is not None and timings.seconds:
        session.config.cache.set(balance.RECORD, timings.merged(session.config.cache.get(balance.RECORD, {})))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if timings is not None and timings.busy:
        terminalreporter.write_line("xdist workers: " + "; ".join(timings.summary()))


@pytest.fixture(scope="session")
def production() -> Run:
    return stack_run("production")


@pytest.fixture(scope="session")
def staging() -> Run:
    return stack_run("staging")
