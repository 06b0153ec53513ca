"""Run the program in-process under Pulumi mocks and record every resource it registers.

Shared by the tests and the offline plan: no Pulumi CLI, no network, no credentials. Each resource
is recorded with its type, name, parent, dependencies, provider, protect flag and inputs (secret
inputs kept as `Secret` so tests can assert that they stayed secret).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import gc
import hashlib
import importlib
import inspect
import ipaddress
import json
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from google.protobuf import struct_pb2
import pulumi
from pulumi import _types
from pulumi import output as pulumi_output
from pulumi.runtime import _depends_on
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime import resource_cycle_breaker, rpc, settings
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from providers import previous_run
from tools import mockrpc, yamlread
from tools.runcache import RunCache, config_key

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "adplatform"
# What a stack named in platform.gitlab.runner.registration exports as runnerTokens (secret), offline.
OFFLINE_RUNNER_TOKENS = {"staging": "glrt-offline-placeholder-staging",
                         "staging-build": "glrt-offline-placeholder-staging-build",
                         "production": "glrt-offline-placeholder-production"}
# Secrets a stack needs but a repository never holds; offline they are placeholders, shown as [secret].
OFFLINE_SECRETS = {
    "adplatform:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\noffline-placeholder\n-----END OPENSSH PRIVATE KEY-----",
    "hcloud:token": "offline-placeholder-hcloud-token-0000000000000000000000000000000000",
}
# Secrets only stacks using a feature need (so an older tree, planned by plan-diff, is not handed
# keys it does not know): stack file key path -> placeholders.
FEATURE_SECRETS = {
    ("adplatform:clusterServices", "backups", "s3"): {
        "adplatform:backupAccessKeyId": "offline-placeholder-access-key",
        "adplatform:backupSecretAccessKey": "offline-placeholder-secret-key",
        # one pair per purpose (config/services.py BACKUP_PURPOSES): production refuses the shared pair alone
        "adplatform:backupCredentials": {purpose: {"accessKeyId": f"offline-placeholder-{purpose}-access-key",
                                                   "secretAccessKey": f"offline-placeholder-{purpose}-secret-key"}
                                         for purpose in ("etcd", "velero", "secrets", "postgres", "clickhouse", "scylladb", "redpanda", "drills")},
    },
    ("adplatform:clusterServices", "tls", "dns01"): {"adplatform:dnsApiToken": "offline-placeholder-dns-token"},
    ("adplatform:platform", "gitlab", "runner"): {"adplatform:gitlabRunnerToken": "glrt-offline-placeholder"},
    ("adplatform:dataPlane", "objectStorage", "external"): {
        "adplatform:objectStorageAccessKeyId": "offline-placeholder-object-storage-key",
        "adplatform:objectStorageSecretAccessKey": "offline-placeholder-object-storage-secret",
    },
}
FAKE_KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: b2ZmbGluZQ==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {client-certificate-data: b2ZmbGluZQ==, client-key-data: b2ZmbGluZQ==}
"""


@dataclass(frozen=True)
class Secret:
    """An input that reached the engine marked secret (Pulumi encrypts it in state)."""

    value: Any

    def __repr__(self) -> str:
        return "[secret]"


@dataclass
class Resource:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    dependencies: list[str]
    provider: str
    protect: bool
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    config: dict[str, Any] = field(default_factory=dict)  # the stack config it ran with; secrets as Secret

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: str | None = None) -> Resource:
        found = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} resources named {name!r} (type {type_})")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)


