"""Tiny server-side SVG charts (bars and lines) for the dashboard pages.

The page stays a plain HTML document: no JavaScript and no chart library, and a chart costs a few
kilobytes. Every bar and point carries a <title>, which browsers show as a hover tooltip. Labels and
series names are escaped, so they may come from tenant data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#4f46e5", "#0ea5e9", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6")
_AXIS = "#9ca3af"
_GRID = "#eef0f3"
_TEXT = "#6b7280"
_COLOR_RE = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-z]{3,20})$")

# Plot margins: room for y labels on the left and x labels below.
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 14, 14, 30
_LEGEND_HEIGHT = 22


@dataclass(frozen=True)
class Series:
    """One line: a value per x label; None leaves a gap (e.g. no validation run that epoch)."""

    name: str
    values: Sequence[float | None]
    color: str | None = None


def compact_number(value: float) -> str:
    """Short axis label: 0, 0.25, 950, 1.2k, 3M."""
    magnitude = abs(value)
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def full_number(value: float | None) -> str:
    """Tooltip text: grouped integers, up to four significant digits otherwise."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def nice_ticks(lo: float, hi: float, count: int = 4, *, integer: bool = False) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 x 10^k) that cover [lo, hi]; whole steps for counts."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("tick range must be finite")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    raw_step = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step * (1 - 1e-9))
    if integer:
        step = max(1, math.ceil(step))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    n = round((last - first) / step)
    return [round(first + i * step, 10) + 0.0 for i in range(n + 1)]


def _color(color: str | None, index: int) -> str:
    if color is None:
        return PALETTE[index % len(PALETTE)]
    if not _COLOR_RE.match(color):
        raise ValueError(f"not a colour: {color!r}")
    return color


def _label_step(n: int, plot_width: float, label_width: float = 56) -> int:
    """Show every k-th x label so that labels never overlap."""
    fits = max(1, int(plot_width // label_width))
    return max(1, math.ceil(n / fits))


def _frame(
    *, title: str, width: int, height: int, top: int, ticks: list[float], fmt: Callable[[float], str]
) -> tuple[list[str], Callable[[float], float]]:
    """The svg opening, y grid lines with labels, and the value -> y pixel mapping."""
    plot_bottom = height - _BOTTOM
    lo, hi = ticks[0], ticks[-1]

    def y_of(value: float) -> float:
        return plot_bottom - (value - lo) / (hi - lo) * (plot_bottom - top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<g font-size="11" fill="{_TEXT}">',
    ]
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>'
        )
        parts.append(f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(tick))}</text>')
    parts.append(
        f'<line class="axis" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{plot_bottom}" y2="{plot_bottom}" '
        f'stroke="{_AXIS}"/>'
    )
    return parts, y_of


