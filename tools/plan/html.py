"""build/plan/<stack>.html: the plan as one self-contained page (inline SVG and CSS, no script, no URL
to fetch), for a merge request's artifacts: the architecture, the deploy timeline, cost per pool and
per layer, warnings, policy results and the outputs (secrets already masked by the plan)."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape

from tools.plan import architecture, timeline
from tools.plan.report import money

CSS = ("body{font-family:DejaVu Sans,Verdana,Arial,sans-serif;margin:24px;color:#202124}"
       "h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}"
       "td,th{border:1px solid #dadce0;padding:3px 10px;font-size:13px;text-align:left}td.n{text-align:right}"
       ".pic{overflow-x:auto;border:1px solid #dadce0}pre{font-size:12px;background:#f8f9fa;padding:8px;"
       "white-space:pre-wrap;word-break:break-all}li{font-size:13px}")


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], numeric: int = 1) -> str:
    """A table whose last `numeric` columns are right-aligned numbers."""
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i >= len(row) - numeric else ""}>{escape(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _cost(plan: dict[str, Any]) -> str:
    cost = plan["cost"]
    if cost.get("total") is None:
        return "<p>Cost unknown: " + escape("; ".join(cost.get("unknown") or [])) + "</p>"
    cur = cost["currency"]
    parts = [f"<p>{escape(money(cost['total'], cur))} per month (prices of {escape(str(cost['priceDate']))}, "
             f"{escape(cost.get('note', ''))})</p>"]
    for title, key in (("pool", "pools"), ("layer", "layers")):
        rows = sorted((cost.get(key) or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(_table((title, "per month"), [(n, money(a, cur)) for n, a in rows]))
    return "".join(parts)


def _list(items: list[str], none: str) -> str:
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>" if items else f"<p>{none}</p>"


def render(plan: dict[str, Any], pictures: tuple[str, str] | None = None) -> str:
    """The page; `pictures`: the architecture and timeline SVGs when the caller has drawn them already
    (`make plan` writes them as files too: drawing each once saves a tenth of a second)."""
    architecture_svg, timeline_svg = pictures or (architecture.svg(plan), timeline.svg(plan))
    policy = plan["policy"]["violations"]
    outputs = json.dumps(plan["outputs"], indent=1, sort_keys=True, default=str)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Offline plan of stack {escape(plan['stack'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Offline plan of stack {escape(plan['stack'])}</h1>",
        f"<p>provider {escape(str(plan['provider']))}, profile {escape(str(plan['profile']))}, "
        f"K3s {escape(str(plan['k3sVersion']))}, {len(plan['servers'])} servers, {len(plan['resources'])} resources. "
        "Made offline under Pulumi mocks (make plan): not a pulumi preview.</p>",
        "<h2>Architecture</h2>", f'<div class="pic">{architecture_svg}</div>',
        "<h2>First deploy (modelled)</h2>", f'<div class="pic">{timeline_svg}</div>',
        "<h2>Cost</h2>", _cost(plan),
        f"<h2>Warnings ({len(plan['warnings'])})</h2>", _list(plan["warnings"], "None."),
        f"<h2>Policy pack ({len(policy)} violations)</h2>",
        _list([f"[{v['rule']}] {v['urn']}: {v['message']}" for v in policy], "Every rule passes."),
        "<h2>Outputs (secrets masked)</h2>", f"<pre>{escape(outputs)}</pre>",
        "</body></html>", "",
    ])
