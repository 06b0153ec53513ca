"""The plan's cost model: every stack priced, storage the cluster claims, the gateway's load balancer,
the cloud price tables, bare-metal host prices, per layer and pool, and the plan-diff delta."""

from __future__ import annotations

import copy
import json

import pytest

from tests.test_baremetal import problems, raw
from tests.runs import stack_plan
from tools.mockrun import stacks
from tools.plan import cost, diff, model, report, storage

MONTH = cost.HOURS_PER_MONTH


@pytest.fixture(scope="module")
def plans() -> dict[str, dict]:
    return {stack: stack_plan(stack) for stack in stacks()}


def _servers_by_pool(plan: dict) -> list[str]:
    """The report's "Servers by pool" lines."""
    return report.render(plan).split("Servers by pool:\n")[1].split("\n\n")[0].splitlines()


def _item(plan: dict, resource: str, what: str) -> float:
    return sum(i["monthly"] for i in plan["cost"]["items"] if i["resource"] == resource and what in i["what"])


# --- every stack ----------------------------------------------------------------------------------

def test_every_stack_has_a_total_and_nothing_unknown(plans):
    for stack, plan in plans.items():
        c = plan["cost"]
        assert c["total"] is not None and c["unknown"] == [], (stack, c["unknown"])
        assert "unknown" not in report.render(plan).split("Estimated cost:")[1].split("\n")[0], stack
        assert c["total"] == pytest.approx(sum(c["layers"].values()), abs=0.05) == pytest.approx(sum(c["pools"].values()), abs=0.05)


def test_cloud_tables_are_dated_sourced_and_cover_every_type_we_map():
    from providers import aws, azure, gcp
    for provider, module in (("aws", aws), ("gcp", gcp), ("azure", azure)):
        table = cost.table(provider)
        assert table["date"] and table["source"].startswith("https://") and table["currency"] == "USD"
        for region in table["servers"]["prices"].values():
            assert set(module.SERVER_TYPES.values()) <= set(region), provider


# --- Hetzner production: known figures ------------------------------------------------------------

def test_production_prices_claimed_volumes_replicas_times_size(plans):
    plan = plans["production"]
    per_gb = cost.table("hetzner")["storage"]["provisioners"]["csi.hetzner.cloud"]["prices"]["eu"]
    assert _item(plan, "clickhouse-installation", "volumes 3 x 500 GiB") == pytest.approx(3 * 500 * per_gb)
    assert _item(plan, "redpanda-cluster", "volumes 3 x 500 GiB") == pytest.approx(3 * 500 * per_gb)
    assert _item(plan, "postgres-cluster", "walStorage") == pytest.approx(3 * 20 * per_gb)
    assert _item(plan, "seaweedfs", "volume server") == pytest.approx(3 * 500 * per_gb)
    assert _item(plan, "kube-prometheus-stack", "prometheus") == pytest.approx(2 * 100 * per_gb)
    # Gitaly's claim is our own PVC the chart adopts: counted once.
    assert _item(plan, "gitlab-gitaly-repositories", "200 GiB") == pytest.approx(200 * per_gb)
    assert _item(plan, "gitlab", "volumes") == 0
    volumes = sum(i["monthly"] for i in plan["cost"]["items"] if i["what"].startswith("volumes"))
    # GitLab's own DragonflyDB instance (issue 20 finding 3) snapshots to 3 volumes like the ad services' one.
    gitlab_cache = _item(plan, "dragonfly-gitlab", "volumes")
    assert gitlab_cache > 0 and gitlab_cache == pytest.approx(_item(plan, "dragonfly", "volumes"))
    assert volumes / per_gb == pytest.approx(5963)  # about 6 TB of network volumes
    # ScyllaDB's data sits on the servers' local NVMe: listed, not priced.
    unpriced = {u["what"]: u["reason"] for u in plan["cost"]["unpriced"]}
    assert "included in the server price" in unpriced["scylla-cluster: 1 x 250 GiB rack rack1"]
    assert "exists only while the job runs" in next(r for w, r in unpriced.items() if w.startswith("gitlab:"))
    # Volumes land in the pool their pods are pinned to; the layer is the requesting component's.
    assert plan["cost"]["pools"]["redpanda"] == pytest.approx(
        _item(plan, "redpanda-1", "") + _item(plan, "redpanda-2", "") + _item(plan, "redpanda-3", "")
        + 3 * 500 * per_gb)
    assert plan["cost"]["layers"]["data"] == pytest.approx(
        sum(i["monthly"] for i in plan["cost"]["items"] if i["layer"] == "data"), abs=0.01)


