"""The plan with autoscaled pools (issue 17): per pool its node bounds and monthly cost range, the total as a range,
plan-diff's delta of the range, and the capacity warning (plan and policy pack) when the pools the ad services run
on cannot hold them at maxReplicas, even with every autoscaled pool at its max.

One whole-program run of production with the general pool autoscaling 5..10 (module-scoped; test_ads_scaling's run,
whose custom metrics change no bound the plan reads); the other cases are edits of its plan (tests/plan_edits.py), which stand in for a config change without another run."""

from __future__ import annotations

import pytest

from policy import rules
from tests import plan_edits
from tests.test_ads_scaling import AUTOSCALED_BOUNDS as BOUNDS, scaled_production
from tests.runs import stack_plan
from tools.plan import capacity, diff, model, report

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


@pytest.fixture(scope="module")
def scaled_plan() -> dict:
    return model.build(scaled_production())


@pytest.fixture(scope="module")
def fixed_plan() -> dict:
    return stack_plan("production-baremetal")  # bare metal never autoscales


def general_server_monthly(plan: dict) -> float:
    """What one general server costs in the plan's own items (its server line: type, location)."""
    names = {r["name"] for r in plan["resources"] if r["urn"] in {s["urn"] for s in plan["servers"]
                                                                  if s["pool"] == "general"}}
    per_server = [sum(i["monthly"] for i in plan["cost"]["items"] if i["resource"] == n) for n in names]
    assert len(per_server) == BOUNDS["min"] and len(set(per_server)) == 1
    return per_server[0]


# --- the range ------------------------------------------------------------------------------------------
def test_an_autoscaled_pool_shows_its_bounds_and_monthly_range(scaled_plan):
    [general] = [p for p in scaled_plan["pools"] if p["name"] == "general"]
    assert general["autoscaling"] == BOUNDS and general["nodes"] == 5 and general["maxNodes"] == 10
    node = general_server_monthly(scaled_plan)
    row = scaled_plan["cost"]["autoscaling"]["general"]
    assert row["min"] == 5 and row["max"] == 10 and row["nodeMonthly"] == pytest.approx(node, abs=0.01)
    floor = scaled_plan["cost"]["pools"]["general"]
    assert row["monthly"] == {"min": pytest.approx(floor, abs=0.01), "max": pytest.approx(floor + 5 * node, abs=0.01)}


def test_the_total_is_a_range_when_a_pool_autoscales(scaled_plan, fixed_plan):
    c = scaled_plan["cost"]
    node = general_server_monthly(scaled_plan)
    assert c["totalMax"] == pytest.approx(c["total"] + 5 * node, abs=0.01)
    line = report.render(scaled_plan).split("Estimated cost: ")[1].split("\n")[0]
    assert line.startswith(f"{c['total']:,.2f} .. {c['totalMax']:,.2f} EUR per month")
    assert "general" in report.render(scaled_plan).split("autoscaled pools")[1].split("\n")[1]
    # No autoscaled pool: one number, as before.
    assert fixed_plan["cost"]["totalMax"] is None and fixed_plan["cost"]["autoscaling"] == {}
    assert " .. " not in report.render(fixed_plan).split("Estimated cost: ")[1].split("\n")[0]


def test_plan_diff_shows_the_change_of_the_range(scaled_plan):
    base = plan_edits.copy(scaled_plan)
    base["cost"]["autoscaling"] = {}
    base["cost"]["totalMax"] = None  # the base: the same servers, general not autoscaled
    d = diff.diff_plans(base, scaled_plan)
    added = 5 * general_server_monthly(scaled_plan)
    assert d["cost"]["delta"] == 0 and d["costMax"]["delta"] == pytest.approx(added, abs=0.01)
    assert d["autoscaling"]["general"]["base"] is None and d["autoscaling"]["general"]["head"]["max"] == 10
    text = diff.render("production", "main", d)
    assert f"- estimated cost with autoscaled pools at their max: " in text and f"({added:+,.2f})" in text
    assert "autoscaled pool general: not autoscaled -> 5..10 nodes" in text


# --- capacity: the warning -------------------------------------------------------------------------------
def _with_max_replicas(plan: dict, service: str, replicas: int) -> dict:
    edited = plan_edits.copy(plan)
    hpa = next(r for r in edited["resources"] if r["type"] == HPA and r["name"] == f"ads-{service}")
    hpa["inputs"]["spec"]["maxReplicas"] = replicas
    return edited


