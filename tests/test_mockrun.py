"""The mock harness itself: its fast cycle check answers like Pulumi's, and the run cache never serves
a run that the same config and sources would not produce."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import json
import multiprocessing
import pickle
import sys
import time
import typing
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime import _depends_on, resource_cycle_breaker, rpc
from pulumi.runtime.proto import resource_pb2

from config import ConfigError
from tests.conftest import base_raw, run_raw
from tools import mockrun, runcache
from tools.runcache import RunCache, config_key


class Node:
    """Stands in for a pulumi.Resource: the cycle breaker only stores attributes on it."""


def test_cycle_check_refuses_exactly_the_edges_that_close_a_cycle():
    a, b, c, d = Node(), Node(), Node(), Node()
    declare = resource_cycle_breaker.declare_dependency
    assert declare(a, b) and declare(b, c) and declare(a, c) and declare(d, a)
    assert not declare(c, a), "c -> a closes a -> b -> c"
    assert not declare(c, d), "c -> d closes d -> a -> b -> c"
    assert not declare(a, a)
    assert declare(d, c), "a second path is no cycle"
    assert resource_cycle_breaker._deps(a) == {b, c}, "the SDK's own record of the edges is kept"


def test_cycle_check_work_is_linear_in_the_edges(monkeypatch):
    """Each resource depends on every earlier one, as a late layer depends on a component's children.
    Pulumi's check walks all earlier resources for every edge (quadratic); ours only the few resources
    that already depend on the new one."""
    visits = 0

    def counted(function):
        def wrapper(resource):
            nonlocal visits
            visits += 1
            return function(resource)
        return wrapper

    monkeypatch.setattr(resource_cycle_breaker, "_deps", counted(resource_cycle_breaker._deps))
    monkeypatch.setattr(mockrun, "_dependents", counted(mockrun._dependents))

    def register(n: int) -> int:
        nonlocal visits
        visits, earlier = 0, []
        for _ in range(n):
            new = Node()
            for dep in earlier[-20:]:
                assert resource_cycle_breaker.declare_dependency(new, dep)
            earlier.append(new)
        return visits

    small, large = register(500), register(1000)
    assert large < 2.1 * small, f"{small} visits for 500 resources, {large} for 1000"


def test_garbage_collection_is_back_on_after_a_failed_run():
    with pytest.raises(ConfigError):
        mockrun.execute({"adplatform:provider": "nowhere"}, set())
    assert gc.isenabled()


def _acyclic_samples() -> list:
    unknown = pulumi.output.UNKNOWN
    shared = [1, "x"]
    return [unknown, None, 3, "text", [], {}, [1, [2, [3, unknown]]], {"a": {"b": [unknown]}},
            {"a": [shared, shared], "b": {"c": shared}}, (unknown,), {"k": (unknown,)}, Node(), [Node(), unknown],
            {"a": "x", "b": [1, 2.0, True, None, {"c": unknown}]}, {"a": "x", "b": [1, 2.0, True, None, {"c": "y"}]}]


def _unknown_samples() -> list:
    looped: dict = {"a": 1}
    looped["self"] = looped  # a value that contains itself
    return [*_acyclic_samples(), looped, [looped, {"d": pulumi.output.UNKNOWN}]]


def test_unknown_check_answers_like_the_sdks():
    for value in _unknown_samples():
        assert mockrun._contains_unknowns(value) == mockrun._sdk_contains_unknowns(value), value


def test_unknown_check_leaves_no_garbage_for_the_cyclic_collector():
    """The SDK asks at every Output; its check left each call's closure for the collector (most of a run's
    garbage, a fifth of a run's time)."""
    assert rpc.contains_unknowns is mockrun._contains_unknowns, "the harness replaces the SDK's check"
    collecting = gc.isenabled()
    gc.disable()
    # Everything the process holds so far (the worker's runs: millions of objects), its garbage included, set aside
    # for the collector: it then walks only what is made below, so the count is this check's garbage alone and each
    # collection costs milliseconds instead of seconds (issue 22).
    gc.freeze()
    try:
        # Only the check itself runs here: anything else (an Output's futures on whatever loop the earlier tests
        # left) may leave its own cycles, which made this test depend on the order of the tests before it.
        samples = _acyclic_samples()
        gc.collect()
        for _ in range(100):
            for value in samples:
                rpc.contains_unknowns(value)
        assert gc.collect() == 0
    finally:
        gc.unfreeze()
        gc.freeze()  # as tests/conftest.py left the worker: what it holds set aside
        if collecting:
            gc.enable()


def _resource(cls: type = pulumi.CustomResource, urn: str | None = None, children: tuple = ()) -> Any:
    """A Resource as the dependency code sees it (its urn, a component's children), never registered."""
    res = object.__new__(cls)
    res._type, res._name, res._remote = "test:index:Thing", urn or "unnamed", False
    res.__dict__["urn"] = pulumi.Output.from_input(f"urn:test::{urn}" if urn else "")  # where Resource keeps it
    res._childResources = set(children)
    return res


