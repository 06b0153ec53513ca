"""How an ad service reaches each data store, from the data plane's endpoints (components/data/endpoints.py).

Each service has a login of its own in every store it uses (the data plane creates one per consumer from
config/consumers.py), copied into the services' namespace as `<service>-<store>` (`Credentials.copy_to`) and
read by that service's pods only, through `secretKeyRef`. The services share one team namespace, so the
Secrets are apart by name, not by namespace: whoever may read Secrets there reads them all (docs/security.md).
Hosts, ports and pod labels come from the endpoint, never from names written here, so a renamed store moves its
consumers with it.

Redpanda's listeners use the data plane's CA, behind the ClusterIssuer the endpoint names (`ca_issuer`). The
services' namespace gets the CA certificate the way cert-manager hands it out: a client Certificate of its own
from that issuer, whose Secret carries `ca.crt` (the CA issuer writes it into every Secret it issues), kept
current by cert-manager. Nothing reads the redpanda namespace's Secrets, and nothing waits for a cluster read.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.ads.context import AdsContext, Egress, StoreWiring
from components.data.context import wait_for
from components.data.endpoints import ClickHouseEndpoint, DragonflyEndpoint, RedpandaEndpoint, ScyllaEndpoint
from components.data.clickhouse.users import database_of
from components.data.dragonfly import key_prefix
from components.data.scylladb import CQL_SHARD_AWARE_PORT
from components.layer import Credentials

REDPANDA_CA_SECRET = "redpanda-ca"  # in the services' namespace: the Certificate's Secret; pods mount ca.crt only
REDPANDA_CA_KEY = "ca.crt"
REDPANDA_CA_DIR = "/etc/adplatform/redpanda"
# The client certificate is only the vehicle of ca.crt (the listeners do not ask for client certificates): short
# enough that a renewed CA reaches the namespace within weeks, long enough that renewals are rare.
CA_CLIENT_DURATION = "2160h0m0s"  # 90 days
CA_CLIENT_RENEW_BEFORE = "720h0m0s"  # 30 days
CA_READY_SECONDS = 300


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def plain_env(name: str, value: object) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def credential_secret(service: str, store: str) -> str:
    """The Secret in the services' namespace holding `service`'s own login to `store`."""
    return f"{service}-{store}"


def _copy(ctx: AdsContext, service: str, store: str, users: dict[str, Credentials],
          after: Sequence[pulumi.Resource]) -> tuple[str, k8s.core.v1.Secret]:
    """The service's own login (never another's) as a Secret in the services' namespace."""
    name = credential_secret(service, store)
    return name, users[service].copy_to(f"ads-{name}-credentials", ctx.namespace, ctx.opts(list(after)), name=name)


def scylladb(ctx: AdsContext, e: ScyllaEndpoint, service: str) -> StoreWiring:
    secret, copy = _copy(ctx, service, "scylladb", e.users, e.ready)
    # Shard-aware drivers (the Rust and C++ ScyllaDB drivers) open one connection per shard on the shard-aware
    # port, which the scylla namespace admits with the CQL port (components/data/scylladb CLIENT_PORTS).
    return StoreWiring(
        store="scylladb",
        env=(plain_env("SCYLLA_CONTACT_POINTS", ",".join(e.hosts)), plain_env("SCYLLA_PORT", e.port),
             plain_env("SCYLLA_LOCAL_DATACENTER", e.datacenter),
             secret_env("SCYLLA_USERNAME", secret, "username"), secret_env("SCYLLA_PASSWORD", secret, "password")),
        egress=Egress(e.namespace, dict(e.pod_labels), (e.port, CQL_SHARD_AWARE_PORT)),
        secrets=(secret,), ready=(*e.ready, copy))


def dragonfly(ctx: AdsContext, e: DragonflyEndpoint, service: str) -> StoreWiring:
    secret, copy = _copy(ctx, service, "dragonfly", e.users, e.ready)
    # The service's ACL user reads and writes only keys under DRAGONFLY_KEY_PREFIX (components/data/dragonfly.py).
    return StoreWiring(
        store="dragonfly",
        env=(plain_env("DRAGONFLY_HOST", e.host), plain_env("DRAGONFLY_READ_HOST", e.read_host),
             plain_env("DRAGONFLY_PORT", e.port), plain_env("DRAGONFLY_ADDRESS", f"{e.host}:{e.port}"),
             plain_env("DRAGONFLY_KEY_PREFIX", key_prefix(service)),
             secret_env("DRAGONFLY_USERNAME", secret, "username"), secret_env("DRAGONFLY_PASSWORD", secret, "password")),
        egress=Egress(e.namespace, dict(e.pod_labels), (e.port,)),
        secrets=(secret,), ready=(*e.ready, copy))


