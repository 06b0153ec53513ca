"""SKELETON (issue 5, being written): OpenBao/Vault and External Secrets Operator."""
from __future__ import annotations
from dataclasses import dataclass, field
import pulumi


@dataclass
class SecretStore:
    name: str
    ready: list[pulumi.Resource] = field(default_factory=list)


def namespaces(ctx):
    return []


def install(ctx, spaces, after) -> SecretStore:
    return SecretStore("openbao")
