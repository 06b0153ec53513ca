"""Synchronous fast paths for the Pulumi SDK's (de)serialization of plain data (pulumi/runtime/rpc.py), for the
mock harness (tools/mockrun.py registers them through its `_patch`, so `sdk_originals()` restores the SDK's own).

What they replace: every resource's inputs go through rpc.serialize_property (async: one coroutine per nested
value, ~28,000 a production run, nearly all of them plain dicts, lists and strings of Helm values and Kubernetes
specs), the mock monitor deserializes them (rpc.deserialize_properties, one call per nested value), and the mock
answers them back as the resource's outputs, deserialized again and translated to their typed outputs
(rpc.translate_output_properties, a `_Path` per value for error messages that are never raised).

Each function here follows the SDK's function branch for branch for the values it takes (exact str, int, float,
bool, None, and exact dicts, lists and tuples of them, or protobuf Structs and ListValues without a signature key),
and hands anything else, or any value whose SDK treatment would raise, to the SDK's own function with the original
arguments (which then gives the SDK's answer or error). Nothing is done before that hand-off that leaves a trace:
plain data adds no dependencies, and the fast paths only build new values. tests/test_mockrpc.py compares each with
the SDK's function on tricky inputs, and tests/test_mockrun.py a whole run made with them against the SDK's.
"""

from __future__ import annotations

import inspect
import typing
from collections import abc
from enum import Enum
from typing import Any, Callable, Optional, get_args, get_origin

from google.protobuf import struct_pb2
from pulumi import _types
from pulumi.output import Unknown
from pulumi.runtime import rpc, settings

# The SDK's own functions, taken before the harness replaces them: what anything not plain is handed to.
sdk_serialize_property = rpc.serialize_property
sdk_deserialize_properties = rpc.deserialize_properties
sdk_deserialize_property = rpc.deserialize_property
sdk_translate_output_properties = rpc.translate_output_properties

# Exact types serialize_property hands back as they are, and translate_output_properties too unless an enum or int
# is asked for. bool is listed apart from int: the SDK's checks are isinstance checks, which a bool passes as an int.
_SCALARS = frozenset({str, int, float, bool, type(None)})
_MAPPING_ORIGINS = (dict, typing.Dict, abc.Mapping, typing.Mapping)  # the SDK's list of "a dict type"
_SIG = rpc._special_sig_key


class _NotPlain(Exception):
    """A value (or a type) the fast path leaves to the SDK's function."""


def _none(_key: str) -> None:
    return None


def _lookup(names: dict[str, str]) -> Callable[[str], str]:
    return lambda key: names.get(key) or key


def _const(typ: Any) -> Callable[[str], Any]:
    return lambda _key: typ


# --- serialize_property ------------------------------------------------------------------------------------------

def _unwrapped(typ: Any) -> Any:
    """The type serialize_property goes on with: its `unwrap_type` (remembered per type under the harness:
    mockrun._unwrap_type), Any as None."""
    unwrapped = _types.unwrap_type(typ)
    return None if unwrapped is Any else unwrapped


# Per declared mapping type (by identity): its key translator and per-key type (None for the input transformer and
# no types), or None for a union, whose member depends on each value.
_mapping_plans: dict[int, tuple[Any, Any]] = {}
_INPUT_TRANSFORMER = object()  # a plan's "translate with the input_transformer given"


def _mapping_plan(typ: Any) -> Any:
    known = _mapping_plans.get(id(typ))
    if known is None or known[0] is not typ:
        plan = None
        if not _types.is_discriminated_union(typ):
            plan = _dict_plan(typ)
        known = _mapping_plans[id(typ)] = (typ, plan)
    return known[1]