def _awaited(awaitable: Any) -> Any:
    """Run on a loop of its own; the Outputs made meanwhile are forgotten (a later program run waits for
    every Output left in SETTINGS.outputs)."""
    from pulumi.runtime.settings import SETTINGS
    before = set(SETTINGS.outputs)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(awaitable)
    finally:
        loop.close()
        SETTINGS.outputs.intersection_update(before)


def test_depends_on_resolves_like_the_sdks():
    """Plain Resources are taken without an Output each; anything else (an Output of a Resource and its own
    resources, None, an Output of the whole list) goes the SDK's way, to the same set in the same order."""
    async def both(make):
        return (await mockrun._sdk_resolve_depends_on(make()), await mockrun._resolve_depends_on(make()))

    async def cases():
        a, b, c, d = (_resource(urn=n) for n in "abcd")
        through = pulumi.Output(resources={d}, future=_value(c), is_known=_value(True))
        results = []
        for make in (lambda: [a, b, a], lambda: [a, through, None, b], lambda: pulumi.Output.from_input([b, a]),
                     lambda: [], lambda: None):
            results.append(await both(make))
        return results

    for sdk, ours in _awaited(cases()):
        assert ours == sdk and list(ours) == list(sdk)


async def _value(value: Any) -> Any:
    return value


def test_depends_on_makes_no_output_per_listed_resource(monkeypatch):
    """22,000 Resources are listed in depends_on in a production run; an Output for each was a tenth of it."""
    made = []
    monkeypatch.setattr(pulumi.Output, "_track", lambda self: made.append(self))

    async def resolve():
        return await _depends_on._resolve_depends_on([_resource(urn=str(n)) for n in range(50)])

    assert len(_awaited(resolve())) == 50
    assert len(made) < 50 + 5, f"{len(made)} Outputs for 50 listed resources (50 of them their urns)"


def test_the_monitor_records_the_inputs_it_deserialized_once(monkeypatch):
    """One deserialization per registered resource serves the mocks and the record; a mock changing its
    arguments does not change the record."""
    class Mutating(mockrun.OfflineMocks):
        def new_resource(self, args):
            args.inputs["tags"].append("changed by the mock")
            return super().new_resource(args)

    calls = []
    deserialize = rpc.deserialize_properties
    monkeypatch.setattr(rpc, "deserialize_properties", lambda *a, **k: calls.append(a) or deserialize(*a, **k))
    monitor = mockrun.RecordingMonitor(Mutating())
    async def serialized():
        return await rpc.serialize_properties({"tags": ["a"], "size": 3, "labels": {"app": "x"}}, {})

    inputs = _awaited(serialized())
    calls.clear()
    monitor.RegisterResource(resource_pb2.RegisterResourceRequest(type="test:index:Thing", name="thing", object=inputs))
    assert [args[0] for args in calls].count(inputs) == 1, "the request's inputs deserialized more than once"
    assert monitor.recorded[0].inputs == {"tags": ["a"], "size": 3, "labels": {"app": "x"}}


def test_dependency_expansion_answers_like_the_sdks():
    """A component stands for its children (recursively); the same URNs in the same order, and a cycle is
    refused by both."""
    async def expand(add, chain):
        deps: dict = {}
        for dep in chain:
            await add(deps, dep, _resource(urn="new"))
        return list(deps.items())

    async def cases():
        leaf, other = _resource(urn="leaf"), _resource(urn="other")
        inner = _resource(pulumi.ComponentResource, "inner", (leaf,))
        outer = _resource(pulumi.ComponentResource, "outer", (inner, other))
        unregistered = _resource()  # no urn yet: left out
        chain = [outer, leaf, unregistered]
        return await expand(rpc._add_dependency, chain), await expand(mockrun._sdk_add_dependency, chain)

    ours, sdk = _awaited(cases())
    assert rpc._add_dependency is mockrun._add_dependency
    assert [urn for urn, _ in ours] == [urn for urn, _ in sdk]
    assert sorted(urn for urn, _ in ours) == ["urn:test::leaf", "urn:test::other"]

    async def cycle(add):
        first, second = _resource(urn="first"), _resource(urn="second")
        await add({}, second, first)
        await add({}, first, second)

    for add in (rpc._add_dependency, mockrun._sdk_add_dependency):
        with pytest.raises(RuntimeError, match="circular dependency"):
            _awaited(cycle(add))


