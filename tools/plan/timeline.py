"""The modelled first deploy as a Gantt chart (SVG): one bar per layer (from its first resource's start
to its last one's end), the longest chain into each layer, and the critical path highlighted step
by step. Times come from tools/plan/timing.py's schedule, so the highlighted chain is the plan's
critical path by construction (and a test holds it to that).
"""

from __future__ import annotations

from typing import Any

from tools.plan import model, timing
from tools.plan.svgtext import document, rect, text, width

STYLE = (".title{font-size:18px;font-weight:bold;fill:#202124}.sub{font-size:12px;fill:#5f6368}"
         ".label{font-size:12px;fill:#202124}.crit{font-size:12px;fill:#c5221f;font-weight:bold}"
         ".tick{font-size:10px;fill:#5f6368}.grid{stroke:#e8eaed}.layer{fill:#8ab4f8;stroke:#1a73e8}"
         ".step{fill:#f28b82;stroke:#c5221f}.chain{fill:#dadce0;stroke:#80868b}")
ROW, BAR, SCALE_W = 22, 14, 900


def rows(plan: dict[str, Any]) -> dict[str, Any]:
    """Layer spans and the critical path's steps, in seconds from the start of the deploy."""
    resources, finish, via = timing.schedule(plan)
    start = {urn: finish[urn] - timing.duration(r) for urn, r in resources.items()}
    layers = []
    for layer in model.layer_order(plan):
        timed = [u for u, r in resources.items() if r["layer"] == layer and timing.duration(r)]
        if timed:
            last = max(timed, key=lambda u: (finish[u], u))
            chain = [u for u in _chain(last, via) if timing.duration(resources[u])]
            layers.append({"layer": layer, "start": min(start[u] for u in timed), "end": finish[last],
                           "resources": len(timed), "chain": [resources[u]["name"] for u in chain]})
    # A step's seconds as the plan's critical path counts them (a release that waited on its database at the end
    # counts its part after it: timing.step).
    critical = [{"name": resources[u]["name"], "type": resources[u]["type"], "layer": resources[u]["layer"],
                 "start": finish[u] - seconds, "end": finish[u], "seconds": seconds}
                for u in timing.critical_chain(resources, finish, via)
                for seconds in [timing.step(resources, finish, via, u)["seconds"]]]
    return {"layers": layers, "critical": critical, "total": max(finish.values(), default=0)}


def _chain(end: str | None, via: dict[str, str | None]) -> list[str]:
    found = []
    while end is not None:
        found.append(end)
        end = via[end]
    return found[::-1]


def svg(plan: dict[str, Any]) -> str:
    data = rows(plan)
    total = max(data["total"], 1)
    labels = [f"layer {l['layer']} ({l['resources']} timed resources)" for l in data["layers"]]
    labels += [f"{s['name']} ({s['type'].rsplit(':', 1)[-1]}, {s['seconds']}s)" for s in data["critical"]]
    left = max([width(l, 12, True) for l in labels] + [120]) + 40
    scale = SCALE_W / total
    t = plan["deployTime"]
    title = (f"First deploy of stack {plan['stack']}, modelled: {timing.minutes(t['criticalPathSeconds'])} "
             "on the critical path")
    body = [text(20, 28, title, "title"),
            text(20, 48, f"serial {timing.minutes(t['serialSeconds'])}, parallelism x{t['parallelism']}; blue: "
                         "layers (first start to last end); red: the critical path, the chain to shorten", "sub")]
    y = 70
    height = 70 + ROW * (len(labels) + 3)
    step = max(60, (total // 10 + 59) // 60 * 60)  # a tick per whole minute, at most about ten
    for second in range(0, total + 1, step):
        x = left + second * scale
        body += [f'<line x1="{x:.0f}" y1="{y}" x2="{x:.0f}" y2="{height - 20}" class="grid"/>',
                 text(x, y + 10, timing.minutes(second), "tick", "middle")]
    y += 20
    for layer, label in zip(data["layers"], labels):
        w = max(2, (layer["end"] - layer["start"]) * scale)
        tip = f"longest chain into {layer['layer']}: " + " -> ".join(layer["chain"])
        body += [text(left - 10, y + 11, label, "label", "end"),
                 rect(left + layer["start"] * scale, y, w, BAR, "layer", tip)]
        y += ROW
    y += 10
    body.append(text(left - 10, y + 4, "critical path:", "crit", "end"))
    y += 14
    for step_, label in zip(data["critical"], labels[len(data["layers"]):]):
        w = max(2, step_["seconds"] * scale)
        body += [text(left - 10, y + 11, label, "crit", "end"),
                 rect(left + step_["start"] * scale, y, w, BAR, "step",
                      f"{step_['name']}: {timing.minutes(step_['start'])} to {timing.minutes(step_['end'])}")]
        y += ROW
    right = max(left + SCALE_W + 60, width(title, 18, True) + 40)
    return document(int(right), y + 20, STYLE, body, f"deploy timeline of stack {plan['stack']}")
