"""Server providers behind one interface (providers/base.py)."""

from __future__ import annotations

from config.catalog import PROVIDERS
from providers.aws import Aws
from providers.azure import Azure
from providers.baremetal import BareMetalProvider
from providers.base import Infrastructure, Node, Provider, ServerCatalog, check_size_mapping
from providers.gcp import Gcp
from providers.hetzner import Hetzner

_REGISTRY: dict[str, Provider] = {"hetzner": Hetzner(), "aws": Aws(), "gcp": Gcp(), "azure": Azure(),
                                  "baremetal": BareMetalProvider()}
assert set(_REGISTRY) == set(PROVIDERS), "config.catalog.PROVIDERS must list exactly the registered providers"
for _name, _provider in _REGISTRY.items():
    check_size_mapping(_name, _provider.server_types)


def get(name: str) -> Provider:
    return _REGISTRY[name]


def catalog(name: str) -> ServerCatalog | None:
    """The provider's catalog of known server types, for providers that keep one (Hetzner); the others
    accept any well-formed type name and leave it to the cloud's API."""
    return getattr(_REGISTRY.get(name), "catalog", None)


__all__ = ["Infrastructure", "Node", "Provider", "catalog", "get"]
