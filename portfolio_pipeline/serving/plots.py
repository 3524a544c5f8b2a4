"""Inline SVG charts for the dashboard: no JavaScript, no CDN, no matplotlib (pure).

Each function returns one ``<svg>`` element as text, sized by ``viewBox`` so the page scales
it; labels are escaped. ``line_chart`` draws series over dates (equity curves);
``bar_chart`` draws grouped horizontal bars (weights now, after trades, at target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


@dataclass(frozen=True)
class Series:
    label: str
    dates: Sequence[date]
    values: Sequence[float]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def _legend(labels: Sequence[str], x: float, y: float) -> str:
    items = []
    for i, label in enumerate(labels):
        color = PALETTE[i % len(PALETTE)]
        dx = x + i * 130
        items.append(
            f'<rect x="{dx:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{color}"/>'
            f'<text x="{dx + 14:.0f}" y="{y:.0f}">{escape(label)}</text>'
        )
    return "".join(items)


def line_chart(series: Sequence[Series], title: str, *, width: int = 640, height: int = 280) -> str:
    """Series over dates on one axis; an empty input draws a frame saying "no data"."""
    left, right, top, bottom = 56, 12, 28, 46
    points = [(d, v) for s in series for d, v in zip(s.dates, s.values, strict=True)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>'
    )
    if not points:
        return head + f'<text x="{left}" y="{height / 2:.0f}">no data</text></svg>'
    x0 = min(d for d, _ in points).toordinal()
    x1 = max(max(d for d, _ in points).toordinal(), x0 + 1)
    y_low, y_high = min(v for _, v in points), max(v for _, v in points)
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(d: date) -> float:
        return left + (d.toordinal() - x0) / (x1 - x0) * plot_w

    def sy(v: float) -> float:
        return top + (y_high - v) / (y_high - y_low) * plot_h

    grid = "".join(
        f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
        f'stroke="#ddd"/><text x="{left - 4}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>'
        for t in _ticks(y_low, y_high)
    )
    first, last = date.fromordinal(x0), date.fromordinal(x1)
    axis = (
        f'<text x="{left}" y="{height - bottom + 14}">{first.isoformat()}</text>'
        f'<text x="{width - right}" y="{height - bottom + 14}" text-anchor="end">'
        f"{last.isoformat()}</text>"
    )
    lines = "".join(
        f'<polyline class="series" fill="none" stroke-width="1.5" '
        f'stroke="{PALETTE[i % len(PALETTE)]}" points="'
        + " ".join(f"{sx(d):.1f},{sy(v):.1f}" for d, v in zip(s.dates, s.values, strict=True))
        + '"/>'
        for i, s in enumerate(series)
    )
    legend = _legend([s.label for s in series], left, height - 8)
    return head + grid + axis + lines + legend + "</svg>"


def bar_chart(
    categories: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float]]],
    title: str,
    *,
    width: int = 640,
) -> str:
    """Grouped horizontal bars: one row per category, one bar per group (values >= 0)."""
    left, right, top, row_h = 90, 40, 28, 6 + 8 * max(len(groups), 1)
    height = top + row_h * max(len(categories), 1) + 30
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<text x="8" y="16" font-size="13" font-weight="bold">{escape(title)}</text>'
    )
    peak = max([v for _, values in groups for v in values] + [1e-12])
    plot_w = width - left - right
    bars = []
    for row, category in enumerate(categories):
        y = top + row * row_h
        bars.append(f'<text x="{left - 4}" y="{y + row_h / 2 + 3:.1f}" text-anchor="end">'
                    f"{escape(category)}</text>")  # fmt: skip
        for g, (_, values) in enumerate(groups):
            value = max(values[row], 0.0)
            w = value / peak * plot_w
            bars.append(
                f'<rect class="bar" x="{left}" y="{y + 3 + g * 8}" width="{w:.1f}" height="7" '
                f'fill="{PALETTE[g % len(PALETTE)]}"><title>{escape(category)} '
                f"{escape(groups[g][0])}: {value:.2%}</title></rect>"
            )
    legend = _legend([label for label, _ in groups], left, height - 8)
    return head + "".join(bars) + legend + "</svg>"
