"""Limits no single stack sees: they count over every stack file of the repository.

- Let's Encrypt issues at most 50 new certificates per registered domain per 7 days
  (letsencrypt.org/docs/rate-limits, "New Certificates per Registered Domain"). Every stack here
  serves names under one registered domain, so a full re-create of all stacks must stay well inside
  it: the plan counts the production-issuer certificates of each stack and warns above a budget of
  half the limit. The staging issuer's certificates do not count (its limits are separate).
- ScyllaDB 2025.1 and later (2026.1 included) is source-available; its free tier is capped per
  organisation: 50 vCPUs over all servers of all clusters and 10 TB of disk of all ScyllaDB servers
  (scylladb.com/source-available-faq). Past it a commercial licence is needed, so the plan sums the
  ScyllaDB servers of every stack file (vCPUs of the pool's size class, the configured volumes).

Facts come from each stack file's validated config (config.load), not from a mock run per stack, so
the whole fleet costs one config load per stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Mapping

from components.data.placement import placement
from components.data.scylladb.cluster import racks
from components.services import gateway
from config import ConfigError
from config.errors import NAMESPACE
from config.load import load
from config.model import StackConfig
from tools.mockrun import Secret, stack_config, stacks

LETSENCRYPT_WEEKLY_LIMIT = 50
# Half the limit: room for a second re-create in the same week, or for a stack added by hand.
CERTIFICATE_BUDGET = LETSENCRYPT_WEEKLY_LIMIT // 2
PRODUCTION_ISSUER = "letsencrypt-production"
SCYLLA_FREE_VCPUS = 50
SCYLLA_FREE_STORAGE_GIB = 10 * 1000 ** 4 // 1024 ** 3  # 10 TB (decimal) in GiB: 9313
# Public suffixes of two labels that domains here could plausibly sit under (the Public Suffix List
# has thousands; offline, a domain under another one is grouped one label too high, never too low).
TWO_LABEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp", "ne.jp", "or.jp",
    "com.br", "com.cn", "com.mx", "co.za", "co.in", "co.kr", "com.tr", "com.sg", "com.hk",
})


def registered_domain(domain: str) -> str:
    """The name Let's Encrypt counts certificates under: the public suffix plus one label."""
    labels = domain.lower().rstrip(".").split(".")
    take = 3 if ".".join(labels[-2:]) in TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-take:])


@dataclass(frozen=True)
class StackFacts:
    stack: str
    domain: str
    issuer: str
    certificates: int  # ACME certificates the stack's gateway requests
    wildcard: bool
    scylla_members: int
    scylla_vcpus: int | None  # None: a pool sets a server type without a size class
    scylla_storage_gib: int

    @property
    def counted_certificates(self) -> int:
        """What counts against Let's Encrypt's production limit."""
        return self.certificates if self.issuer == PRODUCTION_ISSUER else 0


def _gib(size: str) -> int:
    number, unit = re.match(r"^(\d+)(Gi|Ti)$", size).groups()  # type: ignore[union-attr]  # validated
    return int(number) * (1024 if unit == "Ti" else 1)


def facts(stack: str, cfg: StackConfig) -> StackFacts:
    services = cfg.cluster_services
    wildcard = services.tls.dns01 is not None
    certificates = (len(gateway.tls_plan(cfg.domain, services.gateway.hostnames, wildcard))
                    if cfg.layers.cluster_services else 0)
    scylla = cfg.data_plane.scylladb
    members, vcpus, storage = 0, 0, 0
    if cfg.layers.data_plane and scylla.enabled:
        where = placement(cfg, "scylladb")
        members = sum(racks(where))
        vcpus = members * where.size.vcpus if where.size is not None else None
        storage = members * _gib(scylla.storage_size)
    return StackFacts(stack, cfg.domain, services.tls.issuer, certificates, wildcard, members, vcpus, storage)


@cache
def stack_file_facts(stack: str) -> StackFacts:
    """Facts of a stack file (read once per process: the files do not change under a plan)."""
    values, secret = stack_config(stack)
    return facts(stack, config_of(stack, values, secret))