def test_production_gateway_load_balancer_is_priced_from_its_annotations(plans):
    lb11 = cost.table("hetzner")["priced"][0]["prices"]["eu"]["lb11"]
    assert _item(plans["production"], "gateway-shared", "gateway load balancer lb11") == pytest.approx(lb11)
    text = report.render(plans["production"])
    assert "by layer:" in text and "by pool:" in text and "not priced (" in text


# --- AWS, GCP, Azure: known figures ---------------------------------------------------------------

def test_aws_instance_root_volume_ipv4_and_gateway_nlb(plans):
    plan = plans["staging-aws"]
    node = next(s for s in plan["servers"] if s["pool"] == "control-plane")
    assert node["type"] == "t3.medium" and node["location"] == "eu-central-1"
    charges = [i for i in plan["cost"]["items"] if i["resource"] == node["urn"].rsplit("::", 1)[-1]]
    assert {i["what"] for i in charges} == {"instance t3.medium", "instance 40 GB root volume", "public IPv4"} or \
        sum(i["monthly"] for i in charges) > 0.048 * MONTH
    assert _item(plan, node["urn"].rsplit("::", 1)[-1], "instance t3.medium") == pytest.approx(0.048 * MONTH)
    assert _item(plan, node["urn"].rsplit("::", 1)[-1], "public IPv4") == pytest.approx(0.005 * MONTH)
    assert _item(plan, "gateway-shared", "gateway load balancer nlb") == pytest.approx(0.027 * MONTH)
    assert _item(plan, "gateway-shared", "3 public IPv4") == pytest.approx(3 * 0.005 * MONTH)


def test_gcp_gateway_on_servicelb_is_listed_free(plans):
    plan = plans["staging-gcp"]
    assert _item(plan, "gateway-shared", "") == 0
    assert any("ServiceLB" in u["reason"] for u in plan["cost"]["unpriced"] if "gateway-shared" in u["what"])
    assert any(i["what"].startswith("external IPv4") for i in plan["cost"]["items"])


def test_azure_disks_are_billed_by_the_tier_that_holds_them(plans):
    tiers = cost.table("azure")["storage"]["provisioners"]["disk.csi.azure.com"]["prices"]["westeurope"]["Premium_LRS"]
    disk = {"provisioner": "disk.csi.azure.com", "parameters": {"skuName": "Premium_LRS"}}
    spec = cost.table("azure")["storage"]
    assert cost._volume_price(spec, disk, "westeurope", 60) == tiers[1][1]  # P6, 64 GiB
    assert cost._volume_price(spec, disk, "westeurope", 64) == tiers[1][1]
    assert cost._volume_price(spec, disk, "westeurope", 65) == tiers[2][1]  # P10
    assert cost._volume_price(spec, disk, "westeurope", 10_000) is None  # larger than any tier: unknown


# --- storage extraction ---------------------------------------------------------------------------

def test_quantities():
    assert storage.gigabytes("500Gi") == 500 and storage.gigabytes("1Ti") == 1024
    assert storage.gigabytes("10G") == pytest.approx(10e9 / 2**30) and storage.gigabytes("lots") is None


def _resource(type_: str, inputs: dict, name: str = "r") -> dict:
    return {"urn": name, "type": type_, "name": name, "layer": "data", "custom": True, "inputs": inputs}