def _unwrap(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        return Secret(_unwrap(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.recorded: list[Resource] = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        """MockMonitor.RegisterResource (pulumi/runtime/mocks.py, line for line), recording the request: its inputs
        are deserialized once for both (recording them was a second deserialization of every request, in the
        monitor thread). They are recorded before the mocks see them: `_unwrap` copies every dict and list, so
        what a mock does to its arguments cannot reach the record."""
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        pulumi_mocks._ensure_event_loop()  # deserializing resource references needs a loop on this thread
        inputs = rpc.deserialize_properties(request.object)
        recorded = _unwrap(inputs)
        resource_args = pulumi_mocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False,
            transforms=pulumi_mocks._resolve_callbacks(request.transforms))
        id_, state = self.mocks.new_resource(resource_args)
        obj_proto = state_struct(state)
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        response = resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)
        self.recorded.append(Resource(
            urn=response.urn, type=request.type, name=request.name, custom=request.custom,
            parent=request.parent, dependencies=list(request.dependencies), provider=request.provider,
            protect=bool(request.protect), inputs=recorded,
            options={"ignoreChanges": list(request.ignoreChanges),
                     "additionalSecretOutputs": list(request.additionalSecretOutputs),
                     "deleteBeforeReplace": request.deleteBeforeReplace,
                     "replaceOnChanges": list(request.replaceOnChanges),
                     # Resource hooks bound to it, by kind (before_update, ...): the hooks' names.
                     "hooks": {kind.name: list(names) for kind, names in request.hooks.ListFields()},
                     # Earlier names the resource answers to (renames that keep the object).
                     "aliases": [a.spec.name for a in request.aliases if a.WhichOneof("alias") == "spec"]}))
        return response


# Every SDK internal the harness replaces, with the SDK's own: (owner, attribute, SDK's value, ours). Each replacement
# gives the SDK's answers faster (the comment at each says why); tests/test_mockrun.py compares each with the SDK's
# function, and a whole run made with the SDK's own against one made with ours (sdk_originals), so an SDK upgrade
# that changes an internal fails there. Only this harness imports the module: a real `pulumi up` runs the SDK as is.
SDK_PATCHES: list[tuple[Any, str, Any, Any]] = []


def _patch(owner: Any, name: str, replacement: Any) -> None:
    SDK_PATCHES.append((owner, name, getattr(owner, name), replacement))
    setattr(owner, name, replacement)


@contextmanager
def sdk_originals() -> Iterator[None]:
    """The SDK's own internals while inside (a run made here is the SDK's answer, slower)."""
    for owner, name, original, _ours in SDK_PATCHES:
        setattr(owner, name, original)
    try:
        yield
    finally:
        for owner, name, _original, ours in SDK_PATCHES:
            setattr(owner, name, ours)


# Pulumi's cycle check, made cheap. Before each dependency edge `new -> dep` the SDK asks whether `new` is
# already reachable from `dep` (resource_cycle_breaker._reachable): a depth-first search over everything
# `dep` transitively depends on, which for a late layer is most of the program, for every one of the
# ~12,000 edges (component dependencies expand to each child). Searching the other way, from `new` over the
# resources that depend on it, gives the same answer and visits almost nothing: a resource being
# registered has few dependents yet. The SDK's own edge store keeps the same sets; we only add the reverse.
_DEPENDENTS = "_adplatform_dependents"
_SDK_DEPENDENCIES = resource_cycle_breaker._DEPENDENCIES_PROPERTY  # what its _deps reads


def _dependents(resource: Any) -> set[Any]:
    return getattr(resource, _DEPENDENTS, set())


def _edges(resource: Any, name: str) -> set[Any]:
    """The set stored on `resource` under `name`, created empty the first time."""
    edges = getattr(resource, name, None)
    if edges is None:
        edges = set()
        setattr(resource, name, edges)
    return edges


def _add_dep(from_resource: Any, to_resource: Any) -> None:
    # The SDK's _add_dep stores a new set `deps | {to}` at every edge (quadratic in a resource's edges); adding
    # to the stored set gives the same set. Only the cycle breaker reads it, and never while adding.
    _edges(from_resource, _SDK_DEPENDENCIES).add(to_resource)
    _edges(to_resource, _DEPENDENTS).add(from_resource)


def _reachable(from_resource: Any, to_resource: Any) -> bool:
    """Whether `to_resource` is among the transitive dependencies of `from_resource` (the SDK's
    question), answered by walking from `to_resource` over its transitive dependents."""
    stack, seen = [to_resource], set()
    while stack:
        node = stack.pop()
        if node == from_resource:
            return True
        if node in seen:
            continue
        seen.add(node)
        stack.extend(_dependents(node))
    return False


_patch(resource_cycle_breaker, "_add_dep", _add_dep)
_patch(resource_cycle_breaker, "_reachable", _reachable)

# The SDK asks whether a value holds an unknown at every Output it creates and every `.future()` (about 95,000
# times in a production run). Its check defines a self-referencing inner function per call (a closure cell that
# points back at the function): a reference cycle only the cyclic collector frees, 570,000 of the 574,000 objects
# a production run left it, and a fifth of the run's time went into collecting them. The same walk without the
# closure gives the same answer and leaves nothing behind (tests/test_mockrun.py compares the two).
_sdk_contains_unknowns = rpc.contains_unknowns


# Exact types that are never an Unknown nor a container: skipped inside a walk without further checks.
_PLAIN_LEAVES = frozenset({str, int, float, bool, type(None)})


def _contains_unknowns(val: Any) -> bool:
    """Whether `val` is unknown or a dict value / list item reachable from it is (each container visited once)."""
    # Nearly every value asked about is a string or a Resource (depends_on, urns, ids): the SDK's walk looks
    # at anything but a dict or a list alone, so its answer is whether it is an Unknown.
    if not isinstance(val, (dict, list)):
        return isinstance(val, pulumi_output.Unknown)
    # A walk over the containers: a leaf is an Unknown or not wherever it is met, so only containers need
    # remembering (the SDK remembers every value; a value met again adds nothing to the answer).
    pending, seen = [val], {id(val)}
    while pending:
        container = pending.pop()
        for item in (container[k] for k in container) if isinstance(container, dict) else container:
            if type(item) in _PLAIN_LEAVES:
                continue
            if isinstance(item, pulumi_output.Unknown):  # known_types.is_unknown, without its call
                return True
            if isinstance(item, (dict, list)) and id(item) not in seen:
                seen.add(id(item))
                pending.append(item)
    return False


_patch(rpc, "contains_unknowns", _contains_unknowns)
# Output's own module-level helper only forwards to rpc.contains_unknowns; calling ours directly saves a call
# per Output (pulumi.contains_unknowns, the exported name, stays the SDK's forwarder).
_patch(pulumi_output, "contains_unknowns", _contains_unknowns)

# Output asks inspect.isawaitable of every value it lifts or an apply returns (67,000 times a run, three
# isinstance checks each, one through the Awaitable ABC). A str, number, bool or None is never awaitable
# (no coroutine, no generator, no __await__), so for those exact types the answer is False without asking.
def _isawaitable(value: Any) -> bool:
    return type(value) not in _PLAIN_LEAVES and inspect.isawaitable(value)


_patch(pulumi_output, "isawaitable", _isawaitable)  # output.py imported the name from inspect; rpc.py asks inspect itself

# Resolving `depends_on` turns every listed Resource into an Output only to read back an empty set of resources
# and the Resource itself (Output.from_input's last case: no Output, input type, container or awaitable; and
# a Resource holds no Unknown), which was a tenth of a run: 22,000 Outputs in production, each with its
# future, tracking and done callback. For such an item the same answer is taken directly; every other item,
# and the sets built, go exactly the SDK's way (runtime/_depends_on.py: `all_deps | more_deps` each time).
_sdk_resolve_depends_on = _depends_on._resolve_depends_on
_NO_RESOURCES: frozenset = frozenset()


# Per class: whether Output.from_input(item) is a known, non-secret Output of `item` itself, with no resources.
# It depends only on the class: inspect.isawaitable of an object that is no coroutine or generator is
# isinstance(item, Awaitable), which looks at the class (its __await__), as does is_input_type.
_plain_resource_types: dict[type, bool] = {}


def _plain_resource(item: Any) -> bool:
    cls = type(item)
    plain = _plain_resource_types.get(cls)
    if plain is None:
        plain = _plain_resource_types[cls] = isinstance(item, pulumi.Resource) and not isinstance(item, pulumi.Output) \
            and not _types.is_input_type(cls) and not inspect.isawaitable(item)
    return plain


async def _resolve_depends_on(depends_on: Any) -> set[Any]:
    """The SDK's _resolve_depends_on, with a plain Resource listed taken as it is."""
    if not depends_on:
        return set()

    outer = pulumi.Output._from_input_shallow(depends_on)
    all_deps = await outer.resources()
    inner_list = await outer.future() or []

    for i in inner_list:
        if _plain_resource(i):
            all_deps = all_deps | _NO_RESOURCES
            all_deps.add(i)
            continue
        inner = pulumi.Output.from_input(i)
        more_deps = await inner.resources()
        all_deps = all_deps | more_deps
        direct_dep = await inner.future()
        if direct_dep is not None:
            all_deps.add(direct_dep)

    return all_deps


_patch(_depends_on, "_resolve_depends_on", _resolve_depends_on)
# runtime/invoke.py imported the name; `from pulumi.runtime import invoke` would be the function of that name
# (pulumi.runtime re-exports it), whose attribute nothing reads.
_patch(importlib.import_module("pulumi.runtime.invoke"), "_resolve_depends_on", _resolve_depends_on)

# rpc._add_dependency (expanding each dependency, a component to its children) imports Resource and
# ComponentResource inside the function, once per call and once per resource it visits: 50,000 imports a run.
# This is its body with those two names bound once (the same classes); the walk, its order, the cycle check
# and the awaits are the SDK's.
_sdk_add_dependency = rpc._add_dependency


def _dependency_leaves(res: Any, from_resource: Any) -> list[Any]:
    """The first half of the SDK's _add_dependency: the walk from `res` (a component stands for its children),
    declaring each edge from `from_resource`, refusing a cycle; the resources whose URNs it then awaits."""
    res_list = collections.deque([(res, from_resource)])  # popleft: the SDK's pop(0), without the shifting
    awaitable: list[Any] = []
    while len(res_list) > 0:
        res, from_resource = res_list.popleft()
        if not isinstance(res, pulumi.Resource):
            raise TypeError(f"'depends_on' was passed a value {res} that was not a Resource.")
        no_cycles = rpc.declare_dependency(from_resource, res) if from_resource else True
        if not no_cycles:
            error_on_cycles = os.getenv(rpc.ERROR_ON_DEPENDENCY_CYCLES_VAR, "true").lower() == "true"
            if not error_on_cycles:
                continue
            raise RuntimeError(
                "We have detected a circular dependency involving a resource of type"
                + f" {res._type} named {res._name}.\n"
                + "Please review any `depends_on`, `parent` or other dependency relationships between your resources to ensure "
                + "no cycles have been introduced in your program.")
        if isinstance(res, pulumi.ComponentResource) and not res._remote:
            for child in res._childResources.copy():
                res_list.append((child, from_resource))
        else:
            awaitable.append(res)
    return awaitable


async def _urn(res: Any) -> Any:
    """`await res.urn.future()`: Output.future's body (its data awaited, None if it holds an unknown) without the
    coroutine of its own, for an Output of the SDK's own class."""
    urn = res.urn
    if type(urn) is not pulumi.Output:
        return await urn.future()
    data = await urn._data
    return None if _contains_unknowns(data.value) else data.value


async def _add_dependencies(deps: dict[str, Any], resources: Any, from_resource: Any) -> None:
    """_add_dependency of each resource in turn (its walk, then its URNs awaited, then the next), in one coroutine."""
    for each in resources:
        for res in _dependency_leaves(each, from_resource):
            urn = await _urn(res)
            if urn:
                deps[urn] = res


async def _add_dependency(deps: dict[str, Any], res: Any, from_resource: Any) -> None:
    await _add_dependencies(deps, (res,), from_resource)


_patch(rpc, "_add_dependency", _add_dependency)

# rpc._expand_dependencies awaits _add_dependency once per dependency (a coroutine each, and one more per URN in
# Output.future: 21,000 of each a production run, most for a single resource). Ours runs the same body for each
# dependency in the same order (walk and cycle check, then its URNs awaited, then the next dependency) in one
# coroutine. resource.py and _depends_on.py imported the name.
_sdk_expand_dependencies = rpc._expand_dependencies


async def _expand_dependencies(deps: Any, from_resource: Any) -> dict[str, Any]:
    expanded_deps: dict[str, Any] = {}
    await _add_dependencies(expanded_deps, deps, from_resource)
    return expanded_deps


for _owner in (rpc, runtime_resource, _depends_on):
    _patch(_owner, "_expand_dependencies", _expand_dependencies)

# Inputs are serialized one coroutine per nested value, deserialized by the mock monitor and again as the outputs the
# mock answers with (its inputs), then translated to typed outputs with a `_Path` per value: about a fifth of a run,
# nearly all of it plain dicts, lists and strings. tools/mockrpc.py answers plain data in one synchronous pass, branch
# for branch as the SDK's functions do, and hands anything else (Outputs, Resources, secrets, assets, unknowns, and
# whatever the SDK would refuse) to the SDK's own function; the SDK's recursion calls these names, so it comes back
# to ours for each nested value.
_patch(rpc, "serialize_property", mockrpc.serialize_property)
_patch(rpc, "deserialize_properties", mockrpc.deserialize_properties)
_patch(rpc, "deserialize_property", mockrpc.deserialize_property)
_patch(rpc, "translate_output_properties", mockrpc.translate_output_properties)

# Serializing each input property unwraps its declared type (Output[T], Input[T], Optional[...]) with a dozen
# typing calls, 21,000 times a run over a few hundred distinct types. The answer depends only on the type
# (is_input_type reads a class attribute the decorator set at class creation), so it is remembered per type.
_sdk_unwrap_type = _types.unwrap_type
# Keyed by identity, not equality: Union[a, b] == Union[b, a], yet unwrap_type answers with the first argument.
# The type is kept with its answer, so its id is not reused while remembered.
_unwrapped_types: dict[int, tuple[Any, Any]] = {}


def _unwrap_type(val: Any) -> Any:
    known = _unwrapped_types.get(id(val))
    if known is None or known[0] is not val:
        known = _unwrapped_types[id(val)] = (val, _sdk_unwrap_type(val))
    return known[1]


_patch(_types, "unwrap_type", _unwrap_type)

# Every Output registers its future in SETTINGS.outputs (so the run waits for it) and removes it when it is done
# (Output._track, 30,000 times a production run). Each SETTINGS.lock / SETTINGS.outputs goes through a context
# property whose __get__ reads the context variable twice (to see whether it holds a dict, which the lock and the
# set never are). Reading each once through the same property, in the same context (the callback's, as in the
# SDK), gives the same lock and set; the bookkeeping is the SDK's, line for line.
_SETTINGS_LOCK = vars(type(settings.SETTINGS))["lock"]
_SETTINGS_OUTPUTS = vars(type(settings.SETTINGS))["outputs"]


def _setting(prop: Any) -> Any:
    """What SETTINGS.<prop> answers (ContextProperty.__get__, with the context variable read once)."""
    value = prop.fget()
    return prop if isinstance(value, dict) else value


def _untrack_done(fut: Any) -> None:
    if fut.cancelled() or (fut.exception() is not None):
        return  # left in the set for the end of the program to pick up, as the SDK does
    with _setting(_SETTINGS_LOCK):
        try:
            _setting(_SETTINGS_OUTPUTS).remove(fut)
        except KeyError:
            pass  # already taken out by wait_for_rpcs


def _track(self: Any) -> None:
    data = self._data
    # A third of a run's Outputs (11,000 of 30,000 in production) are made finished (a prompt value from_input lifts,
    # a URN of plain strings): the SDK adds their future to the set and schedules its removal on the loop, a round
    # trip that leaves the set as it was. A failed one stays for the end of the program to raise, as in the SDK.
    if data.done() and not data.cancelled() and data.exception() is None:
        return
    with _setting(_SETTINGS_LOCK):
        _setting(_SETTINGS_OUTPUTS).add(data)
    data.add_done_callback(_untrack_done)


_patch(pulumi.Output, "_track", _track)

# rpc.transfer_properties gives each property of a resource being registered an Output over four futures (value,
# known, secret, dependencies) that its resolver sets at once, and a Task per Output that awaits the four and builds
# the Output's data (~8,000 a production run, three loop callbacks each). Ours gives each property one future of
# that data, set by the resolver: the same _OutputData (the dependencies given, plus the resource; the value, known
# and secret flags as resolved) or the same exception when the registration failed, as soon as it is resolved.
_sdk_transfer_properties = rpc.transfer_properties


def _resolve_data(res: Any, data: asyncio.Future, value: Any, is_known: bool, is_secret: bool, deps: Any,
                  failed: Exception | None) -> None:
    """The SDK's do_resolve, setting the Output's data directly."""
    deps_union = set(deps) if deps else set()
    deps_union.add(res)
    if failed is not None:
        data.set_exception(failed)
    else:
        data.set_result(pulumi_output._OutputData(resources=deps_union, value=value, is_known=is_known,
                                                  is_secret=is_secret))


def _transfer_properties(res: Any, props: Any, custom: bool) -> dict[str, Callable[..., None]]:
    resolvers: dict[str, Callable[..., None]] = {}
    for name in props:
        if name == "urn" or (name == "id" and custom):
            continue  # set elsewhere, as in the SDK
        data: asyncio.Future = asyncio.Future()
        resolvers[name] = functools.partial(_resolve_data, res, data)
        res.__dict__[name] = pulumi.Output._from_data(data)
    return resolvers


_patch(rpc, "transfer_properties", _transfer_properties)

# Every registration computes its own URN with create_urn (do_register: `mock_urn`, what a run without a monitor
# answers; ours has one, which names the resource itself), and each alias has one too: the SDK's makes half a dozen
# Outputs and three tasks over strings each time, and the run awaits them (1,400 a production run, about 5 % of
# its time). Given plain strings, the same Output is made finished at once: the same URN, known, not secret, of no
# resources. Anything else (an Output or a Resource as parent, an alias' Output name) goes the SDK's way.
_sdk_create_urn = runtime_resource.create_urn


def _create_urn(name: Any, type_: Any, parent: Any = None, project: str | None = None,
                stack: str | None = None) -> pulumi.Output:
    if any(type(arg) is not str for arg in (name, type_)) \
            or any(arg is not None and type(arg) is not str for arg in (parent, project, stack)):
        return _sdk_create_urn(name, type_, parent, project, stack)
    if parent is not None:
        prefix = parent[0:parent.rfind("::")] + "$"
    else:
        stack = settings.get_stack() if stack is None else stack
        project = settings.get_project() if project is None else project
        prefix = "urn:pulumi:" + stack + "::" + project + "::"
    data: asyncio.Future = asyncio.Future()
    data.set_result(pulumi_output._OutputData(resources=set(), value=prefix + type_ + "::" + name, is_known=True,
                                              is_secret=False))
    return pulumi.Output._from_data(data)


_patch(runtime_resource, "create_urn", _create_urn)

# The SDK walks and converts the whole Python stack at every resource, to tell the engine which line
# created it; the mock monitor ignores that (and so do our records), and it cost a tenth of a run.
_patch(runtime_resource, "_get_stack_trace", source_pb2.StackTrace)


# The SDK hands every call to the monitor (registering a resource, an invoke, reading one) to a thread pool
# (`run_in_executor`), and the mock monitor then runs an event loop of its own in that thread to serialize its answer
# (`_sync_await`). Under mocks nothing there blocks: the monitor is this process's Python, so each of the ~1,000
# calls of a production run paid thread hand-offs (and the GIL's) for nothing. Ours runs the call at once on the
# loop's thread and hands back a finished future; the awaiting task resumes as it would have (through the loop,
# `wrap_future`'s callback), with the monitor's answer. Registration order was already free to vary between runs
# (several threads answered at once); every record and answer is the same (tests/test_mockrun.py).
class _InlineExecutor(ThreadPoolExecutor):
    """Runs each submitted call in the caller's thread; no thread is ever started."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as raised:  # noqa: BLE001 (handed to the awaiting task, as a pool thread would)
            future.set_exception(raised)
        return future


# Which executor a run hands to its loop: None is the loop's own default (a thread pool, the SDK's way).
_this_module = sys.modules[__name__]  # the owner of the harness' own switches below
monitor_executor: ThreadPoolExecutor | None = None
_patch(_this_module, "monitor_executor", _InlineExecutor())

_sdk_sync_await = pulumi_mocks._sync_await


def _sync_await_inline(awaitable: Any) -> Any:
    """The mock monitor's `_sync_await` of its answer (serialize_properties of plain data, which never waits), run
    to its end at once when the monitor runs on the loop's own thread. The SDK's would pump that running loop,
    letting other tasks run inside the monitor's call; in a pool thread it is the SDK's own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # a pool thread's call (sdk_originals): no loop runs here
        return _sdk_sync_await(awaitable)
    if not inspect.iscoroutine(awaitable):
        return _sdk_sync_await(awaitable)
    try:
        awaitable.send(None)
    except StopIteration as done:
        return done.value
    awaitable.close()
    raise RuntimeError("the mock monitor's answer waited on a value (only plain data is expected)")


_patch(pulumi_mocks, "_sync_await", _sync_await_inline)


def _serialized_state(state: dict[str, Any]) -> Any:
    """The mock monitor's answer to a registration: serialize_properties of the mock's state (MockMonitor's call)."""
    return pulumi_mocks._sync_await(rpc.serialize_properties(state, {}))


def _plain_data(value: Any) -> bool:
    """Whether `value` is JSON-like data only: str, number, bool, None, and dicts (str keys) and lists of them."""
    kind = type(value)
    if kind in _PLAIN_LEAVES:
        return True
    if kind is dict:
        return all(type(key) is str and _plain_data(item) for key, item in value.items())
    return kind is list and all(_plain_data(item) for item in value)


def _plain_state_struct(state: dict[str, Any]) -> Any:
    """_serialized_state, for a state of plain data (every state our mocks answer: the deserialized inputs and what
    the fakes add) built directly. serialize_property hands plain data back as it is (a dict or list item by item,
    a scalar itself, after a dozen type checks each), and serialize_properties leaves out the top-level keys whose
    value is None: about 7 % of a profiled run went into those checks. Anything else goes the SDK's way."""
    if type(state) is not dict or not _plain_data(state):
        return _serialized_state(state)
    struct = struct_pb2.Struct()
    for key, value in state.items():
        if value is not None:
            struct[key] = value
    return struct


state_struct: Callable[[dict[str, Any]], Any] = _serialized_state
_patch(_this_module, "state_struct", _plain_state_struct)


def _fake_id(name: str) -> str:
    return str(int(hashlib.sha256(name.encode()).hexdigest()[:7], 16))


def fake_host_key(name: str) -> str:
    """What a node's /etc/ssh/ssh_host_ed25519_key.pub holds: an ed25519 key in SSH wire form (type, then 32
    bytes, here derived from the resource name), and sshd's comment."""
    kind = b"ssh-ed25519"
    blob = len(kind).to_bytes(4, "big") + kind + (32).to_bytes(4, "big") + hashlib.sha256(name.encode()).digest()
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} root@{name}\n"