def test_dependency_expansion_of_a_list_answers_like_the_sdks():
    """_expand_dependencies in one coroutine: each dependency walked and its URNs awaited before the next, so the
    same URNs in the same order; an unknown URN left out; a cycle and a non-Resource refused by both."""
    async def expand(function, make):
        try:
            return list((await function(*make())).items())
        except Exception as error:  # noqa: BLE001 (the same error is the answer to compare)
            return type(error).__name__, str(error)

    def cases():
        leaf, other, third = _resource(urn="leaf"), _resource(urn="other"), _resource(urn="third")
        unknown = _resource(urn="unknown")
        unknown.__dict__["urn"] = pulumi.Output(set(), _value(pulumi.output.UNKNOWN), _value(True))
        inner = _resource(pulumi.ComponentResource, "inner", (leaf,))
        outer = _resource(pulumi.ComponentResource, "outer", (inner, other))
        new = _resource(urn="new")
        cyclic = _resource(urn="cyclic")
        return [lambda: ([outer, third, leaf, unknown], new), lambda: ([], new), lambda: ({third, other}, None),
                lambda: ([third, "not a resource"], new),
                lambda: (rpc.declare_dependency(cyclic, new) and [cyclic], new)]

    async def both():
        answers = []
        for make in cases():
            answers.append((await expand(mockrun._sdk_expand_dependencies, make), await expand(rpc._expand_dependencies, make)))
        return answers

    assert rpc._expand_dependencies is mockrun._expand_dependencies
    answers = _awaited(both())
    for sdk, ours in answers:
        assert ours == sdk
    assert sorted(urn for urn, _ in answers[0][1]) == ["urn:test::leaf", "urn:test::other", "urn:test::third"]
    assert answers[3][1][0] == "TypeError" and answers[4][1][0] == "RuntimeError"


def test_resource_outputs_resolve_like_the_sdks():
    """A registered resource's properties (one future each instead of four and a Task): the same properties get
    Outputs (urn always, id for a custom resource set elsewhere), and each resolves to the same value, known and
    secret flags and dependencies (the resource added), an unknown value made unknown, a failure raised."""
    dep = _resource(urn="dep")
    error = RuntimeError("the registration failed")
    resolutions = [("value", True, False, {dep}, None), ({"a": [1, None]}, True, True, None, None),
                   (None, False, False, set(), None), ([pulumi.output.UNKNOWN], True, False, None, None),
                   (None, False, False, None, error)]

    async def outcome(transfer, custom, resolution):
        res = _resource(urn="res")
        resolvers = transfer(res, {"urn": 1, "id": 2, "size": 3, "labels": 4}, custom)
        names = sorted(resolvers)
        assert sorted(name for name in names if isinstance(res.__dict__.get(name), pulumi.Output)) == names
        for name in names:
            resolvers[name](*resolution)
        answers = []
        for name in names:
            try:
                data = await res.__dict__[name]._data
                answers.append((data.value, data.is_known, data.is_secret, data.resources == {res} | (resolution[3] or set())))
            except RuntimeError as raised:
                answers.append(str(raised))
        return names, answers

    async def both():
        return [(await outcome(mockrun._sdk_transfer_properties, custom, resolution),
                 await outcome(rpc.transfer_properties, custom, resolution))
                for custom in (True, False) for resolution in resolutions]

    assert rpc.transfer_properties is mockrun._transfer_properties
    answers = _awaited(both())
    for sdk, ours in answers:
        assert ours == sdk
    assert answers[0][1][0] == ["labels", "size"] and answers[len(resolutions)][1][0] == ["id", "labels", "size"]
    assert answers[3][1][1][0][1] is False, "a value holding an unknown is not known"
    assert answers[4][1][1][0] == "the registration failed"


def test_type_unwrapping_answers_like_the_sdks():
    """Remembered per type object: Union[a, b] equals Union[b, a], yet the SDK answers with the first."""
    samples = [str, pulumi.Input[str], typing.Optional[pulumi.Input[str]], pulumi.Output[int],
               pulumi.Input[typing.Sequence[pulumi.Input[str]]], typing.Union[int, str], typing.Union[str, int],
               typing.Optional[pulumi.Input[typing.Mapping[str, pulumi.Input[str]]]], dict[str, typing.Any]]
    for _ in range(2):  # the second time from what was remembered
        for sample in samples:
            assert mockrun._unwrap_type(sample) == mockrun._sdk_unwrap_type(sample), sample


def test_awaitable_check_answers_like_inspects():
    async def coroutine():
        return None

    async def cases():
        running = coroutine()
        samples = ["text", 3, 2.5, True, None, [], {}, Node(), running, asyncio.get_running_loop().create_future(),
                   pulumi.Output.from_input("x")]
        answers = [(mockrun._isawaitable(v), inspect.isawaitable(v)) for v in samples]
        await running
        return answers

    assert all(ours == sdk for ours, sdk in _awaited(cases()))
    assert pulumi.output.isawaitable is mockrun._isawaitable