def run_facts(stack: str, config: Mapping[str, Any]) -> StackFacts:
    """Facts of the config a mock run used (`Run.config`: secrets wrapped in `Secret`)."""
    secret = {key for key, value in config.items() if isinstance(value, Secret)}
    values = {key: value.value if isinstance(value, Secret) else value for key, value in config.items()}
    return facts(stack, config_of(stack, values, secret))


def config_of(stack: str, values: Mapping[str, Any], secret_keys: set[str] | frozenset[str]) -> StackConfig:
    """The validated config of namespaced values (`adplatform:<key>`), structured values decoded."""
    prefix = f"{NAMESPACE}:"
    raw = {key[len(prefix):]: json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
           for key, value in values.items() if key.startswith(prefix)}
    return load(stack, raw, {key[len(prefix):] for key in secret_keys if key.startswith(prefix)}).config


def fleet(current: StackFacts | None = None) -> tuple[list[StackFacts], list[str]]:
    """Facts of every stack file (`current` in place of the file of its name) and stacks that failed to load."""
    found, broken = [], []
    for stack in stacks():
        if current is not None and stack == current.stack:
            continue
        try:
            found.append(stack_file_facts(stack))
        except ConfigError as exc:
            broken.append(f"{stack}: {str(exc).splitlines()[0]}")
    if current is not None:
        found.append(current)
    return sorted(found, key=lambda f: f.stack), broken


def summary(current: StackFacts | None = None) -> dict[str, Any]:
    """The plan's `limits`: certificates per stack and per registered domain, ScyllaDB over all stacks, warnings."""
    stacks_facts, broken = fleet(current)
    by_domain: dict[str, int] = {}
    for f in stacks_facts:
        by_domain[registered_domain(f.domain)] = by_domain.get(registered_domain(f.domain), 0) + f.counted_certificates
    known_vcpus = [f.scylla_vcpus for f in stacks_facts if f.scylla_vcpus is not None]
    scylla = {"vcpus": sum(known_vcpus), "storageGiB": sum(f.scylla_storage_gib for f in stacks_facts),
              "unknownVcpus": [f.stack for f in stacks_facts if f.scylla_vcpus is None],
              "freeTier": {"vcpus": SCYLLA_FREE_VCPUS, "storageGiB": SCYLLA_FREE_STORAGE_GIB}}
    return {
        "stacks": {f.stack: {"registeredDomain": registered_domain(f.domain), "issuer": f.issuer,
                             "certificates": f.certificates, "countedCertificates": f.counted_certificates,
                             "wildcard": f.wildcard, "scyllaMembers": f.scylla_members,
                             "scyllaVcpus": f.scylla_vcpus, "scyllaStorageGiB": f.scylla_storage_gib}
                   for f in stacks_facts},
        "certificatesPerRegisteredDomain": by_domain,
        "scylladb": scylla,
        "warnings": _warnings(by_domain, scylla, broken),
    }


def _warnings(by_domain: dict[str, int], scylla: dict[str, Any], broken: list[str]) -> list[str]:
    found = [f"letsencrypt: the stacks under {domain} request {count} production certificates on a full "
             f"re-create, over the budget of {CERTIFICATE_BUDGET} (Let's Encrypt allows {LETSENCRYPT_WEEKLY_LIMIT} "
             "per registered domain per week): configure clusterServices.tls.dns01 (one wildcard certificate "
             "per stack) or use clusterServices.tls.issuer letsencrypt-staging outside production"
             for domain, count in sorted(by_domain.items()) if count > CERTIFICATE_BUDGET]
    if scylla["vcpus"] > SCYLLA_FREE_VCPUS or scylla["storageGiB"] > SCYLLA_FREE_STORAGE_GIB:
        found.append(f"scylladb: the stacks' ScyllaDB servers have {scylla['vcpus']} vCPUs and "
                     f"{scylla['storageGiB']} GiB of volumes together, over the free tier of ScyllaDB 2025.1+ "
                     f"({SCYLLA_FREE_VCPUS} vCPUs, 10 TB per organisation): a commercial licence is needed")
    found += [f"scylladb: {', '.join(scylla['unknownVcpus'])}: a ScyllaDB pool sets a server type without a size "
              "class, its vCPUs are not counted against the free tier"] if scylla["unknownVcpus"] else []
    found += [f"limits: stack {item} (left out of the counts)" for item in broken]
    return found