def _fake_ip(name: str, network: str) -> str:
    net = ipaddress.ip_network(network)
    offset = int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) % (net.num_addresses - 4) + 2
    return str(net.network_address + offset)


# A run's values may carry, under this key, the `previousRun` output of an earlier run: the engine's read of the stack's
# own outputs (providers/previous_run.py) then answers with it, as after that run. Taken out of the values before the
# program sees its config; part of the run cache's key. Absent: a stack never deployed (no outputs).
PREVIOUS_RUN = "mockrun:previousRun"
# As PREVIOUS_RUN's value: a stack deployed by a version before the record (outputs, none of them `previousRun`).
BEFORE_THE_RECORD = "mockrun:beforeTheRecord"


def after(run: Run, values: dict[str, Any]) -> dict[str, Any]:
    """`values` for a run that follows `run` (its record read back)."""
    return {**values, PREVIOUS_RUN: run.outputs[previous_run.OUTPUT]}


class OfflineMocks(pulumi.runtime.Mocks):
    """Plausible provider outputs: numeric ids, documentation-range public IPs, private IPs."""

    def __init__(self, previous: Any = None):
        self.previous = previous  # the earlier run's `previousRun` output (PREVIOUS_RUN), or None

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        rid = _fake_id(args.name)
        if args.typ == "hcloud:index/server:Server":
            outputs["ipv4Address"] = _fake_ip(args.name, "198.51.100.0/24")
            outputs["ipv6Address"] = "2001:db8::" + rid[-4:]
            outputs["networks"] = [dict(n, ip=_fake_ip(args.name, "10.0.1.0/24"))
                                   for n in args.inputs.get("networks", [])]
        elif args.typ == "hcloud:index/loadBalancer:LoadBalancer":
            outputs["ipv4"] = _fake_ip(args.name, "203.0.113.0/24")
        elif args.typ == "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork":
            outputs["ip"] = "10.0.1.254"
        elif args.typ == "random:index/randomPassword:RandomPassword":
            seed = f"offline-{args.name}-"
            outputs["result"] = (seed + "x" * 64)[:int(args.inputs.get("length", 16))]
        elif args.typ == "command:remote:Command":
            create = args.inputs.get("create", "")
            outputs["stdout"] = (FAKE_KUBECONFIG if "k3s.yaml" in str(create)
                                 else fake_host_key(args.name) if "ssh_host_ed25519_key.pub" in str(create) else "")
            outputs["stderr"] = ""
        elif args.typ == "pulumi:pulumi:StackReference":  # another stack's outputs, as the engine reads them
            outputs["outputs"] = {"runnerTokens": dict(OFFLINE_RUNNER_TOKENS)}
            outputs["secretOutputNames"] = ["runnerTokens"]
        elif args.typ == "kubernetes:core/v1:Secret" and args.resource_id and "data" not in outputs:
            # Secret.get of a Secret a Job wrote (runner bootstrap): what that Job would have written.
            outputs["data"] = {"runner-token": base64.b64encode(b"glrt-offline-placeholder-written").decode()}
        if args.typ in RESOURCE_OUTPUTS:
            outputs.update(RESOURCE_OUTPUTS[args.typ](args, rid))
        return f"{rid}", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == previous_run.READ_STACK_OUTPUTS:  # the stack's own outputs (the built-in provider's)
            outputs = {} if self.previous is None else {"profile": "earlier"} \
                if self.previous == BEFORE_THE_RECORD else {previous_run.OUTPUT: self.previous}
            return {"name": args.args["name"], "outputs": outputs, "secretOutputNames": []}
        handler = CALL_RESULTS.get(args.token)
        return handler(args) if handler else {}