def test_outputs_are_tracked_until_done_as_the_sdk_tracks_them():
    """A finished Output leaves SETTINGS.outputs; a failed one stays for the end of the program to raise."""
    from pulumi.runtime.settings import SETTINGS

    async def tracked() -> tuple[bool, bool, bool]:
        fine = pulumi.Output.from_input("fine")
        pending = pulumi.Output(resources=set(), future=asyncio.get_running_loop().create_future(), is_known=_done(True))
        failed = pulumi.Output(resources=set(), future=_fail(), is_known=_done(True))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        state = fine._data in SETTINGS.outputs, pending._data in SETTINGS.outputs, failed._data in SETTINGS.outputs
        pending._data.cancel()
        await asyncio.sleep(0)
        return state

    assert pulumi.Output._track is mockrun._track
    assert _awaited(tracked()) == (False, True, True)


def test_a_finished_output_is_never_tracked():
    """An Output made of a value already there is not added to SETTINGS.outputs (the SDK adds it and removes it on the
    loop's next turn: nothing for the end of the program to wait for); a failed one is, so its error is raised."""
    from pulumi.runtime.settings import SETTINGS

    async def tracked() -> tuple[bool, bool]:
        fine = pulumi.Output.from_input("fine")
        failed_data = asyncio.get_running_loop().create_future()
        failed_data.set_exception(ValueError("failed"))
        failed = pulumi.Output._from_data(failed_data)
        return fine._data in SETTINGS.outputs, failed._data in SETTINGS.outputs  # before the loop's next turn

    assert _awaited(tracked()) == (False, True)


# (name, type, parent, project, stack): a child's URN, a root one's (the stack's and project's, or those given), and the
# parent prefix's edge cases (an empty parent URN, one without "::").
URN_SAMPLES = [("web", "kubernetes:apps/v1:Deployment", "urn:pulumi:prod::adplatform::adplatform:ads:Ads::ads", None,
                None), ("ads", "adplatform:ads:Ads", None, None, None), ("ads", "adplatform:ads:Ads", None, "p", "s"),
               ("x", "t:m:T", "", None, None), ("x", "t:m:T", "no-separator", None, None)]


@pytest.mark.parametrize("args", URN_SAMPLES)
def test_plain_urns_are_made_like_the_sdks(args):
    # Every registration computes its own URN (do_register's mock_urn) and each alias one: given plain strings, ours is
    # the same Output, finished at once.
    from pulumi.runtime import resource as runtime_resource
    pulumi.runtime.set_mocks(mockrun.OfflineMocks(), project="adplatform", stack="prod", preview=False)

    async def made(create_urn: Any) -> tuple[Any, ...]:
        urn = create_urn(*args)
        return urn._data.done(), await urn.future(), await urn.is_known(), await urn.is_secret(), await urn.resources()

    assert runtime_resource.create_urn is mockrun._create_urn
    ours, sdks = _awaited(made(mockrun._create_urn)), _awaited(made(mockrun._sdk_create_urn))
    assert ours[0] and ours[1:] == sdks[1:]


def test_an_urn_from_an_output_is_made_the_sdks_way():
    pulumi.runtime.set_mocks(mockrun.OfflineMocks(), project="adplatform", stack="prod", preview=False)

    async def made() -> Any:
        parent = pulumi.Output.secret("urn:pulumi:prod::adplatform::adplatform:ads:Ads::ads")
        urn = mockrun._create_urn(pulumi.Output.from_input("web"), "kubernetes:apps/v1:Deployment", parent)
        return await urn.future(), await urn.is_secret()

    assert _awaited(made()) == ("urn:pulumi:prod::adplatform::adplatform:ads:Ads$kubernetes:apps/v1:Deployment::web", True)


def _done(value: Any) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


async def _fail() -> None:
    raise ValueError("failed")


def test_the_fixtures_and_the_helpers_share_each_stack_run(request, production):
    """pytest loads tests/conftest.py as the module `conftest`; a test importing from `tests.conftest` loads it once
    more. The runs live in tests/runs.py, loaded once, so the fixture and every helper hand out the same run
    (a process holds, and reads from the run cache, each stack's run once)."""
    import tests.conftest
    import tests.runs
    conftest_path = Path(tests.runs.__file__).with_name("conftest.py")
    loaded = [p for p in request.config.pluginmanager.get_plugins() if getattr(p, "__file__", None) == str(conftest_path)]
    assert loaded and all(module.stack_run is tests.runs.stack_run for module in [*loaded, tests.conftest])
    assert tests.conftest.stack_run("production") is production


def test_run_log_names_each_executed_config_by_its_cache_key(tmp_path, monkeypatch):
    """The suite's cost is counted from $ADPLATFORM_RUN_LOG (issue 22): the same config executed twice shows as two
    lines with one digest, another config with another."""
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv(mockrun.RUN_LOG, str(log))
    for provider in ("nowhere", "nowhere", "elsewhere"):
        with pytest.raises(ConfigError):
            mockrun.execute({"adplatform:provider": provider}, set())
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["config"] for line in lines] == [config_key({"adplatform:provider": p}, set(), "test")[:16]
                                                  for p in ("nowhere", "nowhere", "elsewhere")]
    assert lines[0]["config"] != lines[2]["config"] and all(line["error"].startswith("ConfigError") for line in lines)