def _dict_plan(typ: Any) -> tuple[Any, Callable[[str], Any]]:
    """serialize_property's Mapping branch for a declared (non-union) type, in its order: an input type's names and
    types, a dict[str, T]'s T with keys untranslated, or no translation at all for any other type."""
    if _types.is_input_type(typ):
        return _lookup(_types.input_type_py_to_pulumi_names(typ)), _types.input_type_types(typ).get
    if typ is dict or get_origin(typ) in _MAPPING_ORIGINS:
        args = get_args(typ)
        if len(args) == 2 and args[0] is str:
            return None, _const(args[1])
        return _INPUT_TRANSFORMER, _none
    return None, _none


def _dict_keys(typ: Any, value: dict, input_transformer: Optional[Callable[[str], str]]) -> tuple[Any, Any]:
    """serialize_property's key translator and per-key type for a mapping `value` declared as `typ`: with no type,
    the input transformer's names; for a union, the plan of the member the value's shape selects (the union's own
    plan if none or several match)."""
    if typ is None:
        return input_transformer, _none
    plan = _mapping_plan(typ)
    if plan is None:
        case = _types.reduce_discriminated_union(typ, value, _types._py_name_for)
        plan = _dict_plan(typ if case is None else case)
    translate, get_type = plan
    return (input_transformer if translate is _INPUT_TRANSFORMER else translate), get_type


def _serialize_plain(value: Any, typ: Any, input_transformer: Optional[Callable[[str], str]]) -> Any:
    """serialize_property(value, ...) for plain data (the value itself, or new dicts and lists of the same); raises
    _NotPlain for anything else. Of serialize_property's branches plain data reaches only these: a list or tuple
    (a Sequence: a list of its items, each with the list type's element type), a dict (a Mapping) and a scalar
    (isLegalProtobufValue: itself). No Output, awaitable, Resource, asset, archive, Unknown or input type among
    them, so no dependency is recorded and nothing is awaited."""
    kind = type(value)
    if kind in _SCALARS:  # the SDK unwraps the type first, which never raises (its asserts hold for any typing form)
        return value
    typ = _unwrapped(typ) if typ else typ
    if kind is list or kind is tuple:
        element_type = rpc._get_list_element_type(typ)  # raises (an unexpected type) as the SDK's call does
        return [_serialize_plain(item, element_type, input_transformer) for item in value]
    if kind is dict:
        translate, get_type = _dict_keys(typ, value, input_transformer)
        if translate is not None and settings.excessive_debug_output:
            raise _NotPlain  # the SDK logs each translated key
        serialized = {}
        for key in value:
            translated = key if translate is None else translate(key)
            serialized[translated] = _serialize_plain(value[key], get_type(translated), input_transformer)
        return serialized
    raise _NotPlain


async def serialize_property(value: Any, deps: Any, property_key: Any, resource_obj: Any = None,
                             input_transformer: Any = None, typ: Any = None, keep_output_values: bool = False,
                             exclude_resource_refs_from_deps: bool = False, return_protobuf_value: bool = False) -> Any:
    """rpc.serialize_property: plain data answered without a coroutine per nested value; anything else (and what
    the SDK would refuse) by the SDK's function, whose recursion comes back here for each nested value."""
    if not return_protobuf_value:
        try:
            return _serialize_plain(value, typ, input_transformer)
        except Exception:  # noqa: BLE001 (_NotPlain, or an error the SDK's function raises in its own words)
            pass
    return await sdk_serialize_property(value, deps, property_key, resource_obj, input_transformer, typ,
                                        keep_output_values, exclude_resource_refs_from_deps, return_protobuf_value)


# --- deserialize_properties / deserialize_property ---------------------------------------------------------------

def _unknown(keep_unknowns: Optional[bool]) -> Any:
    """What deserialize_property makes of the UNKNOWN sentinel."""
    return Unknown() if settings.is_dry_run() or keep_unknowns else None


def _secret_pushed_up(values: Any) -> bool:
    """Whether any of `values` is a wrapped secret (deserialize_property's `any(is_rpc_secret(v) ...)`), asked only
    of dicts that carry the signature key: no other value can be one."""
    return any(isinstance(v, dict) and _SIG in v and rpc.is_rpc_secret(v) for v in values)


