"""SKELETON (issue 5, being written): cert-manager and the Let's Encrypt ClusterIssuers."""
from __future__ import annotations
from dataclasses import dataclass, field
import pulumi


@dataclass
class Certs:
    issuer: str
    ready: list[pulumi.Resource] = field(default_factory=list)


def namespaces(ctx):
    return []


def install(ctx, spaces, after) -> Certs:
    return Certs(issuer=ctx.settings.tls.issuer)