def test_statefulset_clickhouse_and_charts_multiply_replicas():
    plan = {"resources": [
        _resource("kubernetes:apps/v1:StatefulSet", {"spec": {"replicas": 4, "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "8Gi"}}}}]}}),
        _resource("kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation", {"spec": {
            "configuration": {"clusters": [{"layout": {"shardsCount": 2, "replicasCount": 3},
                                            "templates": {"dataVolumeClaimTemplate": "d"}}]},
            "templates": {"volumeClaimTemplates": [
                {"name": "d", "spec": {"resources": {"requests": {"storage": "1Ti"}}}},
                {"name": "unused", "spec": {"resources": {"requests": {"storage": "1Ti"}}}}]}}}),
        _resource("kubernetes:helm.sh/v3:Release", {"chart": "openbao", "values": {"server": {
            "ha": {"enabled": False, "replicas": 3}, "dataStorage": {"enabled": True, "size": "10Gi"},
            "auditStorage": {"enabled": False, "size": "10Gi"}}}}),
    ]}
    found = [(c["what"], c["gb"], c["count"]) for c in storage.claims(plan)]
    assert found == [("data", 8, 4), ("d", 1024, 6), ("data", 10, 1)]


def test_a_claim_without_a_readable_size_is_unknown_not_free(plans):
    changed = copy.deepcopy(plans["staging"])
    for name, size, storage_class in (("big", "big", "hcloud-volumes"), ("other", "5Gi", "nope")):
        changed["resources"].append(_resource("kubernetes:core/v1:PersistentVolumeClaim", {
            "metadata": {"name": name}, "spec": {"resources": {"requests": {"storage": size}},
                                                 "storageClassName": storage_class}}, name))
    unknown = cost.estimate(changed)["unknown"]
    assert any("size 'big' is not a quantity" in u for u in unknown)
    assert any("storage class 'nope' is not created by the program" in u for u in unknown)


# --- bare metal ------------------------------------------------------------------------------------

def test_bare_metal_hosts_cost_what_their_config_says():
    values = raw()
    for index, host in enumerate(values["bareMetal"]["hosts"]):
        if index < 4:
            host["monthlyPrice"] = 100 + index
    plan = model.build(__import__("tests.conftest", fromlist=["run_raw"]).run_raw(values, stack="production-baremetal"))
    c = plan["cost"]
    assert c["total"] == pytest.approx(100 + 101 + 102 + 103) and c["unknown"] == []
    assert c["pools"] == {"control-plane": pytest.approx(303), "workers": pytest.approx(103)}
    assert any(u["reason"] == "no adplatform:bareMetal.hosts[4].monthlyPrice in the stack config"
               for u in c["unpriced"])
    assert any("local-path" in u["what"] or "host's own disk" in u["reason"] for u in c["unpriced"])
    # Servers by pool: a pool's hosts with their price, and how many of them the config gives none.
    assert _servers_by_pool(plan) == [
        "  control-plane   3 x host 32vCPU/128GiB rack-a,rack-b,rack-c role=converged  k3s=server protect=-     "
        "    303.00 EUR/month",
        "  workers         2 x host 32vCPU/128GiB rack-a,rack-b role=converged  k3s=agent  protect=-     "
        "    103.00 EUR/month (+ 1 host(s) unpriced: no monthly price in config)"]


def test_bare_metal_hosts_are_listed_under_servers_by_pool(plans):
    # They were only in the cost per pool: the hybrid stack's ScyllaDB hosts were missing from the list, and a bare-metal
    # stack's showed neither size nor price.
    hybrid = _servers_by_pool(plans["production-hybrid"])
    assert [line.split()[0] for line in hybrid] == ["control-plane", "general", "scylladb", "redpanda", "clickhouse",
                                                     "stateful"]  # config order
    assert hybrid[2] == ("  scylladb        3 x host 16vCPU/64GiB fsn1-dc14,fsn1-dc15,fsn1-dc16 role=scylladb   "
                         "k3s=agent  protect=-         312.00 EUR/month")
    assert _servers_by_pool(plans["production-baremetal"]) == [
        "  control-plane   3 x host 32vCPU/128GiB rack-a,rack-b,rack-c role=converged  k3s=server protect=-     "
        "unpriced: no monthly price in config",
        "  workers         2 x host 32vCPU/128GiB rack-a,rack-b role=converged  k3s=agent  protect=-     "
        "unpriced: no monthly price in config"]


@pytest.mark.parametrize("price", [-1, "cheap", True])
def test_bare_metal_host_price_must_be_a_non_negative_number(price):
    values = raw()
    values["bareMetal"]["hosts"][2]["monthlyPrice"] = price
    found = problems(values)
    assert found[0].startswith("adplatform:bareMetal.hosts[2].monthlyPrice must be a non-negative number"), found


# --- plan-diff --------------------------------------------------------------------------------------

def test_diff_shows_the_cost_delta_per_layer_and_pool(plans):
    base = plans["production"]
    head = json.loads(json.dumps(base))
    claim = next(r for r in head["resources"] if r["name"] == "redpanda-cluster")
    claim["inputs"]["spec"]["clusterSpec"]["storage"]["persistentVolume"]["size"] = "1000Gi"
    head["cost"] = cost.estimate(head)
    d = diff.diff_plans(base, head)
    per_gb = cost.table("hetzner")["storage"]["provisioners"]["csi.hetzner.cloud"]["prices"]["eu"]
    assert d["cost"]["delta"] == pytest.approx(3 * 500 * per_gb, abs=0.01)
    assert d["costBy"]["layers"]["data"]["delta"] == pytest.approx(3 * 500 * per_gb, abs=0.01)
    assert set(d["costBy"]["pools"]) == {"redpanda"}
    text = diff.render("production", "main", d)
    assert "  - layer data: " in text and "  - pool redpanda: " in text


# --- a hybrid cluster billed in two currencies ------------------------------------------------------

def _stateful_move() -> tuple[dict, dict, dict]:
    """The stateful move's plans (tests/test_hybrid.py stateful_migration): all on Hetzner; the AWS pool added and
    storageProvider aws (the instances still on their Hetzner volumes until each is replaced); the old pool removed.
    Hetzner bills in EUR, AWS in USD."""
    from tests.runs import config_plan
    from tests.test_hybrid import STATEFUL_STACK, internet_config, stateful_migration
    return tuple(config_plan(*internet_config(values), STATEFUL_STACK) for _, values in stateful_migration())


# What the AWS pool costs in USD, from tools/plan/prices/aws.yaml: three m7i.2xlarge at 0.483 an hour with a 100 GB gp3
# root volume (0.0952 a GB-month) and a public IPv4 (0.005 an hour), and once the stores have moved, the EBS gp3
# volumes of DragonflyDB's snapshots (3 x 50 GiB) and PostgreSQL's data (3 x 100) and WAL (3 x 20) on the AWS pool.
AWS_SERVERS_USD = 3 * (0.483 * MONTH + 100 * 0.0952 + 0.005 * MONTH)
AWS_POOL_USD = AWS_SERVERS_USD + (3 * 50 + 3 * 100 + 3 * 20) * 0.0952
# The object store moves with them (its volumes on the AWS pool, priced under "(shared)" as every store's that is not one
# pool's): 3 masters x 10 GiB, 3 filers x 20 GiB, 3 volume servers x 500 GiB of gp3.
AWS_SHARED_USD = (3 * 10 + 3 * 20 + 3 * 500) * 0.0952
USD_PER_EUR = 1.1750  # the ECB reference rate of 2025-12-31 (tools/plan/prices/exchange-rates.yaml)
# The moving stores' volumes, GiB each: (resource, what) -> size x count.
MOVING_GIB = {("dragonfly", "3 x 50 GiB snapshots"): 150, ("seaweedfs", "3 x 10 GiB master"): 30,
              ("seaweedfs", "3 x 20 GiB filer"): 60, ("seaweedfs", "3 x 500 GiB volume server data"): 1500,
              ("postgres-cluster", "3 x 100 GiB storage"): 300, ("postgres-cluster", "3 x 20 GiB walStorage"): 60}


def _hetzner_gib() -> float:
    return cost.table("hetzner")["storage"]["provisioners"]["csi.hetzner.cloud"]["prices"]["eu"]


def test_a_hybrid_clusters_pool_on_another_provider_is_priced_in_its_currency_and_converted_into_the_total():
    *_, plan = _stateful_move()  # moved: the stores' volumes on EBS, the Hetzner stateful pool gone
    c = plan["cost"]
    assert AWS_POOL_USD == pytest.approx(1145.832)
    assert c["unknown"] == [] and c["currency"] == "EUR" and "moving" not in c
    assert c["exchange"]["perBase"] == {"USD": USD_PER_EUR} and c["exchange"]["date"] == "2025-12-31"
    aws_usd = AWS_POOL_USD + AWS_SHARED_USD
    assert c["providers"]["aws"] == {"currency": "USD", "basis": "prices of 2026-12-07", "billed": round(aws_usd, 2),
                                     "monthly": round(aws_usd / USD_PER_EUR, 2),
                                     "pools": {"stateful-aws": 1145.83, "(shared)": round(AWS_SHARED_USD, 2)}}
    assert c["pools"]["stateful-aws"] == 975.18 == round(AWS_POOL_USD / USD_PER_EUR, 2)
    # The Hetzner part plus the AWS part converted.
    assert c["providers"]["hetzner"]["billed"] == 2810.13
    assert c["total"] == round(2810.13 + aws_usd / USD_PER_EUR, 2) == 3914.13
    text = report.render(plan)
    assert ("  by provider (each in the currency it bills; converted at the EUR reference rate of 2025-12-31: "
            "1 EUR = 1.1750 USD):") in text
    assert "    hetzner          2,810.13 EUR  (prices of 2026-09-04)" in text
    assert "    aws              1,297.20 USD = 1,104.00 EUR  (prices of 2026-12-07)" in text
    assert "    stateful-aws       975.18 EUR  (1,145.83 USD billed by aws)" in text
    assert "  stateful-aws    3 x m7i.2xlarge eu-central-1 role=stateful" in text  # servers by pool, with its cost
    assert "billed by aws in USD" not in text and not [w for w in plan["warnings"] if w.startswith("cost:")]


def test_a_moving_stores_volumes_stay_priced_on_the_old_provider_until_its_instances_are_replaced():
    # The move step's specs claim ebs-gp3, but `pulumi up` replaces no instance: each keeps its Hetzner volumes until
    # it is replaced by hand (docs/providers.md), so the step costs the AWS servers and no EBS volume yet.
    start, moving, moved = (plan["cost"] for plan in _stateful_move())
    volumes = {(i["resource"], i["what"]): i for i in moving["items"] if "until replaced" in i["what"]}
    assert len(volumes) == len(MOVING_GIB) and all("billedBy" not in i for i in volumes.values())
    for (resource, what), gib in MOVING_GIB.items():
        item = volumes[(resource, f"volumes {what}, on hetzner until replaced (hcloud-volumes)")]
        assert item["monthly"] == pytest.approx(gib * _hetzner_gib())
        assert item["pool"] == {"seaweedfs": "(shared)"}.get(resource, "stateful")  # where they were, not stateful-aws
    assert moving["providers"]["aws"]["billed"] == round(AWS_SERVERS_USD, 2)
    assert moving["providers"]["hetzner"]["billed"] == start["total"] == 3347.22  # every Hetzner volume still there
    assert moving["total"] == round(3347.22 + AWS_SERVERS_USD / USD_PER_EUR, 2) == 4281.08
    # Each moving claim, where it is and where it goes; the month once every instance is replaced.
    assert [(m["resource"], m["what"], m["now"]["provider"], m["now"]["class"], m["now"]["currency"],
             m["moved"]["provider"], m["moved"]["class"], m["moved"]["currency"]) for m in moving["moving"]] == [
        (resource, what, "hetzner", "hcloud-volumes", "EUR", "aws", "ebs-gp3", "USD") for resource, what in MOVING_GIB]
    assert [m["moved"]["billed"] for m in moving["moving"]] == [round(gib * 0.0952, 2) for gib in MOVING_GIB.values()]
    ebs_usd = sum(MOVING_GIB.values()) * 0.0952
    assert moving["movedTotal"] == pytest.approx(4281.08 - sum(MOVING_GIB.values()) * _hetzner_gib()
                                                 + ebs_usd / USD_PER_EUR, abs=0.02)
    text = report.render(_stateful_move()[1])
    assert ("    postgres-cluster: 3 x 100 GiB storage: 17.16 EUR on hetzner (hcloud-volumes); 28.56 USD on aws "
            "(ebs-gp3) once every instance is replaced") in text
    assert f"  once every moving instance is replaced: {moving['movedTotal']:,.2f} EUR per month" in text


def test_plan_diff_shows_the_other_providers_pool_converted_and_the_volumes_moving_when_they_do():
    before, moving, moved = _stateful_move()
    d = diff.diff_plans(before, moving)
    assert before["cost"]["total"] == 3347.22 and "providers" not in before["cost"]  # all on Hetzner
    # Adding the pool costs its servers; the volumes have not moved yet.
    assert d["cost"]["delta"] == round(AWS_SERVERS_USD / USD_PER_EUR, 2) == 933.86
    assert set(d["costBy"]["layers"]) == {"providers"}
    assert d["costBy"]["pools"] == {"stateful-aws": {"base": 0, "head": 933.86, "delta": 933.86}}
    text = diff.render("production-internet", "main", d)
    assert ("- estimated cost: 3,347.22 -> 4,281.08 EUR/month (+933.86), converted at the EUR reference rate of "
            "2025-12-31: 1 EUR = 1.1750 USD") in text
    assert "  - pool stateful-aws: 0.00 -> 933.86 EUR/month (+933.86)" in text
    assert ("- volumes of moving stores (`dragonfly`, `seaweedfs`, `postgres-cluster`) priced on hetzner until each "
            f"instance is replaced onto aws; once all are replaced: {moving['cost']['movedTotal']:,.2f} EUR/month") in text
    # Removing the old pool (its instances all replaced by then): its servers go and the volumes are on EBS.
    d = diff.diff_plans(moving, moved)
    ebs_eur = sum(MOVING_GIB.values()) * 0.0952 / USD_PER_EUR
    assert d["costBy"]["layers"]["data"]["delta"] == pytest.approx(
        ebs_eur - sum(MOVING_GIB.values()) * _hetzner_gib(), abs=0.02)
    assert d["costBy"]["pools"]["stateful"]["head"] == 0 and "moving" not in d


def test_a_moving_claim_whose_old_class_the_plan_cannot_tell_is_priced_as_specified_and_says_why(monkeypatch):
    # The plan of a program whose Hetzner class is named otherwise (plan-diff reads older trees' plans): no Hetzner
    # class to price the old volumes by, so they stay at the spec's EBS class, and the plan says so.
    import providers.hetzner
    monkeypatch.setattr(providers.hetzner, "STORAGE_CLASS", "hcloud-renamed")
    plan = json.loads(json.dumps(_stateful_move()[1]))
    plan["cost"] = cost.estimate(plan)
    c = plan["cost"]
    assert not [i for i in c["items"] if "until replaced" in i["what"]]
    assert _item(plan, "postgres-cluster", "3 x 100 GiB storage (ebs-gp3)") == pytest.approx(300 * 0.0952 / USD_PER_EUR)
    assert {m["reason"] for m in c["moving"]} == {
        "priced at ebs-gp3 on aws: the plan cannot tell where its instances' volumes are (the plan has no hetzner "
        "class matching ebs-gp3)"}
    assert ("    postgres-cluster: 3 x 100 GiB storage: 28.56 USD on aws (ebs-gp3) (priced at ebs-gp3 on aws: the plan "
            "cannot tell where its instances' volumes are (the plan has no hetzner class matching ebs-gp3))"
            ) in report.render(plan)


def test_a_currency_without_an_exchange_rate_is_named_never_summed_unconverted(monkeypatch):
    *_, plan = _stateful_move()
    monkeypatch.setattr(cost, "exchange_rates", lambda: {"base": "EUR", "date": "2025-12-31", "source": "test",
                                                          "perBase": {"GBP": 0.87}})
    c = cost.estimate(json.loads(json.dumps(plan)))
    assert c["total"] == 2810.13 and "stateful-aws" not in c["pools"]
    assert ("stateful-aws-1: instance m7i.2xlarge is billed by aws in USD, and tools/plan/prices/exchange-rates.yaml "
            "has no USD to EUR rate") in c["unknown"]
    assert len(c["unknown"]) == 15  # 3 x (instance, root volume, IPv4), PostgreSQL's 2 and DragonflyDB's EBS claims, the object store's 3


def test_the_exchange_rate_is_dated_sourced_and_converts_both_ways():
    rates = cost.exchange_rates()
    assert rates["base"] == "EUR" and str(rates["date"]) == "2025-12-31" and rates["source"].startswith("https://www.ecb")
    assert cost.rate("USD", "EUR") == pytest.approx(1 / USD_PER_EUR)
    assert cost.rate("EUR", "USD") == pytest.approx(USD_PER_EUR)
    assert cost.rate("EUR", "EUR") == 1.0 and cost.rate("USD", "JPY") is None


def test_a_single_provider_plan_has_no_provider_breakdown(plans):
    for stack in ("production", "staging-aws", "staging-gcp", "staging-azure", "production-baremetal"):
        assert "providers" not in plans[stack]["cost"] and "by provider" not in report.render(plans[stack]), stack
