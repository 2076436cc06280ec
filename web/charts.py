"""Charts for the report pages as SVG written on the server: no script, no CDN (a self-hosted
desk may have no internet), and the console's CSP (``style-src 'self'``) holds, because only
presentation attributes are used, never a ``style``.

Readable without colour: every bar carries its value as text at its end, the two series of
:func:`pair_chart` differ by pattern (solid and hatched) as well as by shade and are named in
a legend with the same swatches, and the axes are labelled. Each chart is
``role="img"`` with a ``<title>`` and a ``<desc>``; the figures themselves are in the page's
table, which the description points to (the table is the accessible version of the chart).

Callers pass labels already translated and a ``fmt`` that turns a value into its text
(``12.5 h``, ``93.1%``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

Format = Callable[[float], str]

INK = "#1c2230"
MUTED = "#5f6b7c"
GRID = "#dfe3e9"
SERIES = ("#1f56d1", "#a15c00")  # blue solid, amber hatched
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif'


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _nice_max(value: float) -> float:
    """A round top for the axis, at least ``value``: 1, 2, 5 or 10 times a power of ten, so
    the five steps of the scale are round numbers too."""
    if value <= 0:
        return 1.0
    power = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _open(ident: str, width: int, height: int, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_e(ident)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="{_e(ident)}-title {_e(ident)}-desc" font-family="{_e(FONT)}" '
        f'font-size="12" fill="{INK}">',
        f'<title id="{_e(ident)}-title">{_e(title)}</title>',
        f'<desc id="{_e(ident)}-desc">{_e(desc)}</desc>',
    ]


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(label: str) -> str:
    """An ISO week under its bars as ``W36`` (the table and the bar's title give the year)."""
    year, _, week = label.partition("-W")
    return f"W{week}" if week and year.isdigit() else label


def bar_chart(
    ident: str,
    title: str,
    desc: str,
    points: Sequence[tuple[str, float | None]],
    *,
    fmt: Format,
    axis_label: str,
    top: float | None = None,
    empty: str = "",
) -> Markup:
    """Horizontal bars, one per point (label, value), the value written at the bar's end;
    None is a missing figure (written as "–", no bar). Horizontal, because the labels are
    names and months that stay readable without turning them."""
    row_h, label_w, plot_w, pad = 26, 190, 560, 12
    width = label_w + plot_w + 90
    height = max(len(points), 1) * row_h + 64
    top = top or _nice_max(max((v or 0 for _, v in points), default=0))
    out = _open(ident, width, height, title, desc)
    y0 = pad
    plot_h = len(points) * row_h
    # Grid and scale: five steps along the value axis, the axis title under them.
    for i in range(6):
        x = label_w + plot_w * i / 5
        out.append(
            f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + plot_h}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{y0 + plot_h + 16}" text-anchor="middle" fill="{MUTED}" '
            f'font-size="11">{_e(fmt(top * i / 5))}</text>'
        )
    out.append(
        f'<text x="{label_w + plot_w / 2:.1f}" y="{y0 + plot_h + 38}" text-anchor="middle" '
        f'fill="{MUTED}">{_e(axis_label)}</text>'
    )
    if not points:
        out.append(
            f'<text x="{label_w + plot_w / 2:.1f}" y="{y0 + 18}" text-anchor="middle">'
            f"{_e(empty)}</text>"
        )
    for n, (label, value) in enumerate(points):
        y = y0 + n * row_h
        out.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(label)}</title>{_e(_truncate(label, 28))}</text>"
        )
        if value is None:
            out.append(f'<text x="{label_w + 6}" y="{y + row_h / 2 + 4:.1f}">–</text>')
            continue
        w = max(plot_w * min(value, top) / top, 1 if value else 0)
        out.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{SERIES[0]}"><title>{_e(label)}: {_e(fmt(value))}</title></rect>'
        )
        out.append(
            f'<text x="{label_w + w + 6:.1f}" y="{y + row_h / 2 + 4:.1f}" font-weight="600">'
            f"{_e(fmt(value))}</text>"
        )
    out.append(f'<line x1="{label_w}" y1="{y0}" x2="{label_w}" y2="{y0 + plot_h}" stroke="{INK}"/>')
    out.append("</svg>")
    return Markup("".join(out))


def pair_chart(
    ident: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    fmt: Format,
    axis_label: str,
    empty: str = "",
) -> Markup:
    """Two series side by side per label (arrivals and closures per week): vertical bars, the
    first solid, the second hatched, each with its value above it; a legend names them."""
    assert len(series) == 2
    pad_l, pad_t, plot_h = 56, 40, 220
    group_w = 44 if len(labels) <= 20 else 30
    bar_w = (group_w - 8) / 2
    plot_w = max(len(labels), 1) * group_w
    width = max(pad_l + plot_w + 20, 420)
    height = pad_t + plot_h + 70
    values = [v for _, vs in series for v in vs]
    top = _nice_max(max(values, default=0))
    out = _open(ident, width, height, title, desc)
    hatch = f"{_e(ident)}-hatch"
    out.append(
        f'<defs><pattern id="{hatch}" patternUnits="userSpaceOnUse" width="6" height="6" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff4dc"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{SERIES[1]}" stroke-width="3"/>'
        "</pattern></defs>"
    )
    fills = (SERIES[0], f"url(#{hatch})")
    # Legend: a swatch of each fill and the series' name.
    x = pad_l
    for (name, _), fill in zip(series, fills, strict=True):
        out.append(
            f'<rect x="{x}" y="8" width="14" height="14" fill="{fill}" stroke="{INK}" '
            f'stroke-width="0.5"/><text x="{x + 20}" y="19">{_e(name)}</text>'
        )
        x += 30 + len(name) * 7
    for i in range(6):
        v = top * i / 5
        y = pad_t + plot_h - plot_h * i / 5
        out.append(
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + plot_w}" y2="{y:.1f}" '
            f'stroke="{GRID}"/><text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="{MUTED}" font-size="11">{_e(fmt(v))}</text>'
        )
    out.append(
        f'<text transform="translate(14 {pad_t + plot_h / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle" fill="{MUTED}">{_e(axis_label)}</text>'
    )
    if not labels:
        out.append(
            f'<text x="{pad_l + 150}" y="{pad_t + plot_h / 2:.0f}" text-anchor="middle">'
            f"{_e(empty)}</text>"
        )
    every = 1 if len(labels) <= 14 else 2 if len(labels) <= 30 else 4
    for n, label in enumerate(labels):
        gx = pad_l + n * group_w + 4
        for s, ((name, vs), fill) in enumerate(zip(series, fills, strict=True)):
            value = vs[n]
            h = plot_h * value / top
            bx = gx + s * bar_w
            out.append(
                f'<rect x="{bx:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{fill}" stroke="{INK}" stroke-width="0.5">'
                f"<title>{_e(label)} · {_e(name)}: {_e(fmt(value))}</title></rect>"
            )
            if value:  # a zero is no bar and no number: the table has it
                out.append(
                    f'<text x="{bx + bar_w / 2:.1f}" y="{pad_t + plot_h - h - 3:.1f}" '
                    f'text-anchor="middle" font-size="10">{_e(fmt(value))}</text>'
                )
        if n % every == 0:
            out.append(
                f'<text x="{gx + bar_w:.1f}" y="{pad_t + plot_h + 16}" text-anchor="middle" '
                f'font-size="11"><title>{_e(label)}</title>{_e(_short(label))}</text>'
            )
    out.append(
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{pad_l + plot_w}" '
        f'y2="{pad_t + plot_h}" stroke="{INK}"/>'
    )
    out.append("</svg>")
    return Markup("".join(out))