def test_run_log_counts_each_runs_cpu_seconds(tmp_path, monkeypatch):
    """Each logged run carries the CPU seconds this process spent on it ("cpu"), which compare across machine loads
    where wall seconds do not: a run that burns 0.2 s of CPU logs at least that, and not a whole second more."""
    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv(mockrun.RUN_LOG, str(log))

    def busy(values, secret_keys, stack):
        start = time.process_time()
        while time.process_time() - start < 0.2:
            pass
        return "run"
    monkeypatch.setattr(mockrun, "_execute", busy)
    assert mockrun.execute({"adplatform:provider": "busy"}, set()) == "run"
    (line,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert 0.2 <= line["cpu"] < 1.2 and line["error"] is None


# --- the run cache ----------------------------------------------------------------------------------

def _sources(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "tests").mkdir(parents=True)
    (root / "program.py").write_text("VERSION = 1\n")
    return root


def _counting():
    calls = []

    def execute(values, secret_keys, stack):
        calls.append((dict(values), stack))
        return {"stack": stack, "values": dict(values), "created": [f"r{len(calls)}"]}
    return calls, execute


def test_cache_runs_each_config_once_and_hands_out_copies(tmp_path):
    cache = RunCache(tmp_path / "cache", _sources(tmp_path))
    calls, execute = _counting()
    first = cache.recorded({"adplatform:a": 1}, {"adplatform:s"}, "test", execute)
    first["created"].append("changed by a test")
    again = cache.recorded({"adplatform:a": 1}, {"adplatform:s"}, "test", execute)
    assert len(calls) == 1 and cache.executed == 1
    assert again == {"stack": "test", "values": {"adplatform:a": 1}, "created": ["r1"]}, "a fresh copy"
    for other in (({"adplatform:a": 2}, {"adplatform:s"}, "test"), ({"adplatform:a": 1}, set(), "test"),
                  ({"adplatform:a": 1}, {"adplatform:s"}, "staging")):
        cache.recorded(*other, execute)
    assert len(calls) == 4, "another value, secret key set or stack name is another run"


def test_cache_is_invalidated_by_any_source_change_but_not_by_tests(tmp_path):
    root = _sources(tmp_path)
    calls, execute = _counting()
    RunCache(tmp_path / "cache", root).recorded({}, set(), "test", execute)
    (root / "tests" / "test_x.py").write_text("a test edit\n")
    RunCache(tmp_path / "cache", root).recorded({}, set(), "test", execute)
    assert len(calls) == 1
    (root / "templates").mkdir()
    (root / "templates" / "script.sh").write_text("echo changed\n")
    changed = RunCache(tmp_path / "cache", root)
    changed.recorded({}, set(), "test", execute)
    assert len(calls) == 2, "a new file the program could read is a new tree"
    changed.prune()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [changed.generation.name]


def test_cache_key_includes_the_environment(tmp_path, monkeypatch):
    root = _sources(tmp_path)
    calls, execute = _counting()
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    RunCache(tmp_path / "cache", root).recorded({}, set(), "test", execute)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    RunCache(tmp_path / "cache", root).recorded({}, set(), "test", execute)
    assert len(calls) == 2, "the providers read AWS_REGION and the like"


def test_cache_key_ignores_what_make_adds(tmp_path, monkeypatch):
    """`make drift STACK=staging`, run by a test, plans from the session's records (tools.mockrun.RUN_CACHE)."""
    root = _sources(tmp_path)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # the Makefile unexports it for the processes it starts
    monkeypatch.setenv("COLUMNS", "80")  # pytest sets the terminal's size
    monkeypatch.setenv("LINES", "24")
    plain = RunCache(tmp_path / "cache", root).generation
    for name in ("PYTHONDONTWRITEBYTECODE", "COLUMNS", "LINES"):
        monkeypatch.delenv(name)
    for name, value in {"MAKEFLAGS": "s -- PLAN_ARGS=--quiet PULUMI=echo STACK=staging", "MAKELEVEL": "1",
                        "MFLAGS": "-s", "MAKEOVERRIDES": "${-*-command-variables-*-}", "STACK": "staging",
                        "PULUMI": "echo", "PLAN_ARGS": "--quiet",  # used by the Makefile, assigned nowhere
                        "OLDPWD": "/elsewhere", "SHLVL": "3",
                        "ADPLATFORM_REQUIRE_NODE_TOOLS": "1"}.items():  # .ci/run's; a later make test reuses CI's runs
        monkeypatch.setenv(name, value)
    assert RunCache(tmp_path / "cache", root).generation == plain
    monkeypatch.setenv("AWS_PROFILE", "other")
    assert RunCache(tmp_path / "cache", root).generation != plain


def test_cache_key_covers_a_component_s_own_build_or_tests_folder(tmp_path):
    """Only the top's tests/ and build/ are not the program's: a file under components/x/build/ is."""
    root = _sources(tmp_path)
    (root / "components" / "x" / "build").mkdir(parents=True)
    (root / "components" / "x" / "build" / "script.sh").write_text("echo 1\n")
    before = runcache.tree_digest(root)
    (root / "components" / "x" / "build" / "script.sh").write_text("echo 2\n")
    changed = runcache.tree_digest(root)
    assert changed != before
    (root / "tests" / "test_x.py").write_text("changed\n")
    (root / "build").mkdir()
    (root / "build" / "plan.json").write_text("{}\n")
    assert runcache.tree_digest(root) == changed, "the top's tests/ and build/ are not the program's"


def test_cache_key_keeps_other_variables_given_on_make_s_command_line(tmp_path, monkeypatch):
    """`make plan STACK=staging-aws AWS_REGION=us-east-1` plans another region than `... AWS_REGION=eu-west-1`:
    only the Makefile's own variables are make's; the providers read AWS_REGION (providers/cloud.py)."""
    root = _sources(tmp_path)
    generations = set()
    for region in ("us-east-1", "eu-west-1"):
        monkeypatch.setenv("MAKEFLAGS", f"s -- AWS_REGION={region} STACK=staging-aws")
        monkeypatch.setenv("AWS_REGION", region)
        generations.add(RunCache(tmp_path / "cache", root).generation)
    assert len(generations) == 2


def test_cache_keeps_what_is_made_from_a_run_beside_it(tmp_path):
    """A plan of a config is stored under the config's key too, apart from its run."""
    cache, (calls, execute) = RunCache(tmp_path / "cache", _sources(tmp_path)), _counting()
    run = cache.recorded({"adplatform:a": 1}, set(), "test", execute)
    plan = cache.recorded({"adplatform:a": 1}, set(), "test", lambda *config: {"plan of": execute(*config)}, kind="plan")
    assert plan == {"plan of": {**run, "created": ["r2"]}} and len(calls) == 2
    assert cache.recorded({"adplatform:a": 1}, set(), "test", execute, kind="plan") == plan, "read back, not made"
    assert cache.recorded({"adplatform:a": 1}, set(), "test", execute) == run and len(calls) == 2


def test_stack_plans_are_built_once_and_handed_out_as_copies(tmp_path, monkeypatch):
    """tests.runs.stack_plan: model.build of the stack file's run, built once for every process of the session."""
    from tests import runs
    from tools.plan import model
    monkeypatch.setattr(mockrun, "cache", RunCache(tmp_path / "cache", _sources(tmp_path)))
    monkeypatch.setattr(runs, "stack_run", lambda stack: mockrun.Run(stack, [], {}, set()))
    builds = []
    monkeypatch.setattr(model, "build", lambda run: builds.append(run.stack) or {"stack": run.stack, "changed": []})
    first = runs.stack_plan("staging")
    first["changed"].append("by a test")
    assert runs.stack_plan("staging") == {"stack": "staging", "changed": []}, "a fresh copy"
    assert runs.stack_plan("production") == {"stack": "production", "changed": []}
    assert builds == ["staging", "production"]


def test_stack_plan_equals_the_plan_built_from_the_run():
    from tests.runs import stack_plan, stack_run
    from tools.plan import model
    assert stack_plan("staging") == model.build(stack_run("staging"))


def test_the_session_keeps_rewritten_test_modules(request):
    """conftest turns bytecode on, so pytest stores the test modules it rewrote and the next worker or session
    loads them instead of rewriting every assert again (PYTHONDONTWRITEBYTECODE is set in some shells and CI)."""
    assert not sys.dont_write_bytecode
    stored = Path(request.module.__file__).parent / "__pycache__"
    assert any(stored.glob("test_mockrun.*-pytest-*.pyc")), "pytest's rewritten copy of this module"


def test_each_test_module_is_loaded_once():
    """Tests import helpers from other test modules (`from tests.test_ads import obj`) and from conftest; under one
    module name each (tests/__init__.py), a module's state and caches are not built twice in a process."""
    names: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).parent == Path(__file__).parent:
            names.setdefault(Path(file).name, []).append(name)
    assert "conftest.py" in names and "test_mockrun.py" in names
    assert {file: loaded for file, loaded in names.items() if len(loaded) > 1} == {}


