"""plan-diff's Nodes section: which nodes a change drains and removes, replaces, or drains and resizes,
in the order Pulumi takes them. Base and head are the recorded staging plan and an edited copy of it
(the edits a config change makes to the servers), so no new whole-program run is needed."""

from __future__ import annotations

import pytest

from tests.plan_edits import copy as _copy, drop as _drop, server as _server
from tests.runs import stack_plan
from tools.plan import diff, nodes


@pytest.fixture(scope="module")
def base():
    return stack_plan("staging")


def _nodes(base, head):
    return [(row["node"], row["action"]) for row in diff.diff_plans(base, head)["nodes"]]


def test_removed_nodes_are_drained_then_removed_pool_by_pool_highest_index_first(base):
    head = _copy(base)
    _drop(head, "general-2", "control-plane-2", "control-plane-3")  # control plane 3 -> 1, general 2 -> 1
    assert _nodes(base, head) == [("control-plane-3", "remove"), ("control-plane-2", "remove"),
                                  ("general-2", "remove")]
    text = diff.render("staging", "main", diff.diff_plans(base, head))
    assert "Nodes (in the order Pulumi drains them" in text
    assert text.index("`control-plane-3`: drain, then remove") < text.index("`control-plane-2`: drain, then remove")


def test_a_location_change_replaces_and_an_ignored_image_change_does_not(base):
    head = _copy(base)
    _server(head, "control-plane-2")["inputs"]["location"] = "hel1"
    _server(head, "general-1")["inputs"]["image"] = "ubuntu-26.04"  # ignore_changes: never replaces
    rows = diff.diff_plans(base, head)["nodes"]
    assert rows == [{"node": "control-plane-2", "action": "replace", "inputs": ["location"]}]
    assert "- `control-plane-2`: drain, replace (delete before create) (`location`)" in diff.render(
        "staging", "main", diff.diff_plans(base, head))


def test_a_server_type_change_is_a_resize_drained_by_the_hooks(base):
    head = _copy(base)
    _server(head, "general-1")["inputs"]["serverType"] = "cpx42"
    _server(head, "general-1")["inputs"]["labels"]["extra"] = "x"  # an in-place change, nothing to say
    _server(head, "stateful-1")["inputs"]["labels"]["extra"] = "x"
    assert diff.diff_plans(base, head)["nodes"] == [
        {"node": "general-1", "action": "resize", "inputs": ["serverType"]}]
    text = diff.render("staging", "main", diff.diff_plans(base, head))
    assert "- `general-1`: drain (hook), resize in place, uncordon (`serverType`)" in text
    assert "WITHOUT" not in text


def test_any_input_that_powers_the_server_off_is_a_resize(base):
    """Hetzner powers a server off to change its public networks too (providers/power_off.py)."""
    head = _copy(base)
    _server(head, "stateful-1")["inputs"]["publicNets"] = [{"ipv4Enabled": True, "ipv6Enabled": False}]
    assert _nodes(base, head) == [("stateful-1", "resize")]


def test_a_server_recorded_without_the_resize_hooks_is_warned_as_not_drained(base):
    head = _copy(base)
    server = _server(head, "general-1")
    server["inputs"]["serverType"] = "cpx42"
    server["options"].pop("hooks")
    rows = diff.diff_plans(base, head)["nodes"]
    assert rows == [{"node": "general-1", "action": "resize-undrained", "inputs": ["serverType"]}]
    assert ("- `general-1`: **warning**: resize in place WITHOUT automatic drain (see docs/lifecycle.md) "
            "(`serverType`)") in diff.render("staging", "main", diff.diff_plans(base, head))


def test_replace_wins_over_resize_and_no_node_change_means_no_section(base):
    head = _copy(base)
    server = _server(head, "general-2")
    server["inputs"]["serverType"], server["inputs"]["location"] = "cpx42", "fsn1"
    assert _nodes(base, head) == [("general-2", "replace")]
    assert "Nodes" not in diff.render("staging", "main", diff.diff_plans(base, _copy(base)))


def test_the_order_is_read_from_the_recorded_drain_dependencies(base):
    """With the general pool's recorded chain reversed (general-1's drain depending on general-2's), the
    order follows the recorded dependencies, not the node names."""
    reversed_base = _copy(base)
    drains = {r["name"]: r for r in reversed_base["resources"] if r["name"].startswith("drain-general-")}
    first, second = drains["drain-general-1"], drains["drain-general-2"]
    second["dependencies"].remove(first["urn"])
    first["dependencies"].append(second["urn"])
    for plan, expected in ((base, ["general-2", "general-1"]), (reversed_base, ["general-1", "general-2"])):
        head = _copy(plan)
        for name in ("general-1", "general-2"):
            _server(head, name)["inputs"]["location"] = "fsn1"
        assert [n for n, _ in _nodes(plan, head)] == expected


def test_every_priced_server_type_has_its_replacing_inputs():
    from tools.plan import cost
    for provider in ("hetzner", "aws", "gcp", "azure"):
        assert cost.table(provider)["servers"]["resource"] in nodes.REPLACED_BY
