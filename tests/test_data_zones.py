"""Stores spread over the locations their pools span: nodes say where they run, ScyllaDB gets a rack per
location, Redpanda, PostgreSQL and ClickHouse spread their pods evenly over zones (hard only where a pool
spans several locations; single-location pools keep a soft preference and keep scheduling)."""
from __future__ import annotations


from components.k3s.config import topology_labels
from components.scheduling import ZONE_TOPOLOGY
from config.model import LOCATION_LABEL
from tests import variants
from tests.conftest import node_labels
from tests.test_data_clickhouse import chi
from tests.test_data_postgres import cluster as pg_cluster
from tests.test_data_redpanda import spec as redpanda_spec
from tests.test_data_scylladb import spec as scylla_spec

LOCATIONS = variants.LOCATIONS


def spanning():
    """Production with every database pool over the three locations of eu-central, as its control plane (and
    ScyllaDB on network volumes: a run shared with other files)."""
    return variants.spanning_variant()


def spread(constraints: list[dict]) -> list[tuple[str, str]]:
    return [(c["topologyKey"], c["whenUnsatisfiable"]) for c in constraints]


def test_nodes_carry_their_location_and_the_ccm_is_left_the_zone_label():
    """Hetzner's CCM sets topology.kubernetes.io/zone (the datacenter) and would overwrite ours: the kubelet
    sets only our exact location label there."""
    run = spanning()
    for node, location in (("scylladb-1", "fsn1"), ("scylladb-2", "nbg1"), ("scylladb-3", "hel1")):
        labels = node_labels(run, node)
        assert labels[LOCATION_LABEL] == location
        assert ZONE_TOPOLOGY not in labels


def test_without_a_ccm_the_kubelet_sets_the_zone_from_the_location():
    spec = type("Spec", (), {"location": "rack-a", "region": None, "zone": None})()
    no_ccm = type("Profile", (), {"external_cloud_provider": False})()
    with_ccm = type("Profile", (), {"external_cloud_provider": True})()
    assert topology_labels(spec, no_ccm) == {LOCATION_LABEL: "rack-a", ZONE_TOPOLOGY: "rack-a"}
    assert topology_labels(spec, with_ccm) == {LOCATION_LABEL: "rack-a"}
    assert topology_labels(type("Spec", (), {"location": None, "region": None, "zone": None})(), no_ccm) == {}


def test_scylladb_gets_one_rack_per_location_pinned_there():
    racks = scylla_spec(spanning())["datacenter"]["racks"]
    assert [r["members"] for r in racks] == [1, 1, 1]
    pinned = []
    for rack in racks:
        (term,) = rack["placement"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        pinned += [e["values"] for e in term["matchExpressions"] if e["key"] == LOCATION_LABEL]
    assert pinned == [["fsn1"], ["nbg1"], ["hel1"]]


def test_single_location_racks_are_not_pinned(production):
    for rack in scylla_spec(production)["datacenter"]["racks"]:
        assert LOCATION_LABEL not in str(rack["placement"]["nodeAffinity"])


def test_stores_spread_hard_over_zones_only_where_the_pool_spans_locations(production):
    for run, when in ((spanning(), "DoNotSchedule"), (production, "ScheduleAnyway")):
        assert (ZONE_TOPOLOGY, when) in spread(pg_cluster(run)["topologySpreadConstraints"])
        rp = redpanda_spec(run)
        assert spread(rp["statefulset"]["topologySpreadConstraints"]) == [(ZONE_TOPOLOGY, when)]
        templates = chi(run)["templates"]["podTemplates"]
        for template in templates:
            assert (ZONE_TOPOLOGY, when) in spread(template["spec"]["topologySpreadConstraints"])
    assert pg_cluster(production)["topologySpreadConstraints"][0]["labelSelector"] == {
        "matchLabels": {"cnpg.io/cluster": "postgres"}}


def test_staging_single_node_pools_keep_scheduling(staging):
    assert spread(pg_cluster(staging)["topologySpreadConstraints"]) == [(ZONE_TOPOLOGY, "ScheduleAnyway")]
    assert [r["members"] for r in scylla_spec(staging)["datacenter"]["racks"]] == [1, 0, 0]  # one member to place


def test_redpanda_racks_are_the_zones_only_where_the_pool_spans_locations(production):
    assert redpanda_spec(spanning())["rackAwareness"] == {"enabled": True, "nodeAnnotation": ZONE_TOPOLOGY}
    assert redpanda_spec(production)["rackAwareness"] == {"enabled": False}