def test_cache_never_stores_a_failed_run(tmp_path):
    cache = RunCache(tmp_path / "cache", _sources(tmp_path))
    calls = []

    def failing(values, secret_keys, stack):
        calls.append(stack)
        raise RuntimeError("the program failed")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.recorded({}, set(), "test", failing)
    assert len(calls) == 2


def test_a_run_under_replaced_fakes_is_its_own_run(tmp_path, monkeypatch):
    """The key is the config; a test that replaces a fake (a project already holding a key) must not get, nor
    leave behind, the run of the same config under the standard fakes."""
    calls, execute, root = *_counting(), _sources(tmp_path)
    monkeypatch.setattr(mockrun, "cache", RunCache(tmp_path / "cache", root))
    monkeypatch.setattr(mockrun, "execute", execute)
    mockrun.run({"adplatform:a": 1}, set())
    monkeypatch.setitem(mockrun.CALL_RESULTS, "hcloud:index/getSshKeys:getSshKeys", lambda args: {"sshKeys": [{}]})
    mockrun.run({"adplatform:a": 1}, set())
    monkeypatch.undo()
    assert len(calls) == 2, "the replaced fake got the standard run from the cache"
    monkeypatch.setattr(mockrun, "cache", RunCache(tmp_path / "cache", root))
    monkeypatch.setattr(mockrun, "execute", execute)
    assert mockrun.run({"adplatform:a": 1}, set())["created"] == ["r1"], "the standard run stays the stored one"


