"""The data plane as a stack output: hosts, ports and Secret names, never a credential value."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi

from components.data import DataPlane
from components.data.endpoints import Credentials

# Endpoint fields that hold credential values or resources: left out of the output.
_HIDDEN = {"access_key_id", "secret_access_key", "identities", "ready"}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _plain(value: Any) -> Any:
    if isinstance(value, Credentials):
        return {"secret": value.secret, "namespace": value.namespace, "keys": list(value.keys)}
    if dataclasses.is_dataclass(value):
        return {_camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in _HIDDEN}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pulumi.Output):
        raise TypeError("an endpoint field holds an Output: hide it or make it a plain value")
    return value


def data_plane_summary(data: DataPlane) -> dict[str, Any]:
    """Each store's endpoint (connection info) and shape (replicas, pools, resources, storage, backup)."""
    endpoints = {f.name: getattr(data.endpoints, f.name) for f in dataclasses.fields(data.endpoints)}
    return {_camel(store): {"endpoint": _plain(endpoints.get(store)), "shape": _plain(shape)}
            for store, shape in data.shape.items()}
