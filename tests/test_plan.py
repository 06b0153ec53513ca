"""The offline plan: JSON, cost, deploy time, picture, plan-diff, speed."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest

from providers.hetzner import SERVER_TYPES
from tests.conftest import ROOT, base_raw, run_raw
from tools.mockrun import Resource
from tools.plan import cost, diff, draw, model, report, timing
from tools.plan.__main__ import main as plan_main

PRICES = cost.table("hetzner")


@pytest.fixture(scope="module")
def plan(production):
    return model.build(production)


@pytest.fixture(scope="module")
def staging_plan(staging):
    return model.build(staging)


# --- JSON -----------------------------------------------------------------------------------------

def test_json_has_every_resource_with_its_graph_and_no_secret(plan, production, tmp_path):
    assert plan_main(["production", "--out", str(tmp_path), "--quiet"]) == 0
    saved = json.loads((tmp_path / "production.json").read_text())
    assert len(saved["resources"]) == len(production.resources)
    for r in saved["resources"]:
        assert {"urn", "type", "name", "layer", "parent", "dependencies", "provider", "protect", "inputs"} <= r.keys()
    k3s = next(r for r in saved["resources"] if r["name"] == "k3s-control-plane-2")
    assert k3s["inputs"]["stdin"] == "[secret]", "the install script carries the join token"
    assert any("control-plane-1" in dep for dep in k3s["dependencies"])
    text = (tmp_path / "production.json").read_text()
    for leaked in ("offline-placeholder", "BEGIN OPENSSH", "offline-server-token", "offline-agent-token"):
        assert leaked not in text
    assert saved["outputs"]["kubeconfig"] == "[secret]"
    assert saved["config"]["adplatform:sshPrivateKey"] == "[secret]"


def test_cli_rejects_an_unknown_stack(capsys):
    assert plan_main(["nope"]) == 2
    assert "no stack file Pulumi.nope.yaml" in capsys.readouterr().err


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys, monkeypatch):
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  adplatform:provider: hetzner\n")
    monkeypatch.setattr("tools.mockrun.ROOT", tmp_path)
    monkeypatch.setattr("tools.plan.__main__.stacks", lambda: ["broken"])
    assert plan_main(["broken", "--out", str(tmp_path)]) == 1
    assert "adplatform:" in capsys.readouterr().err


def test_policy_config_for_the_pack_comes_from_the_stack(tmp_path):
    plan_main(["production", "--out", str(tmp_path), "--quiet"])
    config = json.loads((tmp_path / "production.policy.json").read_text())
    assert config["admin-ports-from-admin-cidrs"]["adminCidrs"] == ["203.0.113.0/24"]
    assert config["production-stateful-protected"]["production"] is True


# --- cost -----------------------------------------------------------------------------------------

def test_price_table_is_dated_sourced_and_covers_every_server_type_we_pick():
    assert PRICES["date"] and PRICES["source"].startswith("https://") and PRICES["currency"] == "EUR"
    assert set(SERVER_TYPES.values()) <= set(PRICES["servers"]["prices"]["eu"])


def test_cost_sums_servers_ipv4_and_load_balancer_per_pool(plan):
    eu = PRICES["servers"]["prices"]["eu"]
    ipv4 = PRICES["servers"]["extras"][0]["price"]["eu"]
    c = plan["cost"]
    assert c["pools"]["scylladb"] == pytest.approx(3 * (eu["ccx43"] + ipv4))
    assert c["pools"]["control-plane"] == pytest.approx(3 * (eu["ccx23"] + ipv4))
    assert c["pools"]["(shared)"] == pytest.approx(PRICES["priced"][0]["prices"]["eu"]["lb11"])
    assert c["total"] == pytest.approx(sum(c["pools"].values()))
    assert c["unknown"] == []


def test_unpriced_location_is_reported_not_guessed():
    run = run_raw(base_raw(profile="staging", cluster={"location": "ash"}))
    c = model.build(run)["cost"]
    assert any("no hetzner prices for location 'ash'" in u for u in c["unknown"])
    assert c["total"] == pytest.approx(0.0)
    assert any(w.startswith("cost: ") for w in model.build(run)["warnings"])


def test_unknown_server_type_and_billable_type_are_reported(plan):
    changed = json.loads(json.dumps(plan))
    server = next(r for r in changed["resources"] if r["type"] == "hcloud:index/server:Server")
    server["inputs"]["serverType"] = "cx99"
    changed["resources"].append({**server, "urn": server["urn"] + "-vol", "type": "hcloud:index/floatingIp:FloatingIp",
                                 "name": "ip"})
    c = cost.estimate(changed)
    assert any("type 'cx99' has no eu price" in u for u in c["unknown"])
    assert any("floatingIp:FloatingIp ip is billable but not in the hetzner price table" in u for u in c["unknown"])
    assert c["total"] < plan["cost"]["total"]


def test_provider_without_price_table():
    c = cost.estimate({"provider": "nowhere", "resources": []})
    assert c["total"] is None and "no price table for provider 'nowhere'" in c["unknown"][0]


# --- deploy time ----------------------------------------------------------------------------------

def _r(urn, type_="hcloud:index/server:Server", deps=(), parent="", custom=True, name=None):
    return {"urn": urn, "type": type_, "name": name or urn, "custom": custom, "parent": parent,
            "dependencies": list(deps), "provider": "", "inputs": {}, "protect": False, "layer": "x"}


def test_critical_path_is_the_longest_weighted_chain():
    server = timing.DURATIONS["hcloud:index/server:Server"]
    net = timing.DURATIONS["hcloud:index/network:Network"]
    plan = {"resources": [
        _r("net", "hcloud:index/network:Network"),
        _r("a", deps=["net"]), _r("b", deps=["a"]),          # net -> a -> b: the long chain
        _r("c", deps=["net"]),                              # parallel to a
        _r("pw", "random:index/randomPassword:RandomPassword"),
    ]}
    t = timing.estimate(plan)
    assert t["criticalPathSeconds"] == net + 2 * server
    assert [s["name"] for s in t["criticalPath"]] == ["net", "a", "b"]
    assert t["serialSeconds"] == net + 3 * server
    assert t["parallelism"] == round((net + 3 * server) / (net + 2 * server), 1)


def test_a_dependency_on_a_component_waits_for_all_its_children():
    server = timing.DURATIONS["hcloud:index/server:Server"]
    plan = {"resources": [
        _r("comp", "adplatform:x:Comp", custom=False),
        _r("a", parent="comp"), _r("b", parent="comp", deps=["a"]),
        _r("after", deps=["comp"]),
    ]}
    assert timing.estimate(plan)["criticalPathSeconds"] == 3 * server


def test_a_dependency_cycle_is_a_loud_error():
    with pytest.raises(ValueError, match="dependency cycle"):
        timing.estimate({"resources": [_r("a", deps=["b"]), _r("b", deps=["a"])]})


def test_production_critical_path_names_the_bootstrap_chain(plan):
    t = plan["deployTime"]
    names = [step["name"] for step in t["criticalPath"]]
    assert names[:3] == ["network", "subnet", "control-plane-1"]
    assert "tune-control-plane-1" in names and "k3s-control-plane-1" in names
    assert t["criticalPathSeconds"] == sum(step["seconds"] for step in t["criticalPath"])
    assert t["criticalPathSeconds"] < t["serialSeconds"] and t["parallelism"] > 2


def test_report_shows_cost_time_charts_and_hides_secrets(plan, staging_plan):
    text = report.render(plan)
    assert "Estimated cost:" in text and "EUR per month" in text
    assert "critical path" in text and "k3s-control-plane-1" in text
    assert "cilium" in text and "1.20.0" in text and "kubeconfig: [secret]" in text
    assert "Warnings: none" in text
    staging_text = report.render(staging_plan)
    assert "role scylladb has 1 node(s) but needs 3" in staging_text


# --- picture --------------------------------------------------------------------------------------

def test_svg_is_well_formed_and_shows_layers_pools_and_charts(plan):
    picture = draw.svg(plan)
    root = ET.fromstring(picture)
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for expected in ("layer providers", "layer host", "layer k3s", "scylladb (agent)", "3 x ccx43", "cilium",
                     "chart 1.20.0", "203.0.113.0/24"):
        assert expected in texts
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) >= 3, "dependency arrows between layers"


def test_readme_picture_is_current(plan):
    committed = (ROOT / "docs" / "plan" / "production.svg").read_text()
    assert committed == draw.svg(plan), "docs/plan/production.svg is stale: run `make docs`"
    assert "docs/plan/production.svg" in (ROOT / "README.md").read_text()


# --- plan-diff ------------------------------------------------------------------------------------

def test_diff_lists_added_removed_changed_and_deltas(plan):
    head = json.loads(json.dumps(plan))
    gone = head["resources"].pop()
    server = next(r for r in head["resources"] if r["name"] == "general-1")
    server["inputs"]["serverType"] = "ccx43"
    head["resources"].append({**server, "urn": server["urn"].replace("general-1", "general-4"), "name": "general-4"})
    head["cost"] = cost.estimate(head)
    head["deployTime"] = timing.estimate(head)
    d = diff.diff_plans(plan, head)
    assert [r["name"] for r in d["added"]] == ["general-4"]
    assert [r["name"] for r in d["removed"]] == [gone["name"]]
    assert d["changed"] == [{"urn": server["urn"], "type": server["type"], "name": "general-1",
                             "inputs": ["serverType"]}]
    assert d["cost"]["delta"] == pytest.approx(head["cost"]["total"] - plan["cost"]["total"]) and d["cost"]["delta"] > 0
    text = diff.render("production", "main", d)
    assert "1 to add, 1 to change, 1 to remove" in text and "`serverType`" in text and "(+" in text


def test_diff_of_a_new_stack_and_of_no_change(plan):
    assert len(diff.diff_plans(None, plan)["added"]) == len(plan["resources"])
    assert "no change" in diff.render("production", "main", diff.diff_plans(plan, plan))


def test_plan_diff_against_a_git_ref_runs_offline(tmp_path):
    out = tmp_path / "diff.md"
    assert diff.main(["HEAD", "--stack", "staging", "--out", str(out)]) == 0
    assert out.read_text().startswith("## Offline plan diff against `HEAD`")


def test_plan_diff_rejects_an_unknown_ref():
    with pytest.raises(SystemExit, match="'no-such-ref' is not a commit"):
        diff.main(["no-such-ref"])


# --- speed ----------------------------------------------------------------------------------------

def test_fifty_node_stack_plans_in_seconds_and_linearly():
    def timed(general: int) -> tuple[float, int]:
        start = time.perf_counter()
        built = model.build(run_raw(base_raw(profile="staging", cluster={
            "pools": [{"name": "general", "count": general}]})))
        return time.perf_counter() - start, len(built["servers"])

    small, small_nodes = timed(4)
    large, large_nodes = timed(43)
    assert large_nodes == 50
    assert large < 20, f"a 50-node plan took {large:.1f}s"
    per_node_small, per_node_large = small / small_nodes, large / large_nodes
    assert per_node_large < 3 * per_node_small, (
        f"plan time is not linear in nodes: {per_node_small:.3f}s/node at {small_nodes}, "
        f"{per_node_large:.3f}s/node at {large_nodes}")


def test_graph_algorithms_are_linear():
    n = 20000
    chain = [_r(f"r{i}", deps=[f"r{i - 1}"] if i else []) for i in range(n)]
    start = time.perf_counter()
    assert len(timing.estimate({"resources": chain})["criticalPath"]) == n
    deep = [Resource(urn=f"c{i}", type="adplatform:deep:C" if i == 0 else "x:y:Z", name=f"c{i}", custom=i > 0,
                     parent=f"c{i - 1}" if i else "", dependencies=[], provider="", protect=False, inputs={})
            for i in range(n)]
    assert set(model.layers(deep).values()) == {"deep"}
    assert time.perf_counter() - start < 3
