"""The plan's pictures and HTML report: the architecture, the deploy timeline, the diff picture."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from urllib.parse import urlparse

import pytest

from tests import plan_edits
from tests.conftest import ROOT
from tests.runs import HUNDRED_NODES, raw_plan, stack_plan, staging_with_nodes
from tools.mockrun import stacks
from tools.plan import architecture, diff, diffpicture, html, timeline
from tools.plan.svgtext import PAD, width

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = "/usr/bin/chromium"
BOXES = ("box", "pool", "store", "ext")


@pytest.fixture(scope="module")
def plan():
    return stack_plan("production")


def _texts(picture: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(picture).iter(f"{SVG}text")]


def _hosts(outputs: dict) -> set[str]:
    urls = [u for info in (outputs.get("platform") or {}).values() if info.get("enabled")
            for u in (info.get("urls") or {}).values()]
    urls += [svc["url"] for svc in (outputs.get("adServices") or {}).values() if svc.get("url")]
    return {urlparse(u).hostname for u in urls}


@pytest.fixture(scope="module")
def other_process(plan, tmp_path_factory):
    """What another process with another hash seed writes: `python -m tools.plan production`'s files (its own run
    of the program, not a recorded one: the seed reaches the run) into out/, then the diff picture of plan ->
    _node_change(plan), read from their JSON, into diff.svg. One process for both checks (issue 22): its start-up
    and imports cost a second or two of each."""
    tmp = tmp_path_factory.mktemp("other-process")
    (tmp / "base.json").write_text(json.dumps(plan))
    (tmp / "head.json").write_text(json.dumps(_node_change(plan)))
    script = ("import json, runpy, sys\n"
              "out, base, head, picture = sys.argv[1:]\n"
              "sys.argv = ['tools.plan', 'production', '--out', out, '--quiet']\n"
              "try:\n    runpy.run_module('tools.plan', run_name='__main__', alter_sys=True)\n"  # as `python -m` does
              "except SystemExit as exited:\n    code = exited.code\n"
              "from tools.plan import diff, diffpicture\n"
              "b, h = (json.load(open(p)) for p in (base, head))\n"
              "open(picture, 'w').write(diffpicture.svg(b, h, diff.diff_plans(b, h), 'main'))\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script, *(str(tmp / name) for name in
                                                          ("out", "base.json", "head.json", "diff.svg"))],
                          cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    return tmp


def test_pictures_and_report_are_byte_identical_between_runs(plan, other_process):
    """Another process (another hash seed) writes exactly the same files."""
    out = other_process / "out"
    assert (out / "production.svg").read_text() == architecture.svg(plan)
    assert (out / "production.timeline.svg").read_text() == timeline.svg(plan)
    assert (out / "production.html").read_text() == html.render(plan)


@pytest.mark.parametrize("stack", stacks())
def test_every_pool_store_service_and_hostname_is_in_the_picture(stack):
    built = stack_plan(stack)
    texts = _texts(architecture.svg(built))
    joined = "\n".join(texts)
    outputs = built["outputs"]
    for pool in {n["pool"] for n in (outputs.get("nodes") or {}).values()}:
        assert f"pool {pool}" in texts
    for store in outputs.get("dataPlane") or {}:
        assert store in texts, store
    for service in outputs.get("adServices") or {}:
        assert service in texts, service
    for host in _hosts(outputs):
        assert host in texts, host
    assert all(cidr in joined for cidr in built["config"]["adplatform:adminCidrs"])


def test_pool_boxes_say_servers_cost_and_what_runs_there(plan):
    facts = architecture.facts(plan)
    pools = {p["name"]: p for p in facts["pools"]}
    assert pools["scylladb"]["types"] == "3 x ccx43" and pools["scylladb"]["locations"] == ["fsn1"]
    assert pools["scylladb"]["monthly"] == plan["cost"]["pools"]["scylladb"]
    # From the program's scheduling: the stores on their dedicated pools, ad services on the untainted one.
    assert pools["scylladb"]["runs"]["stores"] == ["scylladb"]
    assert pools["stateful"]["runs"]["stores"] == ["dragonfly", "objectStorage", "postgres"]
    assert "ad-serving" in pools["general"]["runs"]["ad services"]
    assert "gitlab" in pools["general"]["runs"]["platform"]
    assert "ad services" not in pools["control-plane"]["runs"], "the servers' NoExecute taint keeps them off"
    assert "scylladb" not in pools["general"]["runs"].get("stores", [])
    # DaemonSet agents that tolerate every taint are listed apart, not as workloads of every pool.
    assert "log-collector" in facts["agents"]
    services = {s["name"]: s for s in facts["services"]}
    assert services["ad-serving"]["stores"] == ["scylladb", "dragonfly", "redpanda"]
    assert {b["where"] for b in facts["backups"]} >= {"s3://adp-production-backups/production/data/postgres"}


def _boxes(root) -> dict[tuple[float, ...], list[tuple[str, str, float]]]:
    """Each box (x, y, w, h) -> the (class, text, x) lines drawn inside it, top to bottom."""
    rects = [(float(r.get("x")), float(r.get("y")), float(r.get("width")), float(r.get("height")))
             for r in root.iter(f"{SVG}rect") if (r.get("class") or "").split(" ")[0] in BOXES]
    found: dict[tuple[float, ...], list[tuple[str, str, float]]] = {}
    for t in root.iter(f"{SVG}text"):
        x, y = float(t.get("x")), float(t.get("y"))
        inside = [r for r in rects if r[0] <= x <= r[0] + r[2] and r[1] <= y <= r[1] + r[3]]
        if inside:
            found.setdefault(min(inside, key=lambda r: r[2] * r[3]), []).append((t.get("class"), t.text or "", x))
    return found


def _labels_fit(root) -> int:
    """Every label inside a box ends within it by the width model; returns how many were checked."""
    checked = 0
    for (rx, _, rw, _), lines in _boxes(root).items():
        for cls, label, x in lines:
            size = {"name": 13}.get(cls, 11)
            assert x + width(label, size, cls == "name") <= rx + rw, label
            checked += 1
    return checked


def test_no_label_is_wider_than_its_box(plan):
    """The width model (which a real browser confirms below) holds every label inside its box."""
    root = ET.fromstring(architecture.svg(plan))
    assert _labels_fit(root) > 100
    assert "…" not in "".join(_texts(architecture.svg(plan))) and "..." not in "".join(_texts(architecture.svg(plan)))


def test_a_hundred_node_stack_is_aggregated_per_pool():
    built = raw_plan(staging_with_nodes(HUNDRED_NODES))  # the scale tests' shared stack (tests/runs.py)
    picture = architecture.svg(built)
    root = ET.fromstring(picture)
    assert len(built["servers"]) == HUNDRED_NODES == 100
    assert any(t.startswith("93 x ") for t in _texts(picture)), "the 93 general servers in one line"
    assert int(root.get("width")) <= 2000 and int(root.get("height")) <= 2600
    pool_boxes = [r for r in root.iter(f"{SVG}rect") if (r.get("class") or "").startswith("pool")]
    assert len(pool_boxes) == len({s["pool"] for s in built["servers"]}) < 10, "one box per pool, not per server"


def test_timeline_critical_path_is_the_plans(plan):
    rows = timeline.rows(plan)
    assert [(s["name"], s["type"], s["seconds"]) for s in rows["critical"]] == \
        [(s["name"], s["type"], s["seconds"]) for s in plan["deployTime"]["criticalPath"]]
    assert rows["critical"][-1]["end"] == plan["deployTime"]["criticalPathSeconds"] == rows["total"]
    for before, after in zip(rows["critical"], rows["critical"][1:]):
        assert after["start"] >= before["end"], "each step starts when the one it waits on ends"
    root = ET.fromstring(timeline.svg(plan))
    highlighted = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "crit"][1:]
    assert [h.split(" (")[0] for h in highlighted] == [s["name"] for s in plan["deployTime"]["criticalPath"]]
    assert {l["layer"] for l in rows["layers"]} >= {"providers", "k3s", "data", "platform"}


def test_diff_picture_marks_a_changed_pool_an_added_host_and_the_deltas(plan):
    head = copy.deepcopy(plan)
    server = next(r for r in head["resources"] if r["urn"] == next(
        s["urn"] for s in head["servers"] if s["pool"] == "redpanda"))
    server["inputs"]["serverType"] = "ccx43"
    route = next(r for r in head["resources"] if r["type"] == architecture.ROUTE and r["name"] == "grafana-route")
    route["inputs"]["spec"]["hostnames"] = ["dashboards.ads.example.com"]
    head["cost"] = {**head["cost"], "total": head["cost"]["total"] + 10}
    changes = diff.diff_plans(plan, head)
    root = ET.fromstring(diffpicture.svg(plan, head, changes, "main"))
    marked = {(r.get("class"), r.find(f"{SVG}title").text) for r in root.iter(f"{SVG}rect")
              if r.find(f"{SVG}title") is not None}
    assert ("pool changed", "changed: pool:redpanda") in marked
    assert ("box added", "added: host:dashboards.ads.example.com") in marked
    assert not any("pool:scylladb" in title for _, title in marked), "an untouched pool is not marked"
    texts = "\n".join(_texts(ET.tostring(root, encoding="unicode")))
    assert "(+10.00)" in texts and "removed: host:grafana.ads.example.com" in texts


def _node_change(plan):
    """A head where control-plane-2 moves location (replaced), the general pool shrinks 5 -> 3 (general-5
    and general-4 drained and removed) and redpanda-1 gets a bigger type (resized in place)."""
    head = plan_edits.copy(plan)
    plan_edits.server(head, "control-plane-2")["inputs"]["location"] = "hel1"
    plan_edits.drop(head, "general-4", "general-5")
    plan_edits.server(head, "redpanda-1")["inputs"]["serverType"] = "ccx43"
    return head


def test_diff_picture_lists_replaced_removed_and_resized_nodes_in_their_pools(plan):
    head = _node_change(plan)
    root = ET.fromstring(diffpicture.svg(plan, head, diff.diff_plans(plan, head), "main"))
    pools = {lines[0][1]: [(cls, label) for cls, label, _ in lines if cls.startswith("node-")]
             for lines in _boxes(root).values() if lines[0][1].startswith("pool ")}
    assert pools["pool control-plane"] == [("node-replace", "replace: control-plane-2 (location)")]
    assert pools["pool general"] == [("node-remove", "remove: general-5"), ("node-remove", "remove: general-4")], \
        "in drain order: highest index first"
    assert pools["pool redpanda"] == [("node-resize", "resize: redpanda-1 (serverType)")]
    assert pools["pool scylladb"] == [], "an untouched pool lists no node"
    outlines = {rect.get("class") for rect in root.iter(f"{SVG}rect") if "replaced" in (rect.get("class") or "")}
    assert outlines, "the pool whose node is replaced is outlined as replaced"
    # The legend: each kind in its own colour, saying what Pulumi does.
    legend = {(t.get("class"), t.text) for t in root.iter(f"{SVG}text") if (t.get("class") or "").startswith("node-")}
    assert {("node-remove", "remove: drain, then remove"),
            ("node-replace", "replace: drain, replace (delete before create)"),
            ("node-resize", "resize: drain (hook), resize in place, uncordon")} <= legend
    style = root.find(f"{SVG}defs/{SVG}style").text
    fills = {kind: re.search(rf"\.node-{kind}{{[^}}]*fill:(#[0-9a-f]+)", style).group(1)
             for kind in ("remove", "replace", "resize")}
    assert len(set(fills.values())) == 3, fills
    assert _labels_fit(root) > 100, "node lines widen their pool's box: never cut"


def test_diff_picture_lists_the_nodes_of_a_removed_pool_under_the_title(plan):
    head = plan_edits.copy(plan)
    plan_edits.drop(head, "redpanda-1", "redpanda-2", "redpanda-3")
    head["pools"] = [p for p in head["pools"] if p["name"] != "redpanda"]
    texts = _texts(diffpicture.svg(plan, head, diff.diff_plans(plan, head), "main"))
    assert [t for t in texts if t.startswith("remove: redpanda")] == [
        "remove: redpanda-3 (pool redpanda, removed)", "remove: redpanda-2 (pool redpanda, removed)",
        "remove: redpanda-1 (pool redpanda, removed)"]
    assert "pool redpanda" not in texts


def test_diff_picture_is_byte_identical_in_another_process(plan, other_process):
    """Another hash seed draws the same node marks: their order comes from the plan, not from sets."""
    head = _node_change(plan)
    assert (other_process / "diff.svg").read_text() == diffpicture.svg(plan, head, diff.diff_plans(plan, head), "main")


def test_html_report_is_self_contained(plan):
    page = html.render(plan)
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count("<svg") == 2
    for section in ("Cost", "Warnings", "Policy pack", "Outputs (secrets masked)"):
        assert f"<h2>{section}" in page
    assert '"kubeconfig": "[secret]"' in page and "offline-placeholder" not in page


def _chromium(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) or shutil.which(CHROMIUM) is None,
                                    reason=f"{CHROMIUM} is not installed (Debian: apt-get install -y chromium)")


@needs_chromium
def test_html_report_opens_in_chromium_without_console_errors(plan, tmp_path):
    page = tmp_path / "production.html"
    page.write_text(html.render(plan))
    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri(), cwd=tmp_path)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1400, 2400)
    assert shot.stat().st_size > 50_000, "a page with two pictures, not a blank one"


@needs_chromium
def test_chromium_measures_every_label_within_the_width_model(plan, tmp_path):
    """The browser's own text lengths never exceed the model the boxes are sized by."""
    picture = architecture.svg(plan)
    probe = tmp_path / "probe.html"
    probe.write_text("<!DOCTYPE html><html><body>" + picture + "<pre id=out></pre><script>"
                     "const rows=[];for(const t of document.querySelectorAll('text')){rows.push("
                     "[t.textContent,t.getAttribute('class'),t.getComputedTextLength()])}"
                     "document.getElementById('out').textContent=JSON.stringify(rows);</script></body></html>")
    done = _chromium("--dump-dom", probe.as_uri(), cwd=tmp_path)
    measured = json.loads(re.search(r'<pre id="out">(.*?)</pre>', done.stdout, re.S).group(1)
                          .replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"'))
    sizes = {"title": (18, True), "sub": (12, False), "panel": (15, True), "name": (13, True)}
    over = [(text, real) for text, cls, real in measured
            if real > width(text, *sizes.get(cls, (11, False))) - 1]
    assert len(measured) > 100 and over == []
    assert PAD > 0
