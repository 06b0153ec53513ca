"""A picture of the planned platform as SVG: who reaches it, its layers, pools and main components,
and which layer waits on which (from the plan's dependency graph). Pure text, no dependency."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any
from xml.sax.saxutils import escape

from tools.plan import model

WIDTH = 1120
MARGIN = 150          # left gutter for the dependency arrows
BOX_W, BOX_H, GAP = 186, 46, 10
PER_ROW = (WIDTH - MARGIN - 20) // (BOX_W + GAP)
COLOURS = {"access": "#fdecea", "servers": "#e8f0fe", "providers": "#eef7ee", "host": "#fff7e0",
           "k3s": "#f3e8fd", "default": "#f1f3f4"}


def _items(plan: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Per layer, the boxes to show: (title, detail)."""
    bands: dict[str, list[tuple[str, str]]] = {}
    counts: dict[str, Counter] = defaultdict(Counter)
    charts = {(c["layer"], c["release"]): c for c in plan["charts"]}
    for r in plan["resources"]:
        bands.setdefault(r["layer"], [])
        if r["type"].startswith(("adplatform:", "pulumi:providers:")) or r["type"].endswith(":Server"):
            continue
        if (r["layer"], r["inputs"].get("name")) in charts and r["type"].endswith(":Release"):
            chart = charts[(r["layer"], r["inputs"].get("name"))]
            bands[r["layer"]].append((f"{chart['chart']}", f"chart {chart['version']}"))
        else:
            kind = r["type"].rsplit(":", 1)[-1]
            # Commands differ by purpose, which their names carry (tune-<node>, k3s-<node>).
            counts[r["layer"]][f"{kind} {r['name'].split('-')[0]}" if kind == "Command" else kind] += 1
    for layer, kinds in counts.items():
        bands[layer] += [(kind, f"x{n}") for kind, n in sorted(kinds.items())]
    return bands


def _pools(plan: dict[str, Any]) -> list[tuple[str, str]]:
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in plan["servers"]:
        pools[s["pool"]].append(s)
    return [(f"{pool} ({rows[0]['k3s']})", f"{len(rows)} x {rows[0]['type']}, {rows[0]['role']}")
            for pool, rows in pools.items()]


def svg(plan: dict[str, Any]) -> str:
    config = plan.get("config") or {}
    admins = ", ".join(config.get("adplatform:adminCidrs") or []) or "adminCidrs"
    bands: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("access", "who reaches it", [("users", "tcp 80, 443 (world)"), ("admins", f"22, 6443 from {admins}")]),
    ]
    items = _items(plan)
    for layer in model.layer_order(plan):
        boxes = items[layer]
        bands.append((layer, f"layer {layer}", boxes))
        if layer == "providers":
            bands.append(("servers", f"servers by pool ({len(plan['servers'])})", _pools(plan)))

    out: list[str] = []
    y, band_y = 70, {}
    for key, title, boxes in bands:
        rows = max(1, -(-len(boxes) // PER_ROW))
        height = 34 + rows * (BOX_H + GAP)
        band_y[key] = (y, height)
        out.append(f'<rect x="{MARGIN - 10}" y="{y}" width="{WIDTH - MARGIN}" height="{height}" rx="8" '
                   f'fill="{COLOURS.get(key, COLOURS["default"])}" stroke="#9aa0a6"/>')
        out.append(f'<text x="{MARGIN}" y="{y + 22}" class="band">{escape(title)}</text>')
        for i, (name, detail) in enumerate(boxes):
            bx = MARGIN + (i % PER_ROW) * (BOX_W + GAP)
            by = y + 30 + (i // PER_ROW) * (BOX_H + GAP)
            out.append(f'<rect x="{bx}" y="{by}" width="{BOX_W}" height="{BOX_H}" rx="5" fill="#fff" '
                       f'stroke="#5f6368"/>')
            out.append(f'<text x="{bx + 8}" y="{by + 19}" class="name">{escape(name[:26])}</text>')
            out.append(f'<text x="{bx + 8}" y="{by + 36}" class="detail">{escape(detail[:34])}</text>')
        y += height + 18

    # Dependency arrows in the left gutter: an arrow from a layer up to each layer it waits on.
    for i, ((src, dst), n) in enumerate(sorted(model.layer_edges(plan).items())):
        if src not in band_y or dst not in band_y:
            continue
        x = 20 + (i % 6) * 18
        y1 = band_y[src][0] + band_y[src][1] / 2
        y2 = band_y[dst][0] + band_y[dst][1] / 2
        out.append(f'<path d="M{MARGIN - 10} {y1:.0f} H{x} V{y2:.0f} H{MARGIN - 14}" class="dep" '
                   f'marker-end="url(#arrow)"><title>{escape(src)} waits on {escape(dst)} ({n})</title></path>')
    if "servers" in band_y and "access" in band_y:
        y_access = band_y["access"][0] + band_y["access"][1]
        out.append(f'<path d="M{WIDTH - 30} {y_access} V{band_y["servers"][0]}" class="net" '
                   f'marker-end="url(#arrow)"><title>through the firewall</title></path>')

    cost = plan["cost"]
    money = "unknown" if cost.get("total") is None else f"{cost['total']:,.2f} {cost['currency']}/month"
    t = plan["deployTime"]
    head = (f"adplatform stack {plan['stack']}: {plan['provider']}, profile {plan['profile']}, "
            f"K3s {plan['k3sVersion']}, {len(plan['servers'])} servers, {len(plan['resources'])} resources")
    sub = (f"estimated {money} (prices of {cost.get('priceDate')}), first deploy ~"
           f"{t['criticalPathSeconds'] // 60} min on the critical path; arrows: layer waits on layer")
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" '
        f'viewBox="0 0 {WIDTH} {y + 10}" font-family="sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#5f6368"/></marker>',
        '<style>.band{font-size:15px;font-weight:bold;fill:#202124}.name{font-size:13px;fill:#202124}'
        '.detail{font-size:11px;fill:#5f6368}.dep{fill:none;stroke:#5f6368;stroke-width:1.4}'
        '.net{fill:none;stroke:#d93025;stroke-width:2;stroke-dasharray:6 4}'
        '.title{font-size:18px;font-weight:bold}.sub{font-size:12px;fill:#5f6368}</style></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="20" y="30" class="title">{escape(head)}</text>',
        f'<text x="20" y="52" class="sub">{escape(sub)}</text>',
        *out,
        "</svg>",
        "",
    ])
