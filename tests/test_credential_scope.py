"""Least privilege for storage credentials: each backup key pair and each object-store identity reaches exactly
one consumer. Every resource's inputs, secret parts included, are searched for each key value; where it shows
up (a namespace, or the hosts for remote scripts) is who holds it."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from config.data import BUCKET_OWNERS
from tests.test_data_secrets import _generated
from tools.mockrun import Run, Secret

HOSTS = "hosts"  # remote commands: what the servers hold on disk (the K3s config)
OBJECT_STORE = "seaweedfs"  # the store itself holds every identity's keys (its identities file)
# Where each consumer of the in-cluster object store runs (config/data.py BUCKET_OWNERS keys).
CONSUMER_NAMESPACES = {"gitlab": "gitlab", "logs": "logging", "traces": "tracing", "airflow": "airflow",
                       "mlflow": "mlflow", "kubeflow": "kubeflow", "postgres": "postgres", "clickhouse": "clickhouse",
                       "scylladb": "scylla", "redpanda": "redpanda"}
BACKUP_HOLDERS = {"etcd": HOSTS, "velero": "velero", "postgres": "postgres", "clickhouse": "clickhouse",
                  "scylladb": "scylla", "redpanda": "redpanda", "drills": "dr-drills"}  # drills: the read-only pair of the restore drills


def _strings(value: Any) -> Iterator[str]:
    """Every string in a resource's inputs, inside secret wrappers too."""
    if isinstance(value, Secret):
        yield from _strings(value.value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def _holder(resource) -> str | None:
    """Who holds what a resource carries: the namespace of a Kubernetes object or Helm release, the hosts for a
    remote command; None for the rest (the generators, cloud resources)."""
    if resource.type.startswith("command:remote:"):
        return HOSTS
    if not resource.type.startswith("kubernetes:"):
        return None
    inputs = resource.inputs
    return inputs.get("namespace") or (inputs.get("metadata") or {}).get("namespace")


def holders(run: Run, value: str) -> set[str]:
    found = set()
    for resource in run.resources:
        holder = _holder(resource)
        if holder and any(value in text for text in _strings(resource.inputs)):
            found.add(holder)
    return found


def _backup_keys(run: Run) -> dict[str, dict[str, str]]:
    return run.config["adplatform:backupCredentials"].value  # purpose -> accessKeyId, secretAccessKey


@pytest.mark.parametrize("purpose", sorted(BACKUP_HOLDERS))
def test_each_backup_key_pair_reaches_only_its_writer(production, purpose):
    """etcd snapshot keys only on the servers, Velero's only in its namespace, each store's only in its own."""
    keys = _backup_keys(production)[purpose]
    for field in ("accessKeyId", "secretAccessKey"):
        assert holders(production, keys[field]) == {BACKUP_HOLDERS[purpose]}, (purpose, field)


def test_the_shared_backup_pair_reaches_no_one_in_production(production):
    for key in ("adplatform:backupAccessKeyId", "adplatform:backupSecretAccessKey"):
        if key in production.config:
            assert holders(production, production.config[key].value) == set(), key


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_each_object_store_identity_reaches_only_its_consumer(stack, request):
    """Besides the store's own identities file, a consumer's keys are in its namespace and nowhere else."""
    run = request.getfixturevalue(stack)
    generated = _generated(run)
    assert set(CONSUMER_NAMESPACES) == set(BUCKET_OWNERS)
    used = 0
    for consumer, namespace in CONSUMER_NAMESPACES.items():
        for kind in ("access", "secret"):
            value = generated[f"seaweedfs-{consumer}-{kind}-key"]
            found = holders(run, value) - {OBJECT_STORE}
            assert found <= {namespace}, (consumer, found)
            used += bool(found)
    assert used >= 10, "the walk found too few consumers: it would prove nothing"
