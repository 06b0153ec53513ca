"""The harness' fast (de)serialization (tools/mockrpc.py) answers exactly as the SDK's own functions do: the same
values, the same dependencies, the same errors, on the inputs where the two could part (secrets, nested Outputs,
unknowns in preview, None and empty values, Resource references, assets, typed inputs and outputs)."""

from __future__ import annotations

import asyncio
import enum
import typing
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc, settings

from tools import mockrpc, mockrun

SECRET_SIG = {rpc._special_sig_key: rpc._special_secret_sig}
ASSET = {rpc._special_sig_key: rpc._special_asset_sig, "text": "body"}


def test_the_harness_uses_the_fast_paths_and_restores_the_sdks():
    ours = (mockrpc.serialize_property, mockrpc.deserialize_properties, mockrpc.deserialize_property,
            mockrpc.translate_output_properties)
    sdks = (mockrpc.sdk_serialize_property, mockrpc.sdk_deserialize_properties, mockrpc.sdk_deserialize_property,
            mockrpc.sdk_translate_output_properties)
    names = ("serialize_property", "deserialize_properties", "deserialize_property", "translate_output_properties")
    assert tuple(getattr(rpc, name) for name in names) == ours
    with mockrun.sdk_originals():
        assert tuple(getattr(rpc, name) for name in names) == sdks
    assert tuple(getattr(rpc, name) for name in names) == ours


