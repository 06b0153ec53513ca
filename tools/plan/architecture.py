"""The architecture picture of a stack's plan (build/plan/<stack>.svg, docs/plan/production.svg).

Three panels, laid out by hand in columns and rows (no layout library: the picture is a few dozen
boxes, and hand placement keeps it byte-identical between runs):

- traffic: users -> load balancer -> gateway -> hostnames -> services -> the stores each service uses,
  and the admin path (admin CIDRs -> SSH and the Kubernetes API);
- pools: one box per pool with its servers aggregated (`n x type`, locations, provider, monthly
  cost) and what runs there, by the scheduling the program sets (tools/plan/placement.py);
- backups: what is backed up to which external bucket.

`facts()` is the picture as data (tests and the diff picture use it); `svg()` draws it, optionally
with marks (element key -> added/changed/replaced/removed) and notes (element key -> extra lines: the
nodes a change drains, replaces or resizes) for the plan-diff picture.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from tools.plan import placement
from tools.plan.svgtext import PAD, document, rect, text, width

CATEGORIES = {"k3s": "cluster services", "services": "cluster services", "data": "data operators",
              "platform": "platform", "ads": "ad services"}
CATEGORY_ORDER = ("stores", "ad services", "platform", "cluster services", "data operators")
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
S3_URL = re.compile(r"s3://[^\s\"']+")
SIZE = {"title": 18, "sub": 12, "panel": 15, "name": 13, "detail": 11}
LINE = {"name": 17, "detail": 15}
GAP, COL_GAP, MAX_WIDTH = 12, 56, 1500
STYLE = (".title{font-size:18px;font-weight:bold;fill:#202124}.sub{font-size:12px;fill:#5f6368}"
         ".panel{font-size:15px;font-weight:bold;fill:#202124}.name{font-size:13px;font-weight:bold;fill:#202124}"
         ".detail{font-size:11px;fill:#3c4043}.item{font-size:11px;fill:#202124}.cat{font-size:11px;fill:#5f6368}"
         ".frame{fill:#f8f9fa;stroke:#dadce0}.box{fill:#ffffff;stroke:#5f6368}.pool{fill:#e8f0fe;stroke:#1a73e8}"
         ".store{fill:#fef7e0;stroke:#b06000}.ext{fill:#fce8e6;stroke:#c5221f}"
         ".edge{fill:none;stroke:#80868b;stroke-width:1.2}.admin{fill:none;stroke:#c5221f;stroke-width:1.4;"
         "stroke-dasharray:5 3}.added{stroke:#188038;stroke-width:3}.changed{stroke:#e37400;stroke-width:3}"
         ".replaced{stroke:#a142f4;stroke-width:3}.removed{stroke:#c5221f;stroke-width:3;stroke-dasharray:6 3}"
         # The diff picture's node lines (tools/plan/diffpicture.py), one colour per kind; same size as .detail,
         # not bold, so the width model sizes their boxes as it does any detail line.
         ".node-remove{font-size:11px;fill:#c5221f}.node-replace{font-size:11px;fill:#8430ce}"
         ".node-resize{font-size:11px;fill:#b06000}.node-resize-undrained{font-size:11px;fill:#c5221f}")


# --- facts ------------------------------------------------------------------------------------------

def _ns(resource: dict[str, Any]) -> str | None:
    inputs = resource["inputs"]
    if "namespace" in inputs:
        return inputs.get("namespace")
    # Kubernetes objects' metadata; a cloud resource's `metadata` may be anything (a GCP instance template's is
    # a secret: its user data), so only a mapping is read.
    metadata = inputs.get("metadata")
    return metadata.get("namespace") if isinstance(metadata, dict) else None


def _unit_name(resource: dict[str, Any]) -> str:
    return str(resource["inputs"].get("name") or (resource["inputs"].get("metadata") or {}).get("name")
               or resource["name"])


def _store_namespaces(plan: dict[str, Any]) -> dict[str, str]:
    """namespace -> store: the endpoint's namespace, or the one in its in-cluster host name."""
    found = {}
    for store, info in (plan["outputs"].get("dataPlane") or {}).items():
        endpoint = info.get("endpoint") or {}
        host = str(endpoint.get("host") or endpoint.get("url") or "").split("//")[-1]
        namespace = endpoint.get("namespace") or (host.split(".")[1] if host.count(".") >= 2 else None)
        if namespace:
            found[namespace] = store
    return found