def _slow_run(values, secret_keys, stack):
    import time
    time.sleep(0.5)  # long enough for the other process to ask meanwhile
    with open(values["log"], "a") as log:
        log.write("ran\n")
    return {"stack": stack}


def _ask(directory: str, root: str, log: str) -> dict:
    return RunCache(Path(directory), Path(root)).recorded({"log": log}, set(), "test", _slow_run)


def test_cache_makes_a_second_process_wait_instead_of_running_again(tmp_path):
    root, log = _sources(tmp_path), tmp_path / "log"
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.starmap(_ask, [(str(tmp_path / "cache"), str(root), str(log))] * 2)
    assert results == [{"stack": "test"}] * 2
    assert log.read_text() == "ran\n"


def test_a_recorded_run_survives_the_round_trip(production):
    assert pickle.loads(pickle.dumps(production)) == production


def _by_urn(run):  # registration order, and the order of dependencies, vary between runs
    resources = [dataclasses.replace(r, dependencies=sorted(r.dependencies)) for r in run.resources]
    return sorted(resources, key=lambda r: r.urn), run.outputs, run.secret_outputs, run.config


@pytest.fixture(scope="module")
def executed() -> tuple[mockrun.Run, set[Any]]:
    """The staging profile's run executed here, not read from the run cache, and the threads its monitor calls ran on.
    One execution for the two tests that need one (issue 22): the thread recorder only watches the calls, and hands
    each on to the monitor unchanged."""
    import threading
    threads = set()
    register = mockrun.RecordingMonitor.RegisterResource

    def recording_thread(self, request):
        threads.add(threading.current_thread())
        return register(self, request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mockrun.RecordingMonitor, "RegisterResource", recording_thread)
        patch.setattr(mockrun, "cache", None)
        return run_raw(base_raw(profile="staging")), threads


def test_runs_from_the_cache_equal_executed_runs(executed):
    raw = base_raw(profile="staging")
    cached = [run_raw(raw), run_raw(raw)]
    assert _by_urn(cached[0]) == _by_urn(cached[1]) == _by_urn(executed[0])


def test_a_run_with_the_sdks_own_internals_records_the_same(monkeypatch):
    # The whole-run guard of the harness' SDK replacements (mockrun.SDK_PATCHES): every record and output the same
    # as the SDK's own functions give, so an SDK upgrade that changes an internal we replace fails here.
    raw = base_raw(profile="staging")
    ours = run_raw(raw)  # the test above's run (recorded)
    assert {name for _owner, name, _sdk, _ours in mockrun.SDK_PATCHES} >= {
        "contains_unknowns", "_resolve_depends_on", "_add_dependency", "unwrap_type", "_track", "isawaitable",
        "monitor_executor", "_sync_await", "state_struct", "serialize_property", "deserialize_properties",
        "deserialize_property", "translate_output_properties", "_expand_dependencies",
        "transfer_properties", "create_urn"}  # tools/mockrpc.py; tests/test_mockrpc.py too
    monkeypatch.setattr(mockrun, "cache", None)
    with mockrun.sdk_originals():
        assert all(getattr(owner, name) is sdk for owner, name, sdk, _ours in mockrun.SDK_PATCHES)
        sdks = run_raw(raw)
    assert all(getattr(owner, name) is patched for owner, name, _sdk, patched in mockrun.SDK_PATCHES)
    assert len(ours.resources) > 300 and _by_urn(ours) == _by_urn(sdks)


