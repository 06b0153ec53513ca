"""Text and boxes for the plan's hand-laid-out SVG pictures: a conservative text-width model (so a box
sized from it always holds its label: names are never cut), escaping, and the document frame.

Widths are per character, in em, at or above DejaVu Sans (Debian's default sans-serif and the widest
common one; Arial and Helvetica are narrower), bold 12% wider. tests/test_plan_report.py checks the
model against the widths a real Chromium measures.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

FONT = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"
NARROW, WIDE = set("iljtfrI.,:;'|!()[] "), set("mwMW@%")
PAD = 8  # inner padding of a box, left and right


def em(ch: str) -> float:
    if ch in NARROW:
        return 0.42
    if ch in WIDE:
        return 1.02
    if ch.isupper():
        return 0.80
    return 0.66


def width(text: str, size: float, bold: bool = False) -> int:
    """Pixels `text` takes at most at font size `size`."""
    return int(sum(em(c) for c in text) * size * (1.12 if bold else 1.0)) + 1


def text(x: float, y: float, label: str, cls: str, anchor: str = "start") -> str:
    extra = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return f'<text x="{x:.0f}" y="{y:.0f}" class="{cls}"{extra}>{escape(label)}</text>'


def rect(x: float, y: float, w: float, h: float, cls: str, title: str | None = None) -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    close = f">{tip}</rect>" if tip else "/>"
    return f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="6" class="{cls}"{close}'


def document(w: int, h: int, style: str, body: list[str], label: str, marker: str | None = None) -> str:
    """A standalone SVG (also inlined into the HTML report as is, hence the arrow `marker` id per picture)."""
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="{FONT}" role="img" aria-label="{escape(label)}">',
        "<defs>" + (f'<marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                    'orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#5f6368"/></marker>' if marker else ""),
        f"<style>{style}</style></defs>",
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
        *body,
        "</svg>",
        "",
    ])