def _from_value(value: struct_pb2.Value, keep_unknowns: Optional[bool], keep_internal: Optional[bool]) -> Any:
    """deserialize_property of what a Struct or ListValue hands out for `value` (protobuf's _GetStructValue)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        text = value.string_value
        return _unknown(keep_unknowns) if text == rpc.UNKNOWN else text
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "null_value":
        return None
    if kind == "struct_value":
        return _from_struct_property(value.struct_value, keep_unknowns, keep_internal)
    if kind == "list_value":
        return _from_list(value.list_value, keep_unknowns, keep_internal)
    raise _NotPlain  # a Value with nothing set: protobuf raises, through the SDK's call


def _from_struct(struct: struct_pb2.Struct, keep_unknowns: Optional[bool], keep_internal: Optional[bool]) -> dict:
    """deserialize_properties of a Struct without the signature key: each field deserialized, those that come out
    None left out, and internal ones (`__x` but `__provider`) too when keep_internal is False."""
    output = {}
    for key, value in struct.fields.items():
        if keep_internal is False and key.startswith("__") and key != "__provider":
            continue
        item = _from_value(value, keep_unknowns, keep_internal)
        if item is not None:
            output[key] = item
    return output


def _from_struct_property(struct: struct_pb2.Struct, keep_unknowns: Optional[bool], keep_internal: Optional[bool]) -> Any:
    """deserialize_property of a Struct: a secret field makes the whole dict secret (its values unwrapped). A Struct
    with the signature key (asset, archive, secret, resource, output value) is the SDK's."""
    if _SIG in struct.fields:
        return sdk_deserialize_property(struct, keep_unknowns, keep_internal)
    props = _from_struct(struct, keep_unknowns, keep_internal)
    if _secret_pushed_up(props.values()):
        return rpc.wrap_rpc_secret({k: rpc.unwrap_rpc_secret(v) for k, v in props.items()})
    return props


def _from_list(values: struct_pb2.ListValue, keep_unknowns: Optional[bool], keep_internal: Optional[bool]) -> Any:
    """deserialize_property of a ListValue: a list (None items kept), made secret as a whole if an item is."""
    items = [_from_value(value, keep_unknowns, keep_internal) for value in values.values]
    if _secret_pushed_up(items):
        return rpc.wrap_rpc_secret([rpc.unwrap_rpc_secret(v) for v in items])
    return items


def deserialize_properties(props_struct: Any, keep_unknowns: Optional[bool] = None,
                           keep_internal: Optional[bool] = True) -> Any:
    """rpc.deserialize_properties: a Struct without the signature key read field by field in one pass; anything
    else by the SDK's function."""
    if type(props_struct) is struct_pb2.Struct and _SIG not in props_struct.fields:
        try:
            return _from_struct(props_struct, keep_unknowns, keep_internal)
        except _NotPlain:
            pass
    return sdk_deserialize_properties(props_struct, keep_unknowns, keep_internal)


def deserialize_property(value: Any, keep_unknowns: Optional[bool] = None, keep_internal: Optional[bool] = True) -> Any:
    """rpc.deserialize_property: a Struct or ListValue read in one pass; anything else by the SDK's function."""
    try:
        if type(value) is struct_pb2.Struct:
            return _from_struct_property(value, keep_unknowns, keep_internal)
        if type(value) is struct_pb2.ListValue:
            return _from_list(value, keep_unknowns, keep_internal)
    except _NotPlain:
        pass
    return sdk_deserialize_property(value, keep_unknowns, keep_internal)


# --- translate_output_properties ---------------------------------------------------------------------------------

