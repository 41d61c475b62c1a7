"""Small inline-SVG line charts for the HTML audit report (no plotting library, no JavaScript)."""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values from at or below ``lo`` to at or above ``hi`` (steps of 1, 2 or
    5 x 10^n)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2, 5 x 10^n inside ``[lo, hi]`` (``lo`` > 0)."""
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}"
    return f"{v:g}"


def line_chart(series: Sequence[dict], *, title: str, xlabel: str = "", ylabel: str = "", log_x: bool = False,
               y_range: tuple[float | None, float | None] = (None, None), width: int = 560, height: int = 300,
               markers: bool = False, integer_x: bool = False) -> str:
    """An ``<svg>`` line chart. Each series: ``{"name", "x", "y", "color"?, "dash"?}``; ``None`` y values
    break the line; ``integer_x`` keeps only whole-number x ticks (loops). Returns an empty-state chart
    when there is nothing to draw."""
    left, right, top, bottom = 62, 150, 30, 44
    pw, ph = width - left - right, height - top - bottom
    pts = [(x, y) for s in series for x, y in zip(s["x"], s["y"])
           if y is not None and x is not None and math.isfinite(y) and (not log_x or x > 0)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    if not pts:
        parts.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" fill="#888" '
                     f'font-size="12">no data</text></svg>')
        return "".join(parts)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_range[0] is None else y_range[0]
    y1 = max(ys) if y_range[1] is None else y_range[1]
    if y1 <= y0:
        y0, y1 = y0 - 0.5 * (abs(y0) or 1), y1 + 0.5 * (abs(y1) or 1)
    if x1 <= x0:
        x0, x1 = (x0 / 2, x1 * 2) if log_x else (x0 - 0.5, x1 + 0.5)
    yt = nice_ticks(y0, y1)
    if yt and y_range[0] is None:
        y0 = min(y0, yt[0])
    if yt and y_range[1] is None:
        y1 = max(y1, yt[-1])

    def sx(x: float) -> float:
        if log_x:
            return left + pw * (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        return left + pw * (x - x0) / (x1 - x0)

    def sy(y: float) -> float:
        return top + ph * (1 - (y - y0) / (y1 - y0))

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>')
    for t in yt:
        if y0 <= t <= y1:
            parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>'
                         f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" font-size="10" text-anchor="end">{_label(t)}</text>')
    for t in (log_ticks(x0, x1) if log_x else nice_ticks(x0, x1)):
        if x0 <= t <= x1 and (not integer_x or float(t).is_integer()):
            parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#888"/>'
                         f'<text x="{sx(t):.1f}" y="{top + ph + 16}" font-size="10" text-anchor="middle">{_label(t)}</text>')
    if xlabel:
        parts.append(f'<text x="{left + pw / 2}" y="{height - 6}" font-size="11" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        parts.append(f'<text x="14" y="{top + ph / 2}" font-size="11" text-anchor="middle" '
                     f'transform="rotate(-90 14 {top + ph / 2})">{escape(ylabel)}</text>')
    for i, s in enumerate(series):
        color = s.get("color") or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 4"' if s.get("dash") else ""
        segments, current = [], []
        for x, y in zip(s["x"], s["y"]):
            ok = y is not None and x is not None and math.isfinite(y) and (not log_x or x > 0)
            if ok:
                current.append(f"{sx(x):.1f},{sy(min(max(y, y0), y1)):.1f}")
            elif current:
                segments.append(current)
                current = []
        if current:
            segments.append(current)
        for seg in segments:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{" ".join(seg)}"/>')
            if markers or len(seg) == 1:
                for p in seg:
                    cx, cy = p.split(",")
                    parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        ly = top + 12 + 16 * i
        parts.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 30}" y1="{ly}" y2="{ly}" stroke="{color}" '
                     f'stroke-width="2"{dash}/><text x="{left + pw + 34}" y="{ly + 4}" font-size="11">'
                     f'{escape(str(s.get("name", "")))}</text>')
    parts.append("</svg>")
    return "".join(parts)