def _normal(value: Any) -> Any:
    """A comparable form: Unknowns, Resources, assets and output types by what they are and hold, order kept."""
    if isinstance(value, pulumi.output.Unknown):
        return "<unknown>"
    if isinstance(value, pulumi.Resource):
        return ("<resource>", id(value))
    if isinstance(value, pulumi.Asset):
        return (type(value).__name__, vars(value))
    if isinstance(value, enum.Enum):
        return (type(value).__name__, value.value)
    if isinstance(value, dict):
        return (type(value).__name__, [(k, _normal(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_normal(v) for v in value])
    return (type(value).__name__, value)


def _outcome(call: Any) -> Any:
    try:
        return "ok", _normal(call())
    except Exception as error:  # noqa: BLE001 (the same error is the answer to compare)
        return type(error).__name__, str(error)


@pytest.fixture(params=[False, True], ids=["update", "preview"])
def mocked(request):
    """A mock monitor (resource references and secrets supported) in an update or a preview."""
    pulumi.runtime.set_mocks(mockrun.OfflineMocks(), project="test", stack="test", preview=request.param)
    yield request.param
    pulumi.runtime.set_mocks(mockrun.OfflineMocks(), project="test", stack="test", preview=False)


def _run(make: Any) -> Any:
    """Run `make()` (a coroutine) on a loop of its own; the Outputs made meanwhile are forgotten."""
    before = set(settings.SETTINGS.outputs)
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()
        settings.SETTINGS.outputs.intersection_update(before)


async def _known(value: Any) -> Any:
    return value


def _resource() -> Any:
    res = object.__new__(pulumi.CustomResource)
    res._type, res._name, res._remote = "test:index:Thing", "thing", False
    res.__dict__["urn"] = pulumi.Output.from_input("urn:pulumi:test::test::test:index:Thing::thing")
    res.__dict__["id"] = pulumi.Output.from_input("id-1")
    res._childResources = set()
    return res


def _serialize_samples() -> list[tuple[Any, Any]]:
    """(value, declared type) pairs; made on the running loop (Outputs hold its futures)."""
    res = _resource()
    unknown = pulumi.Output(set(), _known(None), _known(False))
    secret_unknown = pulumi.Output(set(), _known(None), _known(False), _known(True))
    with_deps = pulumi.Output({res}, _known("from a resource"), _known(True))
    helm = {"controller": {"replicas": 2, "args": ["--a", "--b"], "resources": {}, "tolerations": [],
                           "nodeSelector": None, "ratio": 0.5, "enabled": True, "ü": "grüße"}}
    port = k8s.core.v1.ContainerPortArgs
    return [
        (None, None), ("", None), (0, None), (False, None), (2.5, str), ([], None), ({}, None), ((1, "x"), None),
        (helm, None), (helm, typing.Mapping[str, typing.Any]), ([helm, [helm]], None),
        ({"container_port": 80, "host_ip": None, "name": "http"}, port),  # translated to camelCase by its input type
        ([{"container_port": 80}], typing.Sequence[port]), ({"container_port": 80}, pulumi.Input[port]),
        ({"container_port": 80}, typing.Union[port, typing.Sequence[str]]),  # a union: the member its shape selects
        (["a"], typing.Union[port, typing.Sequence[str]]),
        ({"container_port": 80}, typing.Mapping[str, str]), ({1: "x"}, typing.Dict[int, str]),
        (["not", "a", "string"], str), ({"a": 1}, int),  # refused by the SDK: the same error
        (["x", 3], typing.Optional[pulumi.Input[typing.Sequence[pulumi.Input[str]]]]),
        (pulumi.Output.from_input("known"), None), (pulumi.Output.secret({"password": "s"}), None), (unknown, None),
        (secret_unknown, None), (with_deps, None), ({"nested": [1, {"deep": pulumi.Output.secret("s")}]}, None),
        ({"list": [unknown, "x"], "known": "y"}, None), (pulumi.Output.from_input({"a": [1, None]}), None),
        (res, None), ({"ref": res, "plain": "x"}, None), (pulumi.StringAsset("text"), None),
        (_known({"awaited": ["x"]}), None), (pulumi.output.UNKNOWN, None), ({"unknown": pulumi.output.UNKNOWN}, None),
        ({"set": {1, 2}}, None),  # no protobuf value: refused by both
    ]


def test_serialize_property_answers_like_the_sdks(mocked):
    def transformer(key: str) -> str:
        return f"t_{key}"

    async def answers(function: Any) -> list:
        results = []
        for value, typ in _serialize_samples():  # each function its own (an awaitable is awaited once)
            deps: list = []
            try:
                answer = "ok", _normal(await function(value, deps, "prop", None, transformer, typ))
            except Exception as error:  # noqa: BLE001
                answer = type(error).__name__, str(error)
            results.append((answer, [type(d).__name__ for d in deps]))
        return results

    async def both() -> tuple:
        return await answers(mockrpc.sdk_serialize_property), await answers(mockrpc.serialize_property)

    sdk, ours = _run(both)
    assert len(ours) == len(sdk) > 30
    for index, (answer, sdk_answer) in enumerate(zip(ours, sdk)):
        assert answer == sdk_answer, f"sample {index}"


def test_serialize_properties_translates_typed_inputs_like_the_sdk(mocked):
    """A whole resource's inputs: top-level names and nested input types translated, None left out."""
    def props() -> dict:  # made on the running loop, once per function
        return {"metadata": {"name": "x", "labels": {"app_name": "keep"}, "owner_references": None},
                "spec": {"containers": [{"name": "c", "image_pull_policy": "Always",
                                         "env": [{"name": "A", "value": pulumi.Output.secret("s")}]}]},
                "api_version": "v1", "kind": None}

    async def both():
        answers = []
        for function in (mockrpc.sdk_serialize_property, mockrpc.serialize_property):
            rpc.serialize_property = function  # serialize_properties calls it by this name
            try:
                deps: dict = {}
                struct = await rpc.serialize_properties(props(), deps, None, None, k8s.core.v1.PodArgs)
                answers.append((struct, deps))
            finally:
                rpc.serialize_property = mockrpc.serialize_property
        return answers

    (sdk, sdk_deps), (ours, our_deps) = _run(both)
    assert ours == sdk and list(ours.keys()) == list(sdk.keys()) and our_deps == sdk_deps
    assert "imagePullPolicy" in str(ours), "the input type's camelCase names"


def _struct(value: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _list(items: list) -> struct_pb2.ListValue:
    values = struct_pb2.ListValue()
    values.extend(items)
    return values


DESERIALIZE_SAMPLES = [
    {}, {"a": None, "b": "", "c": 0, "d": 1.5, "e": True, "f": False, "g": [None, 1, "x", [], {}]},
    {"u": rpc.UNKNOWN, "list": [rpc.UNKNOWN, "x"], "nested": {"u": rpc.UNKNOWN}},
    {"secret": {**SECRET_SIG, "value": "s"}, "plain": "x"},  # a secret field: the dict made secret around it
    {"deep": {"items": [{"k": {**SECRET_SIG, "value": [1, 2]}}], "other": "y"}},  # pushed up level by level
    {**SECRET_SIG, "value": {"whole": "secret"}}, {"asset": ASSET, "list": [ASSET]},
    {"__internal": "x", "__provider": "p", "_single": 1, "x__y": 2},
    {"z": 1, "a": 2, "m": {"b": 1, "a": 2}},  # key order kept
]


@pytest.mark.parametrize("keep_unknowns", [None, True])
@pytest.mark.parametrize("keep_internal", [True, False])
def test_deserialization_answers_like_the_sdks(mocked, keep_unknowns, keep_internal):
    args = (keep_unknowns, keep_internal)
    for sample in DESERIALIZE_SAMPLES:
        struct = _struct(sample)
        assert _outcome(lambda: mockrpc.deserialize_properties(struct, *args)) == \
            _outcome(lambda: mockrpc.sdk_deserialize_properties(struct, *args)), sample
        for value in (struct, _list([sample, sample]), _list([]), rpc.UNKNOWN, "text", 1.0, None):
            assert _outcome(lambda: mockrpc.deserialize_property(value, *args)) == \
                _outcome(lambda: mockrpc.sdk_deserialize_property(value, *args)), (sample, value)


def test_an_unset_value_is_refused_as_the_sdk_refuses_it():
    struct = struct_pb2.Struct()
    struct.fields["unset"].CopyFrom(struct_pb2.Value())
    assert _outcome(lambda: mockrpc.deserialize_properties(struct)) == \
        _outcome(lambda: mockrpc.sdk_deserialize_properties(struct)) == ("ValueError", "Value not set")


class Color(str, enum.Enum):
    RED = "red"


def _camel_to_snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


TRANSLATE_SAMPLES: list[tuple[Any, Any]] = [
    (None, None), ("x", None), (3.0, int), (3.5, typing.Optional[int]), (True, int), ("red", Color),
    ("red", typing.Optional[Color]), (None, Color), ([], None), ({}, None), ({"someKey": {"innerKey": [1]}}, None),
    ({"containerPort": 80.0, "hostIP": None, "name": "http"}, k8s.core.v1.outputs.ContainerPort),  # an output type
    ([{"containerPort": 80.0}], typing.Sequence[k8s.core.v1.outputs.ContainerPort]),
    ({"metadata": {"name": "x", "ownerReferences": [{"apiVersion": "v1", "blockOwnerDeletion": True}]},
      "spec": {"containers": [{"name": "c", "imagePullPolicy": "Always"}]}}, k8s.core.v1.outputs.PodTemplateSpec),
    ({"appName": "keep"}, typing.Mapping[str, str]), ({"a": {"b": 1.0}}, typing.Mapping[str, typing.Mapping[str, int]]),
    ({"a": 1}, dict), ({"a": 1}, typing.Any), ({"a": 1}, typing.Dict[int, str]),
    ({**SECRET_SIG, "value": {"innerKey": 1}}, None), ({"wrapped": {**SECRET_SIG, "value": 1.0}}, typing.Mapping[str, int]),
    ({"containerPort": 80.0}, typing.Union[k8s.core.v1.outputs.ContainerPort, typing.Sequence[str]]),
    ({"a": 1}, str), ([1], str), ((1, 2), None), (pulumi.output.Unknown(), None),  # refused, or left as they are
]


@pytest.mark.parametrize("by_metadata", [False, True])
def test_output_translation_answers_like_the_sdks(by_metadata):
    for output, typ in TRANSLATE_SAMPLES:
        for mismatch_is_none in (False, True):
            args = (_camel_to_snake, typ, by_metadata, None, mismatch_is_none)
            assert _outcome(lambda: mockrpc.translate_output_properties(output, *args)) == \
                _outcome(lambda: mockrpc.sdk_translate_output_properties(output, *args)), (output, typ)


def test_plain_data_never_reaches_the_sdks_functions(monkeypatch):
    """What makes a run cheaper: a resource's plain inputs serialized without a coroutine per nested value, and
    deserialized and translated to typed outputs in one pass (the SDK's functions only for what is not plain)."""
    calls = []
    for name in ("sdk_serialize_property", "sdk_deserialize_properties", "sdk_deserialize_property",
                 "sdk_translate_output_properties"):
        monkeypatch.setattr(mockrpc, name, lambda *args, name=name: calls.append(name))
    helm = {"controller": {"replicas": 2, "args": ["--a"], "resources": {}, "nodeSelector": None}, "list": [[{}]]}
    port = {"container_port": 80, "name": "http"}
    assert _run(lambda: mockrpc.serialize_property(port, [], "port", None, None, k8s.core.v1.ContainerPortArgs)) == \
        {"containerPort": 80, "name": "http"}
    assert _run(lambda: mockrpc.serialize_property(helm, [], "values", None, None, None)) == helm
    struct = _struct({"values": helm, "ports": [{"containerPort": 80}]})
    assert mockrpc.deserialize_properties(struct) == {  # numbers as floats, None fields left out (the SDK's answer)
        "values": {"controller": {"replicas": 2.0, "args": ["--a"], "resources": {}}, "list": [[{}]]},
        "ports": [{"containerPort": 80.0}]}
    typed = mockrpc.translate_output_properties([{"containerPort": 80.0}], lambda k: k,
                                                typing.Sequence[k8s.core.v1.outputs.ContainerPort], True)
    assert typed[0].container_port == 80 and type(typed[0].container_port) is int
    assert calls == []