# Per-provider mock behaviour, one entry per resource type / invoke token (keeps each provider's
# fakes apart): what the cloud would fill in (addresses, ids) and what lookups would return.
ResourceOutputs = Callable[[pulumi.runtime.MockResourceArgs, str], dict[str, Any]]
CallResult = Callable[[pulumi.runtime.MockCallArgs], dict[str, Any]]
RESOURCE_OUTPUTS: dict[str, ResourceOutputs] = {}
CALL_RESULTS: dict[str, CallResult] = {}


class StackFileError(ValueError):
    """A stack file that is not YAML or not shaped as Pulumi's (a mapping with a `config:` mapping); the message
    names the file, and the line and column where there is one."""


def _stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file (empty when there is none)."""
    text = path.read_text()
    try:
        data = yamlread.safe_load(text) or {}  # read by every plan for each stack file (tools/plan/limits.py)
    except yamlread.yaml.MarkedYAMLError as exc:  # libyaml's messages name "<unicode string>", not the file
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StackFileError(f"{path.name}{where}: not valid YAML: {exc.problem or exc.context}") from None
    if not isinstance(data, dict):
        raise StackFileError(f"{path.name} line 1, column 1: must be a mapping with a config: mapping of keys "
                             f"to values, got a {type(data).__name__}")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        mark = next(node.start_mark for key, node in yamlread.yaml.compose(text).value if key.value == "config")
        raise StackFileError(f"{path.name} line {mark.line + 1}, column {mark.column + 1}: config: must be a "
                             f"mapping of keys (adplatform:provider: hetzner, ...), got a {type(config).__name__}")
    return config


def stack_config(stack: str) -> tuple[dict[str, Any], set[str]]:
    """Config of a stack file, with secure values and missing secrets replaced by placeholders; StackFileError
    when the file is not a stack file."""
    values: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in _stack_file(ROOT / f"Pulumi.{stack}.yaml").items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = OFFLINE_SECRETS.get(key, "offline-placeholder")  # feature secrets: any placeholder
            secret.add(key)
        else:
            values[key] = value
    provider = values.get("adplatform:provider")
    for key, placeholder in OFFLINE_SECRETS.items():
        namespace = key.split(":")[0]
        if key not in values and (namespace == PROJECT or namespace == {"hetzner": "hcloud"}.get(provider)):
            values[key] = placeholder
            secret.add(key)
    for path, placeholders in FEATURE_SECRETS.items():
        node: Any = values
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        for key, placeholder in placeholders.items():
            if node is not None and key not in values and _known_secret(key):
                values[key] = _known_purposes(placeholder) if key == "adplatform:backupCredentials" else placeholder
                secret.add(key)
    return values, secret


def _known_purposes(credentials: dict[str, Any]) -> dict[str, Any]:
    """The placeholder key pairs of the backup purposes this tree's loader knows (an older tree, planned by
    plan-diff, refuses a purpose it does not have, e.g. one a later change added)."""
    import config.services as services  # the planned tree's own (an older tree may have no readers)
    known = {*services.BACKUP_PURPOSES, *getattr(services, "BACKUP_READERS", ())}
    return {purpose: keys for purpose, keys in credentials.items() if purpose in known}


def _known_secret(key: str) -> bool:
    """Whether this tree's config loader takes the secret (plan-diff plans older trees with this file, and a
    key their loader does not know would be refused as unknown)."""
    from config.load import OPTIONAL_SECRETS  # the planned tree's own
    namespace, _, name = key.partition(":")
    return namespace != PROJECT or name in OPTIONAL_SECRETS


def stacks() -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


# The monitor of the latest executed run, so a test can see what was registered before an exception
# (a run that raises is never taken from the cache).
last_monitor: RecordingMonitor | None = None
# Where run() finds runs recorded earlier (the tests set a tools.runcache.RunCache); None: always execute.
# The tests also name its directory in $ADPLATFORM_RUN_CACHE, so the planner processes they start (`make
# drift`, plan-diff's base tree) read and add to the same records; a plain `make plan` always executes.
RUN_CACHE = "ADPLATFORM_RUN_CACHE"
cache: Any = RunCache(Path(os.environ[RUN_CACHE]), ROOT) if os.environ.get(RUN_CACHE) else None


def run(values: dict[str, Any], secret_keys: set[str], stack: str = "test") -> Run:
    """Run program.main() with exactly this config; raises what the program raises."""
    if cache is not None and not _fakes_replaced():
        return cache.recorded(values, secret_keys, stack, execute)
    return execute(values, secret_keys, stack)


# Set to a file path to have every executed run (not one read from the cache) appended there as a JSON
# line: stack, the config's digest (the run cache's key: two lines with one digest ran the same config twice),
# the test that asked (pytest's PYTEST_CURRENT_TEST), seconds, and the error it raised.
# How the suite's cost is counted (issue 22); the variable is left out of the cache key.
RUN_LOG = "ADPLATFORM_RUN_LOG"


def execute(values: dict[str, Any], secret_keys: set[str], stack: str = "test") -> Run:
    """run() without the cache; logged to $ADPLATFORM_RUN_LOG when that is set, with its wall seconds and this
    process's CPU seconds (which, unlike wall time, compare across machine loads)."""
    log, started, cpu, error = os.environ.get(RUN_LOG), time.monotonic(), time.process_time(), None
    try:
        return _execute(values, secret_keys, stack)
    except BaseException as raised:
        error = f"{type(raised).__name__}: {raised}"[:200]
        raise
    finally:
        if log:
            with open(log, "a") as out:  # one short write per line: appends from several processes stay whole
                key = config_key(values, secret_keys, stack)
                out.write(json.dumps({"stack": stack, "config": key and key[:16],
                                      "test": os.environ.get("PYTEST_CURRENT_TEST", ""),
                                      "seconds": round(time.monotonic() - started, 2),
                                      "cpu": round(time.process_time() - cpu, 2), "error": error}) + "\n")