def _x_labels(labels: Sequence[str], xs: Sequence[float], height: int, step: int) -> list[str]:
    return [
        f'<text class="xlabel" x="{x:.1f}" y="{height - _BOTTOM + 18}" text-anchor="middle">{escape(label)}</text>'
        for i, (label, x) in enumerate(zip(labels, xs, strict=True))
        if i % step == 0
    ]


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    width: int = 720,
    height: int = 220,
    color: str | None = None,
    fmt: Callable[[float], str] = compact_number,
    integer: bool = False,
    empty_text: str = "",
) -> SafeString:
    """A vertical bar per label (one per day, say); zero values keep their slot.

    `integer` keeps y ticks whole (counts); `empty_text` is written across a chart whose values are all zero.
    """
    if len(labels) != len(values):
        raise ValueError("labels and values differ in length")
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise ValueError("bar values must be finite and non-negative")
    fill = _color(color, 0)
    ticks = nice_ticks(0, max(values, default=0) or 1, integer=integer)
    parts, y_of = _frame(title=title, width=width, height=height, top=_TOP, ticks=ticks, fmt=fmt)
    plot_width = width - _LEFT - _RIGHT
    band = plot_width / max(len(values), 1)
    bar_width = max(1.0, band * 0.72)
    centers = [_LEFT + band * (i + 0.5) for i in range(len(values))]
    for label, value, center in zip(labels, values, centers, strict=True):
        top = y_of(value)
        parts.append(
            f'<rect class="bar" x="{center - bar_width / 2:.1f}" y="{top:.1f}" width="{bar_width:.1f}" '
            f'height="{y_of(0) - top:.1f}" rx="2" fill="{fill}" data-label="{escape(label)}" '
            f'data-value="{value:g}"><title>{escape(label)}: {escape(full_number(value))}</title></rect>'
        )
    parts += _x_labels(labels, centers, height, _label_step(len(labels), plot_width))
    if empty_text and not any(values):
        parts.append(
            f'<text class="empty" x="{_LEFT + plot_width / 2:.1f}" y="{(_TOP + height - _BOTTOM) / 2:.1f}" '
            f'text-anchor="middle" font-size="13">{escape(empty_text)}</text>'
        )
    parts.append("</g></svg>")
    return mark_safe("".join(parts))  # every interpolated text above is escaped


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 720,
    height: int = 240,
    from_zero: bool = True,
    fmt: Callable[[float], str] = compact_number,
) -> SafeString:
    """One line per series over shared x labels (epochs, minutes...), with a legend when there are several.

    `from_zero=False` fits the y axis to the data, which suits loss curves that never approach zero.
    """
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
    present = [v for s in series for v in s.values if v is not None]
    if any(not math.isfinite(v) for v in present):
        raise ValueError("line values must be finite (use None for a gap)")
    lo = 0.0 if from_zero or not present else min(present)
    hi = max(present, default=1.0)
    if from_zero:
        lo, hi = min(lo, min(present, default=0.0)), max(hi, 0.0)
    ticks = nice_ticks(lo, hi)
    top = _TOP + (_LEGEND_HEIGHT if len(series) > 1 else 0)
    parts, y_of = _frame(title=title, width=width, height=height, top=top, ticks=ticks, fmt=fmt)
    plot_width = width - _LEFT - _RIGHT
    n = len(labels)
    xs = [_LEFT + plot_width / 2] if n == 1 else [_LEFT + plot_width * i / (n - 1) for i in range(n)]
    show_points = n <= 60
    for index, s in enumerate(series):
        stroke = _color(s.color, index)
        # A None splits the line into separate segments instead of drawing through the gap.
        path, pen_down = [], False
        for x, value in zip(xs, s.values, strict=True):
            if value is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y_of(value):.1f}")
            pen_down = True
        parts.append(
            f'<path class="line" d="{" ".join(path)}" fill="none" stroke="{stroke}" stroke-width="2" '
            f'stroke-linejoin="round" stroke-linecap="round" data-series="{escape(s.name)}"/>'
        )
        if show_points:
            for label, x, value in zip(labels, xs, s.values, strict=True):
                if value is not None:
                    parts.append(
                        f'<circle class="point" cx="{x:.1f}" cy="{y_of(value):.1f}" r="2.5" fill="{stroke}">'
                        f"<title>{escape(s.name)} @ {escape(label)}: {escape(full_number(value))}</title></circle>"
                    )
    if len(series) > 1:
        x = _LEFT
        for index, s in enumerate(series):
            parts.append(
                f'<rect x="{x}" y="{_TOP - 4}" width="10" height="10" rx="2" fill="{_color(s.color, index)}"/>'
                f'<text class="legend" x="{x + 15}" y="{_TOP + 5}">{escape(s.name)}</text>'
            )
            x += 30 + 7 * len(s.name)
    parts += _x_labels(labels, xs, height, _label_step(n, plot_width))
    parts.append("</g></svg>")
    return mark_safe("".join(parts))  # every interpolated text above is escaped