def pools(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Pools in config order with their servers aggregated; pools only the servers name are appended."""
    servers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in plan["servers"]:
        servers[s["pool"]].append(s)
    known = {p["name"]: p for p in plan.get("pools") or []}
    names = [*known, *(n for n in servers if n not in known)]
    cost = plan["cost"]
    found = []
    for name in names:
        rows = servers.get(name, [])
        types = Counter(str(s["type"]) for s in rows)
        found.append({
            "name": name, "role": known.get(name, {}).get("role") or (rows[0]["role"] if rows else None),
            "servers": len(rows), "types": " + ".join(f"{n} x {t}" for t, n in sorted(types.items())),
            "locations": sorted({str(s["location"]) for s in rows}),
            "providers": sorted({str(s.get("provider") or plan.get("provider")) for s in rows}),
            "monthly": (cost.get("pools") or {}).get(name), "currency": cost.get("currency"),
            "taints": [f"{t['key']}{'=' + t['value'] if t['value'] else ''}:{t['effect']}"
                       for t in known.get(name, {}).get("taints", [])],
        })
    return found


def workloads(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Each workload (chart, Deployment, DaemonSet, a store's custom resource) with where it runs."""
    pool_specs = plan.get("pools") or []
    stores = _store_namespaces(plan)
    found = []
    for r in plan["resources"]:
        in_store = stores.get(_ns(r) or "")
        if r["type"] not in placement.WORKLOAD_TYPES and not (in_store and r["custom"] and placement.scopes(r["inputs"])):
            continue
        main, agents = placement.placement(r["inputs"], pool_specs) if pool_specs else ([], [])
        found.append({"name": in_store or _unit_name(r), "urn": r["urn"], "namespace": _ns(r),
                      "category": "stores" if in_store else CATEGORIES.get(r["layer"], r["layer"]),
                      "pools": main, "agentPools": agents})
    return found


def _services(plan: dict[str, Any], routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The services behind the hostnames and the ad services, each with the stores it uses."""
    data = plan["outputs"].get("dataPlane") or {}
    databases = ((data.get("postgres") or {}).get("endpoint") or {}).get("databases") or {}
    buckets = ((data.get("objectStorage") or {}).get("endpoint") or {}).get("buckets") or {}
    ads = plan["outputs"].get("adServices") or {}
    found: dict[str, dict[str, Any]] = {}
    for route in routes:
        for backend in route["backends"]:
            if route["namespace"] in ads or backend in ads:
                continue
            uses = [s for s, hit in (("postgres", route["namespace"] in databases),
                                     ("objectStorage", any(b.startswith(route["namespace"]) for b in buckets)))
                    if hit and s in data]
            found[backend] = {"name": backend, "namespace": route["namespace"], "stores": uses, "detail": ""}
    for name, svc in ads.items():
        callers = svc.get("callers") or []
        found[name] = {"name": name, "namespace": "ads", "stores": [s for s in svc.get("stores") or [] if s in data],
                       "detail": (f"called by {', '.join(callers)}" if callers else
                                  "public" if svc.get("url") else "internal")}
    # In the order of the hostnames that reach them (fewer crossing edges), then the internal ones.
    order = [b for route in routes for b in route["backends"]]
    return sorted(found.values(), key=lambda s: order.index(s["name"]) if s["name"] in order else len(order))


def routes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for r in plan["resources"]:
        if r["type"] != ROUTE:
            continue
        spec = r["inputs"].get("spec") or {}
        backends = [b.get("name") for rule in spec.get("rules") or [] for b in rule.get("backendRefs") or []]
        for host in spec.get("hostnames") or []:
            found.append({"hostname": host, "namespace": _ns(r), "backends": [b for b in backends if b]})
    return sorted(found, key=lambda x: x["hostname"])


def backups(plan: dict[str, Any]) -> list[dict[str, str]]:
    """(what, where): each store's own backups, the Velero backups of volumes, the etcd snapshots."""
    found = [{"what": store, "where": info["shape"]["backup"]}
             for store, info in (plan["outputs"].get("dataPlane") or {}).items()
             if (info.get("shape") or {}).get("backup")]
    for r in plan["resources"]:
        if r["type"].startswith("kubernetes:helm.sh/") and r["inputs"].get("chart") == "velero":
            for location in ((r["inputs"].get("values") or {}).get("configuration") or {}).get("backupStorageLocation") or []:
                prefix = f"/{location['prefix']}" if location.get("prefix") else ""
                found.append({"what": "velero (volumes of the other namespaces)",
                              "where": f"s3://{location.get('bucket')}{prefix}"})
    restore = " ".join(plan["outputs"].get("etcdRestore") or [])
    bucket = re.search(r"--etcd-s3-bucket=(\S+)", restore)
    if bucket:
        folder = re.search(r"--etcd-s3-folder=(\S+)", restore)
        found.append({"what": "etcd snapshots (control-plane)",
                      "where": f"s3://{bucket.group(1)}" + (f"/{folder.group(1)}" if folder else "")})
    return found


def _entry(plan: dict[str, Any]) -> dict[str, str]:
    """What stands between the users and the gateway: the gateway's cloud load balancer."""
    gateway = next((r for r in plan["resources"] if r["type"] == GATEWAY), None)
    if gateway is None:
        return {}
    spec = gateway["inputs"].get("spec") or {}
    notes = ((spec.get("infrastructure") or {}).get("annotations") or {})
    kind = next((v for k, v in sorted(notes.items()) if k.endswith("/type")), None)
    ports = sorted({int(l.get("port", 0)) for l in spec.get("listeners") or []})
    return {"lb": f"load balancer{' ' + kind if kind else ''}",
            "lbDetail": "made by the cloud controller" if kind else "the gateway's LoadBalancer Service",
            "gateway": f"gateway {(gateway['inputs'].get('metadata') or {}).get('namespace')}/"
                       f"{(gateway['inputs'].get('metadata') or {}).get('name')}",
            "gatewayDetail": f"{spec.get('gatewayClassName')}, ports {', '.join(map(str, ports))}"}


def facts(plan: dict[str, Any]) -> dict[str, Any]:
    units = workloads(plan)
    route_list = routes(plan)
    runs: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    agents: dict[str, list[str]] = {}
    for unit in units:
        for pool in unit["pools"]:
            if unit["name"] not in runs[pool][unit["category"]]:
                runs[pool][unit["category"]].append(unit["name"])
        if unit["agentPools"]:
            agents[unit["name"]] = unit["agentPools"]
    data = plan["outputs"].get("dataPlane") or {}
    for store, info in data.items():  # a store none of whose workloads was found: where it says it runs
        if not any(store in cats.get("stores", []) for cats in runs.values()):
            for pool in (info.get("shape") or {}).get("pools") or []:
                runs[pool]["stores"].append(store)
    pool_list = pools(plan)
    for pool in pool_list:
        pool["runs"] = {c: sorted(runs[pool["name"]][c]) for c in CATEGORY_ORDER if runs[pool["name"]].get(c)}
    external = {s: (info.get("shape") or {}).get("endpoint") for s, info in data.items()
                if (info.get("shape") or {}).get("backend") == "external"}
    return {"pools": pool_list, "agents": agents, "routes": route_list, "services": _services(plan, route_list),
            "stores": list(data), "externalStores": external, "backups": backups(plan), "entry": _entry(plan),
            "adminCidrs": list((plan.get("config") or {}).get("adplatform:adminCidrs") or []),
            "apiEndpoint": plan["outputs"].get("apiEndpoint")}


# --- drawing ----------------------------------------------------------------------------------------

class Box:
    """A box of lines (class, text); its width fits its longest line, never the other way round."""

    def __init__(self, key: str, lines: list[tuple[str, str]], cls: str = "box", min_width: int = 0):
        self.key, self.lines, self.cls = key, lines, cls
        self.w = max([min_width, *(width(t, SIZE.get(c, SIZE["detail"]), c in ("name", "panel"))
                                   + 2 * PAD for c, t in lines)])
        self.h = sum(LINE.get(c, LINE["detail"]) for c, _ in lines) + 10
        self.x = self.y = 0

    def draw(self, marks: dict[str, str]) -> list[str]:
        mark = marks.get(self.key)
        out = [rect(self.x, self.y, self.w, self.h, f"{self.cls} {mark}" if mark else self.cls,
                    f"{mark}: {self.key}" if mark else None)]
        y = self.y + 4
        for cls, line in self.lines:
            y += LINE.get(cls, LINE["detail"])
            out.append(text(self.x + PAD, y - 4, line, cls))
        return out

    def right(self) -> tuple[float, float]:
        return self.x + self.w, self.y + self.h / 2

    def left(self) -> tuple[float, float]:
        return self.x, self.y + self.h / 2


MARKER = "architecture-arrow"


def _edge(a: Box, b: Box, cls: str = "edge") -> str:
    (x1, y1), (x2, y2) = a.right(), b.left()
    mid = (x1 + x2) / 2
    return f'<path d="M{x1:.0f} {y1:.0f} C{mid:.0f} {y1:.0f} {mid:.0f} {y2:.0f} {x2 - 2:.0f} {y2:.0f}" class="{cls}" marker-end="url(#{MARKER})"/>'


def _columns(columns: list[list[Box]], x: int, y: int) -> tuple[int, int]:
    """Place columns of boxes left to right from (x, y); returns the width and height used."""
    height = 0
    for column in columns:
        cy = y
        for box in column:
            box.x, box.y = x, cy
            cy += box.h + GAP
        x += max((b.w for b in column), default=0) + COL_GAP
        height = max(height, cy - y)
    return x, height


def _money(amount: float | None, currency: str | None) -> str:
    return "cost unknown" if amount is None else f"{amount:,.2f} {currency}/month"


def pool_box(pool: dict[str, Any], notes: list[tuple[str, str]] | None = None) -> Box:
    """The pool's box; `notes` (class, text) go under its servers, above what runs there."""
    lines = [("name", f"pool {pool['name']}"),
             ("detail", f"{pool['types'] or 'no servers'} · {', '.join(pool['locations']) or '-'} · "
                        f"{', '.join(pool['providers']) or '-'}"),
             ("detail", f"{_money(pool['monthly'], pool['currency'])} · role {pool['role']}")]
    lines += [("detail", f"taint {t}") for t in pool["taints"]]
    lines += notes or []
    for category, names in pool["runs"].items():
        lines.append(("cat", f"{category}:"))
        lines += [("item", f"  {n}") for n in names]
    return Box(f"pool:{pool['name']}", lines, "pool")


def _traffic(f: dict[str, Any], y: int) -> tuple[list[Box], list[str], int, int]:
    entry = f["entry"]
    users = Box("users", [("name", "users"), ("detail", "the internet, tcp 80 and 443")])
    admins = Box("admins", [("name", "admins"), ("detail", ", ".join(f["adminCidrs"]) or "adminCidrs")])
    lb = Box("lb", [("name", entry.get("lb", "load balancer")), ("detail", entry.get("lbDetail", ""))])
    ssh = Box("ssh", [("name", "SSH :22"), ("detail", "to every server (remote commands)")])
    api = Box("api", [("name", "Kubernetes API :6443"), ("detail", str(f["apiEndpoint"] or ""))])
    gw = Box("gateway", [("name", entry.get("gateway", "gateway")), ("detail", entry.get("gatewayDetail", ""))])
    hosts = {r["hostname"]: Box(f"host:{r['hostname']}", [("name", r["hostname"]), ("detail", f"namespace {r['namespace']}")])
             for r in f["routes"]}
    services = {s["name"]: Box(f"service:{s['name']}", [("name", s["name"]),
                                                       ("detail", " ".join(x for x in (f"namespace {s['namespace']}", s["detail"]) if x))])
                for s in f["services"]}
    where = {s: [p["name"] for p in f["pools"] if s in p["runs"].get("stores", [])] for s in f["stores"]}
    stores = {s: Box(f"store:{s}", [("name", s), ("detail", "external: " + str(f["externalStores"][s])
                                                  if s in f["externalStores"] else "on pool " + ", ".join(where[s]))],
                     "ext" if s in f["externalStores"] else "store") for s in f["stores"]}
    columns = [[users, admins], [lb, ssh, api], [gw], list(hosts.values()), list(services.values()), list(stores.values())]
    right, height = _columns(columns, 30, y + 30)
    edges = [_edge(users, lb), _edge(lb, gw), _edge(admins, ssh, "admin"), _edge(admins, api, "admin")]
    for r in f["routes"]:
        edges.append(_edge(gw, hosts[r["hostname"]]))
        edges += [_edge(hosts[r["hostname"]], services[b]) for b in r["backends"] if b in services]
    for s in f["services"]:
        edges += [_edge(services[s["name"]], stores[t]) for t in s["stores"] if t in stores]
    return [b for column in columns for b in column], edges, right, height + 30


def _grid(boxes: list[Box], x0: int, y: int, limit: int) -> int:
    """Boxes left to right, wrapping at `limit`; returns the height used."""
    x, row_h, top = x0, 0, y
    for box in boxes:
        if x > x0 and x + box.w > limit:
            x, y, row_h = x0, y + row_h + GAP, 0
        box.x, box.y = x, y
        x += box.w + GAP
        row_h = max(row_h, box.h)
    return y + row_h - top


def svg(plan: dict[str, Any], marks: dict[str, str] | None = None, extra: list[tuple[str, str]] | None = None,
        notes: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """The picture; `marks` colours boxes (diff), `extra` adds lines under the title (diff deltas), `notes`
    adds (class, text) lines to the pool boxes they are keyed by (`pool:<name>`: the diff's node changes)."""
    marks, notes = marks or {}, notes or {}
    f = facts(plan)
    cost, t = plan["cost"], plan["deployTime"]
    head = (f"adplatform stack {plan['stack']}: {plan['provider']}, profile {plan['profile']}, K3s {plan['k3sVersion']}, "
            f"{len(plan['servers'])} servers in {len(f['pools'])} pools")
    sub = (f"{_money(cost.get('total'), cost.get('currency'))} (prices of {cost.get('priceDate')}); first deploy about "
           f"{t['criticalPathSeconds'] // 60} min on the critical path; {len(plan['resources'])} resources")
    top = [("title", head), ("sub", sub), *(extra or [])]
    body = [text(30, 30 + 20 * i, line, cls) for i, (cls, line) in enumerate(top)]
    y = 30 + 20 * len(top)

    boxes, edges, traffic_w, traffic_h = _traffic(f, y)
    limit = max(traffic_w, MAX_WIDTH)
    panels = [("traffic: users to services to stores; admins (dashed) to SSH and the API", y, traffic_h)]
    y += traffic_h + 30

    pool_boxes = [pool_box(p, notes.get(f"pool:{p['name']}")) for p in f["pools"]]
    pools_h = _grid(pool_boxes, 30, y + 30, limit) + 30
    panels.append(("pools: servers and what runs there (by the program's node selectors and tolerations)", y, pools_h))
    boxes += pool_boxes
    y += pools_h + 10
    if f["agents"]:
        all_pools = [p["name"] for p in f["pools"]]
        lines = [("cat", "node agents (one pod per node):")] + [
            ("item", f"  {name}: " + ("every pool" if where == all_pools else "pools " + ", ".join(where)))
            for name, where in sorted(f["agents"].items())]
        agents = Box("agents", lines)
        agents.x, agents.y = 30, y
        boxes.append(agents)
        y += agents.h + 20

    if f["backups"]:
        sources = {b["what"]: Box(f"backup:{b['what']}", [("name", b["what"])]) for b in f["backups"]}
        buckets = {b["where"]: Box(f"bucket:{b['where']}", [("name", b["where"]), ("detail", "external bucket")], "ext")
                   for b in f["backups"]}
        _, backups_h = _columns([list(sources.values()), list(buckets.values())], 30, y + 30)
        edges += [_edge(sources[b["what"]], buckets[b["where"]]) for b in f["backups"]]
        panels.append(("backups to external buckets", y, backups_h + 30))
        boxes += [*sources.values(), *buckets.values()]
        y += backups_h + 40

    right = max([limit, *(b.x + b.w for b in boxes), *(width(line, SIZE.get(c, 12), True) + 30 for c, line in top)]) + 30
    frames = []
    for title, py, ph in panels:
        frames += [rect(15, py, right - 30, ph, "frame"), text(30, py + 20, title, "panel")]
    drawn = [line for box in boxes for line in box.draw(marks)]
    return document(right, y + 10, STYLE, [*body, *frames, *edges, *drawn], f"architecture of stack {plan['stack']}", MARKER)
