"""Hetzner Cloud as a hybrid cluster's secondary provider with data (providers/hetzner.py _install_csi,
providers/hybrid.py pool_roles): an AWS stack whose stateful pool (PostgreSQL, DragonflyDB, the object store) runs on
Hetzner Cloud installs the hcloud CSI driver on the Hetzner nodes only, with the token in a Secret of its own, and
classes that name only the Hetzner nodes' locations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers import hetzner
from providers.base import PROVIDER_LABEL
from tests.test_hybrid import (DEFAULT_CLASS, HZ, STATEFUL_STORES, STORAGE_CLASS, _class, _internet_problems,
                               primary_raw, run_internet, too_few_to_move)
from tools import mockrun
from tools.plan import model

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
# The general Hetzner pool (HZ) in fsn1 and nbg1, the stateful one in nbg1 and hel1: every Hetzner node's location.
HETZNER_LOCATIONS = ["fsn1", "hel1", "nbg1"]


def stateful_on_hetzner(**pool: Any) -> dict[str, Any]:
    """Staging on AWS (three K3s servers behind its public NLB) with a general pool and the stateful pool on Hetzner."""
    values = primary_raw("aws", location="eu-central-1a", firewallQuotas={"aws": 120})
    values["cluster"]["pools"] = [dict(HZ), {"name": "stateful", "provider": "hetzner", "count": 2,
                                             "locations": ["nbg1", "hel1"], **pool}]
    return values


@pytest.fixture(scope="module")
def stores_on_hetzner() -> mockrun.Run:
    return run_internet(stateful_on_hetzner(), stack="staging-internet")


def _csi(run: mockrun.Run) -> dict[str, Any]:
    return run.named("hcloud-csi", RELEASE).inputs["values"]


def test_the_hetzner_driver_runs_on_hetzner_nodes_only(stores_on_hetzner):
    values = _csi(stores_on_hetzner)
    on_hetzner = {PROVIDER_LABEL: "hetzner"}
    # The controller too: no Hetzner server runs the cluster's K3s servers, and the token stays on Hetzner machines.
    assert values["node"]["nodeSelector"] == values["controller"]["nodeSelector"] == on_hetzner
    # ... any Hetzner pool, the database pools' NoSchedule taints included.
    assert values["controller"]["tolerations"] == [{"operator": "Exists", "effect": "NoSchedule"}]
    # The location topology keeps volumes on Hetzner nodes; provided-by (for Robot servers next to a Hetzner stack)
    # is not turned on, since it could never be turned off.
    assert "global" not in values
    # The default location (used by no claim: every claim carries its node's topology) is a Hetzner node's.
    assert values["controller"]["hcloudVolumeDefaultLocation"] in HETZNER_LOCATIONS
    releases = {r.name for r in stores_on_hetzner.of_type(RELEASE)}
    assert "hcloud-ccm" not in releases and "aws-ccm" in releases  # the stack provider's CCM only


def test_the_driver_reads_the_token_from_a_secret_of_its_own(stores_on_hetzner):
    secret = stores_on_hetzner.named("hcloud-csi-token", SECRET).inputs
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == ("hcloud-csi-token", "kube-system")
    assert secret["stringData"].value == {"token": "test-token"}  # kept secret: the stack's hcloud token
    assert _csi(stores_on_hetzner)["controller"]["hcloudToken"] == {
        "existingSecret": {"name": "hcloud-csi-token", "key": "token"}}
    # No CCM's `hcloud` Secret, and nothing but the driver's release names this one.
    assert not [r for r in stores_on_hetzner.of_type(SECRET) if r.inputs["metadata"]["name"] == "hcloud"]
    naming = {r.name for r in stores_on_hetzner.resources if r.type.startswith("kubernetes:")
              and "hcloud-csi-token" in json.dumps(r.inputs, default=str)}
    assert naming == {"hcloud-csi-token", "hcloud-csi"}


def test_the_hetzner_classes_name_only_the_hetzner_locations_and_the_stacks_class_stays_the_default(
        stores_on_hetzner):
    expected = [{"matchLabelExpressions": [{"key": "csi.hetzner.cloud/location", "values": HETZNER_LOCATIONS}]}]
    for name in ("hcloud-volumes", "hcloud-volumes-xfs"):
        each = _class(stores_on_hetzner, name)
        assert each["provisioner"] == "csi.hetzner.cloud" and each["allowedTopologies"] == expected, name
        assert not (each["metadata"].get("annotations") or {}).get(DEFAULT_CLASS), name
        # encrypted as on a Hetzner stack
        assert each["parameters"]["csi.storage.k8s.io/node-publish-secret-name"] == hetzner.ENCRYPTION_SECRET
    defaults = [r.name for r in stores_on_hetzner.of_type(STORAGE_CLASS)
                if (r.inputs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]
    assert defaults == ["storage-class-ebs-gp3"]


def test_the_stores_on_the_hetzner_pool_claim_the_hetzner_class(stores_on_hetzner):
    postgres = stores_on_hetzner.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster").inputs["spec"]
    assert postgres["storage"]["storageClass"] == postgres["walStorage"]["storageClass"] == "hcloud-volumes"
    redpanda = next(r.inputs for r in stores_on_hetzner.resources if r.type.endswith(":Redpanda"))
    # Redpanda's pool stays on AWS: EBS.
    assert redpanda["spec"]["clusterSpec"]["storage"]["persistentVolume"]["storageClass"] == "ebs-gp3-xfs"


def test_the_policy_pack_passes_with_stores_on_hetzner(stores_on_hetzner):
    assert model.build(stores_on_hetzner)["policy"]["violations"] == []


def test_a_store_may_move_onto_hetzner_volumes():
    # The stateful stores moving from staging's AWS stateful pool to one on Hetzner: hetzner is a provider whose
    # volumes their pools claim; the move is refused here only for the node count (2 on Hetzner), naming hetzner.
    values = stateful_on_hetzner(name="stateful-hz", role="stateful", size="medium")
    values["dataPlane"] = {key: {"storageProvider": "hetzner"} for key, _ in STATEFUL_STORES.values()}
    found = _internet_problems(values)
    assert sorted(found) == too_few_to_move("hetzner", 2), found