def _execute(values: dict[str, Any], secret_keys: set[str], stack: str) -> Run:
    global last_monitor
    import program  # imported late: the program reads config when main() runs, not on import

    values = dict(values)
    mocks = OfflineMocks(values.pop(PREVIOUS_RUN, None))
    monitor = last_monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    runtime_config.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}, list(secret_keys))
    # A run allocates hundreds of thousands of short-lived SDK objects (outputs, futures, tasks); the
    # cyclic collector's passes over that growing heap cost about a quarter of the run. Reference counting
    # frees almost all of it anyway, and the collector runs again once the run is over.
    collecting = gc.isenabled()
    gc.disable()
    loop = pulumi_mocks._ensure_event_loop()  # the one _sync_await runs the program on
    default_executor, loop._default_executor = loop._default_executor, monitor_executor  # type: ignore[attr-defined]
    try:
        _sync_await(run_pulumi_func(program.main))
    finally:
        loop._default_executor = default_executor  # type: ignore[attr-defined]
        if collecting:
            gc.enable()

    root = settings.get_root_resource()
    outputs, secret_outputs = {}, set()
    for key, value in (getattr(root, "outputs", None) or {}).items():
        out = pulumi.Output.from_input(value)
        outputs[key] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            secret_outputs.add(key)
    config = {k: Secret(v) if k in secret_keys else v for k, v in values.items()}
    return Run(stack, monitor.recorded, outputs, secret_outputs, config)