# --- YAML text (components/yamltext.py) ------------------------------------------------------------------------------
# Documents with what makes emitters differ: long values past the line width, multi-line and indented text, quoting
# (values YAML would read as another type, leading/trailing spaces, `: ` and `#`), non-ASCII, empty containers.
TRICKY_YAML = [
    {"long": "word " * 40, "url": "https://example.com/" + "a" * 120, "lines": "one\ntwo\n  three\n", "empty": ""},
    {"quoted": ["yes", "no", "on", "1.0", "0o17", "null", "~", " lead", "trail ", "a: b", "# x", "@at", "*x", "-"]},
    {"unicode": "grüße ✓ 日本", "nested": [{"a": [], "b": {}}, [1, 2.5, True, None]], "z": 0, "A": -1},
    {"node-label": ["topology.kubernetes.io/zone=fsn1-dc14"], "kubelet-arg": ["max-pods=110"], "tls-san": []},
]
# The option sets the program dumps with (k3s/config.py; k3s/lifecycle.py and drills.py; providers/cloud.py; default).
YAML_OPTIONS = [{"sort_keys": True, "default_flow_style": False}, {"sort_keys": False},
                {"sort_keys": False, "default_flow_style": False, "width": 1000}, {}]


@pytest.mark.parametrize("options", YAML_OPTIONS)
def test_yaml_text_is_what_yaml_safe_dump_writes(options, production):
    """yamltext.safe_dump (libyaml's emitter) writes exactly yaml.safe_dump's text: on documents that stress the
    emitter, and on the production run's own K3s configs and drill documents, whose text is the one written."""
    from components import yamltext
    from tests.runs import k3s_config, script_param
    for document in TRICKY_YAML:
        assert yamltext.safe_dump(document, **options) == yaml.safe_dump(document, **options)
    nodes = [r.name.removeprefix("k3s-") for r in production.of_type("command:remote:Command")
             if r.name.startswith("k3s-")]
    written = {node: script_param(production.named(f"k3s-{node}").inputs["stdin"].value, "K3S_CONFIG")
               for node in nodes}
    written |= {name: text for name, text in production.named("drill-scripts").inputs["data"].items()
                if name.endswith(".yaml")}
    assert len(written) > 20
    for name, text in written.items():
        document = yaml.safe_load(text)
        assert yamltext.safe_dump(document, **options) == yaml.safe_dump(document, **options), name
        if name in nodes and options == YAML_OPTIONS[0] or name not in nodes and options == YAML_OPTIONS[1]:
            assert yamltext.safe_dump(document, **options) == text, name  # the options it was written with


def test_yaml_files_read_as_yaml_safe_load_reads_them():
    """The planner's libyaml reader (tools/yamlread.py) gives yaml.safe_load's data for every file the plan reads that
    way: the stack files, the price tables and the providers' server catalogs, and for the documents that stress a
    parser (the same text may be written)."""
    from tools import yamlread
    files = [*mockrun.ROOT.glob("Pulumi.*.yaml"), *(mockrun.ROOT / "tools" / "plan" / "prices").glob("*.yaml"),
             *(mockrun.ROOT / "providers").glob("*.yaml")]
    assert len(files) > 7
    tricky = "a: 1_000\nb: 0o17\nc: 1e3\nd: .inf\ne: 2026-12-07\nf: yes\ng: !!str 12\nh: 0x1F\n"
    safe_load = yamlread.safe_load
    for path in files:
        assert safe_load(path.read_text()) == yaml.safe_load(path.read_text()), path
    for document in TRICKY_YAML:
        text = yaml.safe_dump(document)
        assert safe_load(text) == yaml.safe_load(text) == document
    assert safe_load(tricky) == yaml.safe_load(tricky)


def test_the_planner_reads_yaml_without_the_programs_new_helpers():
    """`make plan-diff` runs this tree's planner (tools/, policy/) over an older tree's program (tools/plan/diff.py
    export_tree): the planner's stack-file and price reads must not need a YAML reader of the program's (a
    `yamltext.safe_load` for a while this stop, which older trees lack: plan-diff against them failed)."""
    for path in (mockrun.ROOT / "tools").rglob("*.py"):
        if "node_modules" not in path.parts:
            assert "yamltext.safe_load" not in path.read_text(), path


def test_the_monitor_answers_on_the_loop_s_thread(executed):
    """Under the harness every monitor call runs in the program's own thread (mockrun._InlineExecutor): no thread
    pool hand-off per resource. The answers are the SDK's (the whole-run comparison above)."""
    import threading
    run, threads = executed
    assert len(run.resources) > 300
    assert threads == {threading.main_thread()}


def test_a_plain_state_is_answered_as_the_sdk_serializes_it():
    """The monitor's answer built directly from plain data is the struct serialize_properties makes (None left out
    at the top only, numbers, bools, secrets' signature dicts, nesting); anything else goes the SDK's way."""
    secret = {rpc._special_sig_key: rpc._special_secret_sig, "value": "s3cret"}
    states = [{}, {"a": None, "b": "", "c": 0, "d": 1.5, "e": True, "f": False, "g": [None, 1, "x", [], {}]},
              {"nested": {"x": None, "y": [{"z": None}], "secret": secret}, "top": secret, "ü": "grüße"},
              {"tuple": (1, 2)}, {"set": [("a", 1)]}]
    for state in states:
        assert mockrun._plain_state_struct(state) == mockrun._serialized_state(state), state
    assert [mockrun._plain_data(state) for state in states] == [True, True, True, False, False]
