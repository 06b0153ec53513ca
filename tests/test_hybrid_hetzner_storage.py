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


def hetzner_stack_with_the_stateful_pool_on_hetzner() -> dict[str, Any]:
    """stateful_on_hetzner with Hetzner as the stack's provider (an AWS pool beside it): the same Hetzner pools, as the
    old provider's part looks before a flip to AWS (docs/providers.md "Not supported yet", item 6) and after it."""
    values = primary_raw("hetzner", firewallQuotas={"aws": 120})
    values["cluster"]["pools"] = [dict(HZ), {"name": "stateful", "count": 2, "locations": ["nbg1", "hel1"]},
                                  {"name": "edge", "role": "general", "count": 2, "provider": "aws",
                                   "locations": ["eu-central-1a", "eu-central-1b"]}]
    return values


# What a StorageClass update may not change: pulumi-kubernetes 4.x replaces the class on .parameters or .provisioner
# (provider/pkg/provider/diff.go forceNew, deleting it first under its fixed name), and the API server refuses a change
# of reclaimPolicy or volumeBindingMode (k8s.io/kubernetes pkg/apis/storage/validation ValidateStorageClassUpdate).
# allowedTopologies and annotations are updated in place.
FIXED_CLASS_FIELDS = ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode", "allowVolumeExpansion")


def test_the_hetzner_classes_and_driver_are_updated_in_place_when_hetzner_stops_being_the_stacks(stores_on_hetzner):
    # Item 6: the same Hetzner pools as the stack provider's part and as a secondary's: the driver's release, its
    # encryption Secret and every class keep their URNs (updated, never a second one created beside the old under the
    # same Kubernetes name), and the classes change only in what an update may change: where they attach
    # (allowedTopologies) and the default annotation. So bound volumes and their classes stay as they are.
    before = run_internet(hetzner_stack_with_the_stateful_pool_on_hetzner(), stack="staging-internet")
    after = stores_on_hetzner
    hetzner_classes = {r.name: r for r in before.of_type(STORAGE_CLASS) if r.inputs["provisioner"] == hetzner.PROVISIONER}
    assert sorted(hetzner_classes) == ["storage-class-hcloud-volumes", "storage-class-hcloud-volumes-xfs"]
    for name, old in hetzner_classes.items():
        new = after.named(name, STORAGE_CLASS)
        assert new.urn == old.urn, name
        assert {k: new.inputs.get(k) for k in FIXED_CLASS_FIELDS} == {k: old.inputs.get(k) for k in FIXED_CLASS_FIELDS}
        assert new.inputs["metadata"]["name"] == old.inputs["metadata"]["name"]
        assert new.inputs["allowedTopologies"] != old.inputs["allowedTopologies"]  # Hetzner's locations, not cloud-only
    for name, type_ in (("hcloud-csi", RELEASE), ("hcloud-volume-encryption", SECRET)):
        assert after.named(name, type_).urn == before.named(name, type_).urn, name
    # The default annotation moves with the stack provider: what a flip would change for claims naming no class.
    assert (_class(before, "hcloud-volumes")["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"
    assert not (_class(after, "hcloud-volumes")["metadata"].get("annotations") or {}).get(DEFAULT_CLASS)


def _defaults(run: mockrun.Run) -> list[str]:
    return [r.name for r in run.of_type(STORAGE_CLASS)
            if (r.inputs["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) == "true"]


def test_a_stated_default_storage_provider_keeps_the_hetzner_class_the_default_on_an_aws_stack(stores_on_hetzner):
    # Item 6: clusterServices.defaultStorageProvider names the secondary: its class is the one default (the flip then
    # changes no claim's class), the stack provider's pools' stores claim their own provider's classes.
    values = stateful_on_hetzner()
    values["clusterServices"] = {**values.get("clusterServices", {}), "defaultStorageProvider": "hetzner"}
    stated = run_internet(values, stack="staging-internet")
    assert _defaults(stores_on_hetzner) == ["storage-class-ebs-gp3"] and _defaults(stated) == [
        "storage-class-hcloud-volumes"]
    redpanda = next(r.inputs for r in stated.resources if r.type.endswith(":Redpanda"))
    assert redpanda["spec"]["clusterSpec"]["storage"]["persistentVolume"]["storageClass"] == "ebs-gp3-xfs"
    postgres = stated.named("postgres-cluster", "kubernetes:postgresql.cnpg.io/v1:Cluster").inputs["spec"]
    assert postgres["storage"]["storageClass"] == "hcloud-volumes"


def test_the_secondary_holding_the_default_class_installs_its_driver_without_stores():
    # Hetzner with its general pool only (no store: no driver of its own unless its classes are the default).
    values = primary_raw("aws", location="eu-central-1a", firewallQuotas={"aws": 100})
    values["clusterServices"] = {**values.get("clusterServices", {}), "defaultStorageProvider": "hetzner"}
    stated = run_internet(values, stack="staging-internet")
    assert _defaults(stated) == ["storage-class-hcloud-volumes"]
    assert stated.named("hcloud-csi", RELEASE)
