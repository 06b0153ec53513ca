"""Server providers behind one interface (providers/base.py).

Each provider module is imported on first `get(name)`, not here: their cloud SDKs (pulumi_aws, pulumi_gcp,
pulumi_azure_native) take over a second to import, which a stack on another provider never needs."""

from __future__ import annotations

from importlib import import_module

from config.catalog import PROVIDERS
from providers.base import Infrastructure, Node, Provider, ServerCatalog, check_size_mapping

# name -> (module, class) of its implementation.
_MODULES: dict[str, tuple[str, str]] = {
    "hetzner": ("providers.hetzner", "Hetzner"),
    "aws": ("providers.aws", "Aws"),
    "gcp": ("providers.gcp", "Gcp"),
    "azure": ("providers.azure", "Azure"),
    "baremetal": ("providers.baremetal", "BareMetalProvider"),
}
assert set(_MODULES) == set(PROVIDERS), "config.catalog.PROVIDERS must list exactly the registered providers"

_LOADED: dict[str, Provider] = {}


def get(name: str) -> Provider:
    """The provider called `name` (KeyError for an unknown one), its module imported on first use."""
    if name not in _LOADED:
        module, cls = _MODULES[name]
        provider = getattr(import_module(module), cls)()
        check_size_mapping(name, provider.server_types)
        _LOADED[name] = provider
    return _LOADED[name]


def catalog(name: str) -> ServerCatalog | None:
    """The provider's catalog of known server types, for providers that keep one (Hetzner); the others
    accept any well-formed type name and leave it to the cloud's API."""
    return getattr(get(name), "catalog", None) if name in _MODULES else None


__all__ = ["Infrastructure", "Node", "Provider", "catalog", "get"]
