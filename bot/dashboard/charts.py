"""Charts drawn on the server as inline SVG: no script, no CDN, text in any language.

Every label goes through XML escaping; the numbers are also in the tables beside the
charts (and in CSV), so the SVG is a picture of the table, never the only source.
"""
from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from markupsafe import Markup

FONT = 'font-family="-apple-system, PingFang SC, Noto Sans CJK SC, Microsoft YaHei, sans-serif"'
BAR = "#0b6e4f"
EMPTY = "#c9d3ce"


def _fmt(value: float, percent: bool) -> str:
    return f"{value * 100:.0f}%" if percent else f"{value:,.0f}"


def bar_chart(points: Sequence[tuple[str, float | None]], *, title: str, percent: bool = True,
              empty_label: str = "—", width: int = 640, height: int = 180) -> Markup:
    """Vertical bars, one per (label, value); None draws an empty marker (no data)."""
    left, bottom, top = 36, 34, 22
    plot_h = height - bottom - top
    n = max(len(points), 1)
    slot = (width - left - 8) / n
    bar_w = max(min(slot * 0.7, 48), 2)
    values = [v for _, v in points if v is not None]
    vmax = 1.0 if percent else max(max(values, default=0.0), 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-label="{escape(title, {chr(34): "&quot;"})}" {FONT} font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-size="13" font-weight="600">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{_fmt(vmax, percent)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    every = max(1, round(n / 12))  # at most ~12 axis labels
    for i, (label, value) in enumerate(points):
        x = left + i * slot + (slot - bar_w) / 2
        cx = x + bar_w / 2
        if value is None:
            parts.append(f'<text x="{cx:.1f}" y="{top + plot_h - 4}" text-anchor="middle" fill="{EMPTY}">'
                         f"{escape(empty_label)}</text>")
        else:
            h = plot_h * (value / vmax if vmax else 0)
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{BAR}"><title>{escape(label)}: {_fmt(value, percent)}</title></rect>')
            if n <= 16:
                parts.append(f'<text x="{cx:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle">'
                             f"{_fmt(value, percent)}</text>")
        if i % every == 0:
            parts.append(f'<text x="{cx:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                         f"{escape(label[-5:] if len(label) > 7 else label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def funnel_chart(steps: Sequence[tuple[str, int, str]], *, title: str, width: int = 640) -> Markup:
    """Horizontal bars narrowing layer by layer: (label, count, hand-on note)."""
    row_h, top, label_w = 30, 24, 150
    height = top + row_h * max(len(steps), 1) + 6
    vmax = max((c for _, c, _ in steps), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" aria-label="{escape(title, {chr(34): "&quot;"})}" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    span = width - label_w - 150
    for i, (label, count, note) in enumerate(steps):
        y = top + i * row_h
        w = max(span * count / vmax, 1 if count else 0)
        x = label_w + (span - w) / 2
        parts.append(f'<text x="{label_w - 8}" y="{y + 18}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{BAR}" rx="3"/>')
        parts.append(f'<text x="{label_w + span + 8}" y="{y + 18}">{count:,} {escape(note)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
