"""How an ad service reaches each data store, from the data plane's endpoints (components/data/endpoints.py).

Secrets are namespaced: each store's credentials are copied once into the services' namespace
(`Credentials.copy_to`, keeping the store's Secret name, so `kubectl get secret` there shows which store
a credential belongs to), and services read them only through `secretKeyRef`. Hosts, ports and pod labels
come from the endpoint, never from names written here, so a renamed store moves its consumers with it.

Redpanda's listeners use a CA the chart bootstraps with cert-manager inside the redpanda namespace; its
certificate is not a Pulumi output, so it is read from the cluster (`Secret.get`, once the cluster is Ready)
and only `ca.crt` is written to `redpanda-ca` in the services' namespace: the source Secret also holds the
broker's private key, which must not travel.
"""

from __future__ import annotations

from typing import Any, Callable

import pulumi
import pulumi_kubernetes as k8s

from components.ads.context import AdsContext, Egress, StoreWiring
from components.data.endpoints import ClickHouseEndpoint, DragonflyEndpoint, RedpandaEndpoint, ScyllaEndpoint
from components.data.scylladb import CQL_SHARD_AWARE_PORT
from components.layer import Credentials

REDPANDA_CA_SECRET = "redpanda-ca"  # in the services' namespace: ca.crt only
REDPANDA_CA_KEY = "ca.crt"
REDPANDA_CA_DIR = "/etc/adplatform/redpanda"


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def plain_env(name: str, value: object) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def _copy(ctx: AdsContext, store: str, creds: Credentials, after: list[pulumi.Resource]) -> k8s.core.v1.Secret:
    return creds.copy_to(f"ads-{store}-credentials", ctx.namespace, ctx.opts(after))


def scylladb(ctx: AdsContext, e: ScyllaEndpoint) -> StoreWiring:
    copy = _copy(ctx, "scylladb", e.credentials, list(e.ready))
    secret = e.credentials.secret
    # Shard-aware drivers (the Rust and C++ ScyllaDB drivers) open one connection per shard on the shard-aware
    # port, which the scylla namespace admits with the CQL port (components/data/scylladb CLIENT_PORTS).
    return StoreWiring(
        store="scylladb",
        env=(plain_env("SCYLLA_CONTACT_POINTS", ",".join(e.hosts)), plain_env("SCYLLA_PORT", e.port),
             plain_env("SCYLLA_LOCAL_DATACENTER", e.datacenter),
             secret_env("SCYLLA_USERNAME", secret, "username"), secret_env("SCYLLA_PASSWORD", secret, "password")),
        egress=Egress(e.namespace, dict(e.pod_labels), (e.port, CQL_SHARD_AWARE_PORT)),
        secrets=(secret,), ready=(*e.ready, copy))


def dragonfly(ctx: AdsContext, e: DragonflyEndpoint) -> StoreWiring:
    copy = _copy(ctx, "dragonfly", e.credentials, list(e.ready))
    secret = e.credentials.secret
    return StoreWiring(
        store="dragonfly",
        env=(plain_env("DRAGONFLY_HOST", e.host), plain_env("DRAGONFLY_READ_HOST", e.read_host),
             plain_env("DRAGONFLY_PORT", e.port), plain_env("DRAGONFLY_ADDRESS", f"{e.host}:{e.port}"),
             secret_env("DRAGONFLY_PASSWORD", secret, "password")),
        egress=Egress(e.namespace, dict(e.pod_labels), (e.port,)),
        secrets=(secret,), ready=(*e.ready, copy))


def ca_source_id(e: RedpandaEndpoint) -> pulumi.Output[str]:
    """`<namespace>/<name>` of the listeners' certificate Secret, known only once the cluster is Ready: a preview
    of a new stack then skips the read (its id is unknown) instead of failing on a Secret that does not exist."""
    return pulumi.Output.all(*[r.id for r in e.ready if isinstance(r, pulumi.CustomResource)]).apply(
        lambda _: f"{e.namespace}/{e.ca_secret}")


def ca_only(data: dict[str, str] | None) -> dict[str, str]:
    """The CA certificate (base64, as read) of the source Secret's data; nothing else leaves its namespace."""
    if not data:
        return {}  # nothing read (offline runs under mocks)
    if REDPANDA_CA_KEY not in data:
        raise ValueError(f"the Redpanda certificate Secret has no {REDPANDA_CA_KEY} (keys: {sorted(data)})")
    return {REDPANDA_CA_KEY: data[REDPANDA_CA_KEY]}


def redpanda(ctx: AdsContext, e: RedpandaEndpoint) -> StoreWiring:
    copy = _copy(ctx, "redpanda", e.credentials, list(e.ready))
    source = k8s.core.v1.Secret.get("ads-redpanda-ca-source", ca_source_id(e),
                                    opts=pulumi.ResourceOptions(parent=ctx.parent, provider=ctx.k8s))
    ca = k8s.core.v1.Secret(
        "ads-redpanda-ca", metadata=k8s.meta.v1.ObjectMetaArgs(name=REDPANDA_CA_SECRET, namespace=ctx.namespace,
                                                               labels=ctx.labels("redpanda", "ca")),
        type="Opaque", data=source.data.apply(ca_only), opts=ctx.opts(list(e.ready)))
    secret = e.credentials.secret
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


def clickhouse(ctx: AdsContext, e: ClickHouseEndpoint) -> StoreWiring:
    copy = _copy(ctx, "clickhouse", e.credentials, list(e.ready))
    secret = e.credentials.secret
    return StoreWiring(
        store="clickhouse",
        env=(plain_env("CLICKHOUSE_HOST", e.host), plain_env("CLICKHOUSE_HTTP_PORT", e.http_port),
             plain_env("CLICKHOUSE_NATIVE_PORT", e.native_port), plain_env("CLICKHOUSE_CLUSTER", e.cluster),
             secret_env("CLICKHOUSE_USER", secret, "username"), secret_env("CLICKHOUSE_PASSWORD", secret, "password")),
        egress=Egress(e.namespace, dict(e.pod_labels), (e.http_port, e.native_port)),
        secrets=(secret,), ready=(*e.ready, copy))


WIRE: dict[str, Callable[[AdsContext, Any], StoreWiring]] = {
    "scylladb": scylladb, "dragonfly": dragonfly, "redpanda": redpanda, "clickhouse": clickhouse}


def wire(ctx: AdsContext, store: str, endpoint: Any) -> StoreWiring:
    """The wiring of one store (config/ads.py STORES); the config refused a store that is off."""
    if endpoint is None:
        raise ValueError(f"dataPlane.{store} is disabled but an ad service uses it (config validation missed it)")
    return WIRE[store](ctx, endpoint)


__all__ = ["REDPANDA_CA_DIR", "REDPANDA_CA_SECRET", "WIRE", "ca_only", "ca_source_id", "plain_env", "secret_env",
           "wire"]