def run_stack(stack: str, overrides: dict[str, Any] | None = None) -> Run:
    values, secret = stack_config(stack)
    values.update({(k if ":" in k else f"{PROJECT}:{k}"): v for k, v in (overrides or {}).items()})
    return run(values, secret, stack)


# --- AWS and GCP fakes (providers/aws.py, providers/gcp.py) -----------------------------------------
# Lookups answer like the clouds would for the configured region; the AMI and image lookups answer
# only the query the providers must make (Canonical's Ubuntu 24.04), so a wrong query shows in tests.
FAKE_UBUNTU_AMI = "ami-0f1e2d3c4b5a69788"
FAKE_UBUNTU_GCE_IMAGE = "https://www.googleapis.com/compute/v1/projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20261101"


def _aws_region() -> str:
    return pulumi.Config("aws").get("region") or "eu-central-1"


def _aws_zones(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    region = _aws_region()
    return {"names": [f"{region}{z}" for z in "abc"], "zoneIds": [f"euc1-az{i}" for i in (1, 2, 3)], "id": region}


def _aws_ami(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    filters = {f["name"]: f["values"] for f in args.args.get("filters", [])}
    canonical = args.args.get("owners") == ["099720109477"] and \
        filters.get("name") == ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
    return {"id": FAKE_UBUNTU_AMI if canonical else "ami-not-canonical-ubuntu-noble", "architecture": "x86_64",
            "name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101",
            "rootDeviceName": "/dev/sda1"}  # Canonical's Ubuntu AMIs boot from /dev/sda1


def _aws_instance(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    private_ip = _fake_ip(args.name, "10.0.1.0/24")
    return {"publicIp": _fake_ip(args.name, "198.51.100.0/24"), "privateIp": private_ip,
            "privateDns": f"ip-{private_ip.replace('.', '-')}.{_aws_region()}.compute.internal", "arn": f"arn:aws:ec2:i-{rid}"}


def _aws_arn(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    return {"arn": f"arn:aws:offline:{_aws_region()}:000000000000:{args.name}/{rid}",
            "name": args.inputs.get("name") or f"{args.name}-{rid}"}


def _aws_load_balancer(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    kind = "internal-" if args.inputs.get("internal") else ""
    return {**_aws_arn(args, rid), "dnsName": f"{kind}{args.inputs.get('name', args.name)}-{rid}.elb.{_aws_region()}.amazonaws.com"}


def _gcp_zones(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    region = args.args.get("region") or "europe-west3"
    return {"names": [f"{region}-{z}" for z in "cab"], "region": region, "id": region}  # unsorted, as the API may


def _gcp_image(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    ubuntu = args.args.get("family") == "ubuntu-2404-lts-amd64" and args.args.get("project") == "ubuntu-os-cloud"
    return {"selfLink": FAKE_UBUNTU_GCE_IMAGE if ubuntu else "projects/unexpected/global/images/not-ubuntu-2404",
            "name": FAKE_UBUNTU_GCE_IMAGE.rsplit("/", 1)[-1], "family": args.args.get("family")}


def _gcp_self_link(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    return {"selfLink": f"https://www.googleapis.com/compute/v1/projects/offline/{args.name}/{rid}"}


def _gcp_instance(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    nics = [dict(nic, networkIp=_fake_ip(args.name, "10.0.1.0/24"),
                 accessConfigs=[dict(ac, natIp=_fake_ip(args.name, "198.51.100.0/24"))
                                for ac in nic.get("accessConfigs", [])])
            for nic in args.inputs.get("networkInterfaces", [])]
    return {**_gcp_self_link(args, rid), "networkInterfaces": nics}


def _gcp_account(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    project = args.inputs.get("project") or "offline"
    email = f"{args.inputs['accountId']}@{project}.iam.gserviceaccount.com"
    return {"email": email, "name": f"projects/{project}/serviceAccounts/{email}"}


def _gcp_address(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    internal = args.inputs.get("addressType") == "INTERNAL"
    return {**_gcp_self_link(args, rid),
            "address": "10.0.1.250" if internal else _fake_ip(args.name, "203.0.113.0/24")}


def _gcp_role(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    return {"name": f"projects/{args.inputs.get('project') or 'offline'}/roles/{args.inputs['roleId']}"}


def _aws_access_key(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    return {"secret": f"offline-secret-access-key-{rid}"}


def _gcp_account_key(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    """The credentials JSON of a service account key, base64-encoded as the API returns it."""
    data = json.dumps({"type": "service_account", "private_key_id": rid, "private_key": "offline"})
    return {"privateKey": base64.b64encode(data.encode()).decode()}


CALL_RESULTS.update({
    "hcloud:index/getSshKeys:getSshKeys": lambda args: {"sshKeys": []},  # an empty Hetzner project
    "aws:index/getAvailabilityZones:getAvailabilityZones": _aws_zones,
    "aws:ec2/getAmi:getAmi": _aws_ami,
    "gcp:compute/getZones:getZones": _gcp_zones,
    "gcp:compute/getImage:getImage": _gcp_image,
})
RESOURCE_OUTPUTS.update({
    "aws:ec2/instance:Instance": _aws_instance,
    "aws:lb/loadBalancer:LoadBalancer": _aws_load_balancer,
    "aws:lb/targetGroup:TargetGroup": _aws_arn,
    "aws:iam/role:Role": _aws_arn,
    "aws:iam/instanceProfile:InstanceProfile": _aws_arn,
    "aws:kms/key:Key": _aws_arn,
    "aws:iam/user:User": _aws_arn,
    "aws:iam/accessKey:AccessKey": _aws_access_key,
    "gcp:serviceaccount/key:Key": _gcp_account_key,
    "gcp:compute/instance:Instance": _gcp_instance,
    "gcp:compute/instanceGroup:InstanceGroup": _gcp_self_link,
    "gcp:compute/instanceTemplate:InstanceTemplate": _gcp_self_link,
    "gcp:compute/address:Address": _gcp_address,
    "gcp:serviceaccount/account:Account": _gcp_account,
    "gcp:projects/iAMCustomRole:IAMCustomRole": _gcp_role,
})


# --- Azure fakes (providers/azure.py) -----------------------------------------------------------------
# ARM answers with the resource's name and id, and fills in the addresses and identity ids.
FAKE_AZURE_SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
FAKE_AZURE_TENANT = "00000000-0000-4000-8000-000000000002"
_AZURE_NAME_KEYS = ("resourceGroupName", "virtualNetworkName", "subnetName", "networkSecurityGroupName",
                    "securityRuleName", "publicIpAddressName", "networkInterfaceName", "loadBalancerName",
                    "vmName", "resourceName", "roleName")


def _azure_uuid(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def _azure_named(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    """`name` (the explicit ARM name, which is the last name input) and an ARM-shaped `id`."""
    own = [k for k in _AZURE_NAME_KEYS if args.inputs.get(k)]
    name = args.inputs[own[-1]] if own else args.name
    group = args.inputs.get("resourceGroupName", "offline")
    return {"name": name, "id": f"/subscriptions/{FAKE_AZURE_SUBSCRIPTION}/resourceGroups/{group}/providers/"
                                f"{args.typ.split(':')[1]}/{args.name}/{rid}"}


def _azure_public_ip(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    return {**_azure_named(args, rid), "ipAddress": _fake_ip(args.name, "198.51.100.0/24")}


def _azure_nic(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    configs = [dict(c, privateIPAddress=_fake_ip(args.name, "10.0.1.0/24"))
               for c in args.inputs.get("ipConfigurations", [])]
    return {**_azure_named(args, rid), "ipConfigurations": configs}


def _azure_load_balancer(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    named = _azure_named(args, rid)
    # A private frontend keeps its static address, or gets one from the subnet.
    frontends = [dict(f, id=f"{named['id']}/frontendIPConfigurations/{f.get('name')}",
                      **({"privateIPAddress": f.get("privateIPAddress") or "10.0.1.250"} if f.get("subnet") else {}))
                 for f in args.inputs.get("frontendIPConfigurations", [])]
    pools = [dict(p, id=f"{named['id']}/backendAddressPools/{p.get('name')}")
             for p in args.inputs.get("backendAddressPools", [])]
    return {**named, "frontendIPConfigurations": frontends, "backendAddressPools": pools}


def _azure_identity(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    return {**_azure_named(args, rid), "principalId": _azure_uuid(f"principal-{args.name}"),
            "clientId": _azure_uuid(f"client-{args.name}"), "tenantId": FAKE_AZURE_TENANT}


def _azure_vm(args: pulumi.runtime.MockResourceArgs, rid: str) -> dict[str, Any]:
    """A VM's or scale set's identity input is a list of identity ids; ARM answers with a map id -> principal."""
    identity = dict(args.inputs.get("identity") or {})
    if identity.get("userAssignedIdentities"):
        identity["userAssignedIdentities"] = {i: {} for i in identity["userAssignedIdentities"]}
    return {**_azure_named(args, rid), "identity": identity}


def _azure_client_config(args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
    return {"clientId": _azure_uuid("deployer"), "objectId": _azure_uuid("deployer-object"),
            "subscriptionId": FAKE_AZURE_SUBSCRIPTION, "tenantId": FAKE_AZURE_TENANT}


CALL_RESULTS.update({"azure-native:authorization:getClientConfig": _azure_client_config})
RESOURCE_OUTPUTS.update({
    **{f"azure-native:{t}": _azure_named for t in (
        "resources:ResourceGroup", "network:VirtualNetwork", "network:Subnet", "network:NetworkSecurityGroup",
        "network:SecurityRule", "authorization:RoleDefinition",
        "authorization:RoleAssignment")},
    "azure-native:compute:VirtualMachine": _azure_vm,
    "azure-native:compute:VirtualMachineScaleSet": _azure_vm,  # the same identity answer
    "azure-native:network:PublicIPAddress": _azure_public_ip,
    "azure-native:network:NetworkInterface": _azure_nic,
    "azure-native:network:LoadBalancer": _azure_load_balancer,
    "azure-native:managedidentity:UserAssignedIdentity": _azure_identity,
})


# The fakes every run uses. A test that replaces one (a Hetzner project already holding a key) gets a run of
# its own: the cache key is the config, and the same config under other fakes is another run.
_STANDARD_FAKES = (dict(CALL_RESULTS), dict(RESOURCE_OUTPUTS))


def _fakes_replaced() -> bool:
    return (CALL_RESULTS, RESOURCE_OUTPUTS) != _STANDARD_FAKES
