"""Cross-cutting checks of the data plane's objects in the production and staging runs: every Helm release
comes from the pinned catalog (components/charts.py), and what holds data is protected exactly where the
profile asks for it (production) and nowhere else (staging can be torn down and rebuilt)."""

from __future__ import annotations

import pytest

from components import charts
from components.data import LAYER

RELEASE = "kubernetes:helm.sh/v3:Release"
# Custom resources whose deletion deletes a database's data (the operators delete the pods and, with some
# reclaim settings, the volumes).
DATABASE_KINDS = ("scylla.scylladb.com/v1:ScyllaCluster", "cluster.redpanda.com/v1alpha2:Redpanda",
                  "clickhouse.altinity.com/v1:ClickHouseInstallation",
                  "clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation", "postgresql.cnpg.io/v1:Cluster",
                  "postgresql.cnpg.io/v1:Database", "dragonflydb.io/v1alpha1:Dragonfly")
CATALOG = {(c.repo, c.chart, c.version) for c in vars(charts).values() if isinstance(c, charts.Chart)}


def _source(inputs: dict) -> tuple[str, str, str]:
    """(repo, chart, version) of a release; an OCI chart is one reference (components/helm.py)."""
    if "repositoryOpts" in inputs:
        return inputs["repositoryOpts"]["repo"], inputs["chart"], inputs.get("version")
    repo, _, chart = inputs["chart"].rpartition("/")
    return repo, chart, inputs.get("version")


@pytest.mark.parametrize("stack", ["production", "staging"])
def test_every_helm_release_is_a_pinned_catalog_chart(stack, request):
    run = request.getfixturevalue(stack)
    releases = run.of_type(RELEASE)
    assert releases
    stray = [f"{r.name}: {_source(r.inputs)}" for r in releases if _source(r.inputs) not in CATALOG]
    assert not stray, "releases not from components/charts.py:\n" + "\n".join(stray)


def test_databases_are_protected_in_production_only(production, staging):
    for kind in DATABASE_KINDS:
        prod = production.of_type(f"kubernetes:{kind}")
        assert prod, f"no {kind} in production"
        assert all(r.protect for r in prod), [r.name for r in prod if not r.protect]
        assert not [r.name for r in staging.of_type(f"kubernetes:{kind}") if r.protect], kind


def test_data_namespaces_carry_the_data_plane_layer(production):
    """The object store admits stores by this label (objectstore.namespaces): every store namespace has it."""
    layers = {r.inputs["metadata"]["name"]: r.inputs["metadata"].get("labels", {}).get("adplatform.io/layer")
              for r in production.of_type("kubernetes:core/v1:Namespace")}
    for namespace in ("scylla", "redpanda", "clickhouse", "dragonfly", "postgres", "seaweedfs"):
        assert layers.get(namespace) == LAYER, (namespace, layers.get(namespace))