def test_no_capacity_warning_when_the_max_holds_the_services(scaled_plan):
    [group] = scaled_plan["capacity"].values()
    assert group["pools"] == ["general"] and group["maxNodes"] == 10
    assert group["cpuMillis"] == 10 * 8000  # 10 general nodes of dedicated-large (8 vCPUs, 32 GiB)
    assert group["otherCpuMillis"] > 5000, "the platform's own requests on the general nodes are counted"
    assert not [w for w in scaled_plan["warnings"] if w.startswith("capacity:")]


def test_the_capacity_warning_fires_when_max_replicas_outgrow_the_pools(scaled_plan):
    edited = _with_max_replicas(scaled_plan, "bidding", 100)  # 100 + 25 surge pods x 500m = 62.5 vCPUs more
    [message] = capacity.problems(edited)
    assert message.startswith("pools general at their max (10 nodes) cannot hold ")
    assert "ads/bidding" in message and "CPU" in message and "autoscaling.max" in message
    # The same rule the policy pack runs on the preview's resources with the plan's capacity as its config.
    subjects = [rules.Subject(r["urn"], r["type"], r["name"], r["inputs"]) for r in edited["resources"]]
    assert rules.capacity_problems(rules.scaled_workloads(subjects), edited["capacity"]) == [message]


def test_a_lower_max_makes_the_same_services_not_fit(scaled_plan):
    edited = plan_edits.copy(scaled_plan)
    [general] = [p for p in edited["pools"] if p["name"] == "general"]
    general["maxNodes"] = 2  # autoscaling.max 2 would be refused (min 5): the pools' capacity alone is what changes
    edited["capacity"] = capacity.groups(edited)
    assert [m for m in capacity.problems(edited) if "cannot hold" in m]


def test_scaled_workloads_are_read_from_hpas_and_their_deployments(scaled_plan):
    subjects = [rules.Subject(r["urn"], r["type"], r["name"], r["inputs"]) for r in scaled_plan["resources"]]
    bidding = next(w for w in rules.scaled_workloads(subjects) if w.name == "ads/bidding")
    assert bidding.pool == rules.UNPINNED and bidding.pods == 10 + 3  # production 3..10, 25 % surge rounded up
    assert bidding.cpu_millis == 500 and bidding.memory_mib == 512


def test_the_pack_gets_the_capacity_in_its_config(scaled_plan, tmp_path):
    from tools.plan.__main__ import write
    config = __import__("json").loads(write(scaled_plan, tmp_path)["policy"].read_text())
    assert config[rules.CAPACITY_RULE] == {"capacity": scaled_plan["capacity"]}
    assert rules.CAPACITY_RULE in {p.name for p in rules.policies()}


def test_the_packs_stack_rule_warns_through_crossguard_arguments(scaled_plan):
    """The CrossGuard callback: the preview's resources and the plan's capacity config in, the warning out."""
    from types import SimpleNamespace
    edited = _with_max_replicas(scaled_plan, "bidding", 100)
    [fit] = [p for p in rules.policies() if p.name == rules.CAPACITY_RULE]

    def args(config: dict) -> SimpleNamespace:
        resources = [SimpleNamespace(urn=r["urn"], resource_type=r["type"], name=r["name"], props=r["inputs"])
                     for r in edited["resources"]]
        return SimpleNamespace(resources=resources, get_config=lambda: config,
                               not_applicable=lambda reason: skipped.append(reason))
    reported: list[str] = []
    skipped: list[str] = []
    fit.validate(args({"capacity": edited["capacity"]}), reported.append)
    assert reported == capacity.problems(edited) and len(reported) == 1
    fit.validate(args({}), reported.append)  # no plan was made: not applicable, not silently passing
    assert len(reported) == 1 and skipped and "make plan" in skipped[0]


def test_a_pool_that_scales_from_zero_is_priced_by_its_type_and_location(scaled_plan):
    edited = plan_edits.copy(scaled_plan)
    [general] = [p for p in edited["pools"] if p["name"] == "general"]
    general.update(nodes=0, autoscaling={"min": 0, "max": 10})
    edited["servers"] = [s for s in edited["servers"] if s["pool"] != "general"]  # no general server yet
    from tools.plan import cost
    row = cost.estimate(edited)["autoscaling"]["general"]
    # The same type and location as the servers of the floor: the same price per node.
    assert row["nodeMonthly"] == pytest.approx(general_server_monthly(scaled_plan), abs=0.01)
    assert general["serverType"] and general["location"] == "fsn1"
