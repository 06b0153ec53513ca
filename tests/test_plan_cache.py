"""`make plan` reads back the run recorded for an unchanged tree and config (build/run-cache, issue 22)."""

from __future__ import annotations

import copy
import gc
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.runs import stack_plan
from tools import mockrun, runcache
from tools.mockrun import ROOT, Run, Secret
from tools.plan import __main__ as plan_cli


@pytest.fixture
def plan_runs(production, tmp_path, monkeypatch) -> list[str]:
    """The plan's own cache in tmp_path (not the tests' shared one), and each run it executes recorded: the
    executed run is the session's production run, so no program runs here."""
    executed: list[str] = []

    def execute(values, secret_keys, stack="test"):
        executed.append(stack)
        return production

    monkeypatch.setattr(mockrun, "cache", None)
    monkeypatch.setattr(mockrun, "execute", execute)
    monkeypatch.setattr(plan_cli, "RUN_CACHE", tmp_path / "runs")
    return executed


@pytest.fixture(scope="module")
def production_plan() -> dict:
    return stack_plan("production")  # module-scoped: read before plan_runs turns the tests' run cache off


@pytest.fixture
def plans_recorded(production, production_plan, monkeypatch) -> None:
    """The plan of the session's production run read back from the run cache (tests/runs.py stack_plan, equal to
    model.build of that run: tests/test_mockrun.py) instead of built again: for the tests that count the program's
    runs and look for the files written, not at how a plan is made (the repeated-plan test builds both of its own)."""
    def build(run: Run) -> dict:
        assert run is production, "only the session's production run is planned here"
        return copy.deepcopy(production_plan)  # a fresh copy, as build() returns

    monkeypatch.setattr(plan_cli.model, "build", build)


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_a_repeated_plan_reads_the_recorded_run_and_writes_the_same(plan_runs, tmp_path, capsys):
    assert plan_cli.main(["production", "--out", str(tmp_path / "first")]) == 0
    first = capsys.readouterr()
    assert plan_cli.main(["production", "--out", str(tmp_path / "second")]) == 0
    second = capsys.readouterr()
    assert plan_runs == ["production"], "the second plan ran the program again"
    assert _files(tmp_path / "first") == _files(tmp_path / "second")
    assert first.out.replace(str(tmp_path / "first"), str(tmp_path / "second")) == second.out
    assert "--no-cache" in second.err and "--no-cache" not in first.err, "a read-back run is said on stderr"
    assert mockrun.cache is None, "the plan's cache is not left behind for in-process callers"


def test_a_repeated_plan_reads_back_the_plan_without_building_it(plan_runs, tmp_path, monkeypatch):
    """The plan is kept beside the run: the second plan neither runs the program nor builds (policy, cost, limits)."""
    built = []
    build = plan_cli.model.build
    monkeypatch.setattr(plan_cli.model, "build", lambda run: built.append(run.stack) or build(run))
    for out in ("first", "second"):
        assert plan_cli.main(["production", "--out", str(tmp_path / out), "--quiet"]) == 0
    assert plan_runs == built == ["production"]
    assert _files(tmp_path / "first") == _files(tmp_path / "second")


def test_a_plan_holding_a_credential_from_the_environment_is_not_written_down(monkeypatch, tmp_path):
    runs = plan_cli.PlanRuns(tmp_path, ROOT)
    monkeypatch.setenv("HCLOUD_TOKEN", "real-token-0123456789")
    assert not runs.storable({"resources": [{"inputs": {"note": "prefix real-token-0123456789"}}]})
    assert runs.storable({"resources": [{"inputs": {"note": "offline-placeholder"}}]})


def test_no_cache_runs_the_program(plan_runs, plans_recorded, tmp_path):
    assert plan_cli.main(["production", "--out", str(tmp_path), "--quiet"]) == 0
    assert plan_cli.main(["production", "--out", str(tmp_path), "--quiet", "--no-cache"]) == 0
    assert plan_runs == ["production", "production"]


def test_a_plan_without_a_cache_directory_still_plans(plan_runs, plans_recorded, tmp_path):
    (tmp_path / "runs").write_text("not a directory")  # e.g. unwritable: the plan runs uncached
    assert plan_cli.main(["production", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert plan_cli.main(["production", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert plan_runs == ["production", "production"]
    assert (tmp_path / "out" / "production.json").is_file()


def _run_with_secret(value: str) -> Run:
    resource = SimpleNamespace(inputs={"stringData": {"token": Secret(value)}, "plain": "x" * 20})
    return Run("test", [resource], {"kubeconfig": value}, set())


def test_a_run_holding_a_credential_from_the_environment_is_not_written_down(monkeypatch, tmp_path):
    """HCLOUD_TOKEN reaches the cloud controller's Secret when a stack has no hcloud:token: a real credential,
    never stored in build/run-cache. Other environment values (paths, the shell) do not count."""
    runs = plan_cli.PlanRuns(tmp_path, ROOT)
    monkeypatch.setenv("HCLOUD_TOKEN", "real-token-0123456789")
    monkeypatch.setenv("SHELL", "/bin/bash")
    assert not runs.storable(_run_with_secret("prefix real-token-0123456789 suffix"))
    assert runs.storable(_run_with_secret("#!/bin/bash offline-placeholder"))
    secret_output = Run("test", [], {"kubeconfig": "real-token-0123456789"}, {"kubeconfig"})
    assert not runs.storable(secret_output)


def test_refused_runs_execute_each_time(tmp_path):
    class Refusing(runcache.RunCache):
        def storable(self, result):
            return False

    calls = []
    cache = Refusing(tmp_path, ROOT)
    for _ in range(2):
        cache.recorded({"k": 1}, set(), "s", lambda *args: calls.append(args) or "run")
    assert len(calls) == 2 and not list(cache.generation.glob("*.pickle"))


def test_the_run_cache_key_covers_every_installed_package(monkeypatch):
    """The program's output goes through packages no requirement pins (PyYAML renders the K3s config): upgrading
    one must not read back a run recorded with the old one."""
    def installed(yaml_version):
        return lambda: [SimpleNamespace(metadata={"Name": "pulumi"}, version="3.272.0"),
                        SimpleNamespace(metadata={"Name": "PyYAML"}, version=yaml_version)]

    monkeypatch.setattr(runcache.metadata, "distributions", installed("6.0.2"))
    before = runcache.runtime_digest()
    monkeypatch.setattr(runcache.metadata, "distributions", installed("6.0.3"))
    assert runcache.runtime_digest() != before


def test_the_planner_exits_without_the_last_collection_and_keeps_its_exit_code():
    """The interpreter's collection at exit walked the whole run's objects (1 to 1.5 s of `make plan`): the
    planner freezes them first, so the exit leaves them to the process's end."""
    # tests/conftest.py freezes each worker's heap after collection: thawed first, so the freeze seen is exit_process's.
    frozen = gc.get_freeze_count() > 0
    gc.unfreeze()
    try:
        with pytest.raises(SystemExit) as exited:
            plan_cli.exit_process(3)
        assert exited.value.code == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        if frozen:
            gc.freeze()


def test_the_planner_process_still_exits_with_main_s_code():
    done = subprocess.run([sys.executable, "-m", "tools.plan", "nope"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "no stack file Pulumi.nope.yaml" in done.stderr