def ca_certificate_spec(namespace: str, issuer: str) -> dict[str, Any]:
    """A Certificate from the Redpanda CA's ClusterIssuer: its Secret REDPANDA_CA_SECRET holds ca.crt."""
    return {
        "secretName": REDPANDA_CA_SECRET, "commonName": f"{namespace}.redpanda-client",
        "usages": ["client auth", "digital signature"], "duration": CA_CLIENT_DURATION,
        "renewBefore": CA_CLIENT_RENEW_BEFORE,
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }


def redpanda_ca(ctx: AdsContext, e: RedpandaEndpoint) -> pulumi.Resource:
    """The namespace's one CA Certificate (not a credential: every service trusts the same listeners)."""
    # Pods start once the Secret exists (the Certificate is Ready), never with an empty CA file.
    return ctx.custom_resource("ads-redpanda-ca", "cert-manager.io/v1", "Certificate", REDPANDA_CA_SECRET,
                               ctx.namespace, ca_certificate_spec(ctx.namespace, e.ca_issuer),
                               ctx.labels("redpanda", "ca"), list(e.ready),
                               annotations=wait_for("condition=Ready", CA_READY_SECONDS))


def redpanda(ctx: AdsContext, e: RedpandaEndpoint, service: str, ca: pulumi.Resource) -> StoreWiring:
    secret, copy = _copy(ctx, service, "redpanda", e.users, e.ready)
    # Its SASL user may use only topics and groups named <service>.* (components/data/redpanda.py).
    return StoreWiring(
        store="redpanda",
        env=(plain_env("KAFKA_BOOTSTRAP_SERVERS", ",".join(e.brokers)), plain_env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
             plain_env("KAFKA_SASL_MECHANISM", e.sasl_mechanism),
             secret_env("KAFKA_SASL_USERNAME", secret, "username"),
             secret_env("KAFKA_SASL_PASSWORD", secret, "password"),
             plain_env("KAFKA_SSL_CA_LOCATION", f"{REDPANDA_CA_DIR}/{REDPANDA_CA_KEY}"),
             plain_env("KAFKA_SCHEMA_REGISTRY_URL", e.schema_registry)),
        egress=Egress(e.namespace, dict(e.pod_labels), tuple(e.ports)),
        volumes=({"name": "redpanda-ca", "secret": {"secretName": REDPANDA_CA_SECRET,
                                                    "items": [{"key": REDPANDA_CA_KEY, "path": REDPANDA_CA_KEY}]}},),
        mounts=({"name": "redpanda-ca", "mountPath": REDPANDA_CA_DIR, "readOnly": True},),
        secrets=(secret, REDPANDA_CA_SECRET), ready=(*e.ready, copy, ca))


def clickhouse(ctx: AdsContext, e: ClickHouseEndpoint, service: str) -> StoreWiring:
    secret, copy = _copy(ctx, service, "clickhouse", e.users, e.ready)
    # Its user may change only its own database (components/data/clickhouse/users.py).
    return StoreWiring(
        store="clickhouse",
        env=(plain_env("CLICKHOUSE_HOST", e.host), plain_env("CLICKHOUSE_HTTP_PORT", e.http_port),
             plain_env("CLICKHOUSE_NATIVE_PORT", e.native_port), plain_env("CLICKHOUSE_CLUSTER", e.cluster),
             plain_env("CLICKHOUSE_DATABASE", database_of(service)),
             secret_env("CLICKHOUSE_USER", secret, "username"), secret_env("CLICKHOUSE_PASSWORD", secret, "password")),
        egress=Egress(e.namespace, dict(e.pod_labels), (e.http_port, e.native_port)),
        secrets=(secret,), ready=(*e.ready, copy))


class Wiring:
    """Wires services to the stores: what a store needs once per namespace (Redpanda's CA) is made on first use."""

    def __init__(self, ctx: AdsContext, endpoints: Any):
        self.ctx, self.endpoints = ctx, endpoints
        self._ca: pulumi.Resource | None = None

    def wire(self, service: str, store: str) -> StoreWiring:
        """`service`'s wiring to one store (config/ads.py STORES); the config refused a store that is off."""
        endpoint = getattr(self.endpoints, store)
        if endpoint is None:
            raise ValueError(f"dataPlane.{store} is disabled but an ad service uses it (config validation missed it)")
        if store == "redpanda":
            self._ca = self._ca or redpanda_ca(self.ctx, endpoint)
            return redpanda(self.ctx, endpoint, service, self._ca)
        wire_one: Callable[[AdsContext, Any, str], StoreWiring] = {
            "scylladb": scylladb, "dragonfly": dragonfly, "clickhouse": clickhouse}[store]
        return wire_one(self.ctx, endpoint, service)


__all__ = ["REDPANDA_CA_DIR", "REDPANDA_CA_SECRET", "Wiring", "ca_certificate_spec", "credential_secret", "plain_env",
           "secret_env"]