# Per target type (by identity): the type translate_output_properties goes on with (unwrap_optional_type, Any as
# None), and what it does with a value of that type: whether an enum is made of a scalar, a dict's handling.
_Plan = tuple[Any, bool, str, Any]
_translate_plans: dict[int, tuple[Any, _Plan]] = {}
_UNION, _OUTPUT_TYPE, _MAPPING, _MISMATCH = "union", "output type", "mapping", "mismatch"


def _translate_plan(typ: Any) -> _Plan:
    known = _translate_plans.get(id(typ))
    if known is None or known[0] is not typ:
        unwrapped = _types.unwrap_optional_type(typ) if typ else typ
        if unwrapped is Any:
            unwrapped = None
        enum = bool(unwrapped) and inspect.isclass(unwrapped) and issubclass(unwrapped, Enum)
        if unwrapped is None:
            mapping, value_type = _MAPPING, None
        elif _types.is_discriminated_union(unwrapped):
            mapping, value_type = _UNION, None
        elif _types.is_output_type(unwrapped):
            mapping, value_type = _OUTPUT_TYPE, _types.output_type_types(unwrapped)
        elif unwrapped is dict or get_origin(unwrapped) in _MAPPING_ORIGINS:
            args = get_args(unwrapped)  # a dict[str, T]: T for each value; any other dict type: values untyped
            mapping, value_type = _MAPPING, (args[1] if len(args) == 2 and args[0] is str else None)
        else:
            mapping, value_type = _MISMATCH, None
        known = _translate_plans[id(typ)] = (typ, (unwrapped, enum, mapping, value_type))
    return known[1]


def _translate_plain(output: Any, transformer: Callable[[str], str], typ: Any, by_metadata: bool) -> Any:
    """translate_output_properties(output, transformer, typ, by_metadata) for deserialized plain data, without the
    `_Path` it threads through for error messages; raises _NotPlain where the SDK would unwrap a secret, reduce a
    union, refuse a dict for its type (or return None for it), or for values of any other kind."""
    kind = type(output)
    if kind in _SCALARS and typ is None:
        return output
    unwrapped, enum, mapping, value_type = _translate_plan(typ)
    if kind is dict:
        if _SIG in output or mapping == _UNION or mapping == _MISMATCH:
            raise _NotPlain  # a wrapped secret (is_rpc_secret), a union to reduce, a type that is no dict
        if mapping == _OUTPUT_TYPE:
            translated = {k: _translate_plain(v, transformer, value_type.get(k), by_metadata) for k, v in output.items()}
            return _types.output_type_from_dict(unwrapped, translated)
        if value_type is not None and by_metadata:  # a user-defined dict[str, T]: its keys kept
            return {k: _translate_plain(v, transformer, value_type, by_metadata) for k, v in output.items()}
        return {transformer(k): _translate_plain(v, transformer, value_type, by_metadata) for k, v in output.items()}
    if kind is list:
        element_type = rpc._get_list_element_type(unwrapped)  # raises for a type that is no list, as the SDK's
        return [_translate_plain(v, transformer, element_type, by_metadata) for v in output]
    if kind in _SCALARS:
        if enum and kind is not type(None):
            return unwrapped(output)
        if kind is float and unwrapped is int:
            return int(output)
        return output
    raise _NotPlain


def translate_output_properties(output: Any, output_transformer: Callable[[str], str], typ: Optional[type] = None,
                                transform_using_type_metadata: bool = False, path: Any = None,
                                return_none_on_dict_type_mismatch: bool = False) -> Any:
    """rpc.translate_output_properties: plain data translated in one pass; anything else, and anything the SDK
    refuses (its error names the path), by the SDK's function, whose recursion comes back here per value."""
    try:
        return _translate_plain(output, output_transformer, typ, transform_using_type_metadata)
    except Exception:  # noqa: BLE001 (_NotPlain, or an error the SDK's function raises with its path)
        return sdk_translate_output_properties(output, output_transformer, typ, transform_using_type_metadata, path,
                                               return_none_on_dict_type_mismatch)
