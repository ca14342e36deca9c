"""Charts as inline SVG: pure functions from numbers and labels to :class:`markupsafe.Markup`.

Every label is escaped with :func:`markupsafe.escape`, so text from study files or models is shown
as text. Sequential scales use viridis or cividis (Smith & van der Walt 2015; Nuñez, Anderton &
Renslow 2018), categorical series the Okabe-Ito palette (Okabe & Ito 2008): all readable with the
common colour-vision deficiencies and in greyscale print. Missing values (NaN, None) are drawn as
gaps or hatched grey cells, never as zero. Charts scale to the width of their container
(``viewBox``), so they read in a narrow window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from culture_probe.formatting import PERCENT, format_interval, format_percent
from culture_probe.report._missing import is_missing

Number = float | int | None

# Anchors sampled at t = 0, 1/8, ..., 1 from the published viridis and cividis colour maps; the
# colour between anchors is interpolated linearly in sRGB, which stays within 1% of the full maps.
_ANCHORS: dict[str, tuple[str, ...]] = {
    "viridis": (
        "#440154",
        "#472d7b",
        "#3b528b",
        "#2c728e",
        "#21918c",
        "#28ae80",
        "#5ec962",
        "#addc30",
        "#fde725",
    ),
    "cividis": (
        "#00224e",
        "#1a386f",
        "#434e6c",
        "#61656f",
        "#7d7c78",
        "#9b9476",
        "#bcae6c",
        "#dec958",
        "#fee838",
    ),
}

OKABE_ITO: tuple[str, ...] = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
"""Eight colours that stay distinct under protanopia, deuteranopia and tritanopia (Okabe & Ito)."""

MISSING_FILL = "#e5e7eb"
_INK = "#1f2328"
_MUTED = "#59636e"
_RULE = "#d1d9e0"
_CHAR_WIDTH = 6.6  # approximate advance of a 12px sans-serif character, for layout
_ROW_LABEL_CHAR_WIDTH = 7.4  # generous for a row label: wide system fonts must not clip it
_LABEL_LIMIT = 32


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def sequential_colour(t: float, palette: str = "viridis") -> str:
    """The colour at position ``t`` in [0, 1] of a perceptually uniform palette ("viridis",
    "cividis").

    Example:
        >>> sequential_colour(0.0), sequential_colour(1.0)
        ('#440154', '#fde725')
    """
    if palette not in _ANCHORS:
        raise ValueError(f"unknown palette {palette!r}; expected one of {sorted(_ANCHORS)}")
    anchors = _ANCHORS[palette]
    position = min(max(float(t), 0.0), 1.0) * (len(anchors) - 1)
    low = min(int(position), len(anchors) - 2)
    fraction = position - low
    start, end = _hex_to_rgb(anchors[low]), _hex_to_rgb(anchors[low + 1])
    mixed = (round(a + (b - a) * fraction) for a, b in zip(start, end, strict=True))
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


def relative_luminance(colour: str) -> float:
    """The WCAG 2.x relative luminance of an sRGB ``#rrggbb`` colour, from 0 (black) to 1 (white).

    Example:
        >>> relative_luminance("#000000"), relative_luminance("#ffffff")
        (0.0, 1.0)
    """

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(channel) for channel in _hex_to_rgb(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(foreground: str, background: str) -> float:
    """The WCAG 2.x contrast ratio (L1 + 0.05) / (L2 + 0.05), from 1 to 21; AA text needs 4.5.

    Example:
        >>> round(contrast_ratio("#000000", "#ffffff"), 1)
        21.0
    """
    lighter, darker = sorted(
        (relative_luminance(foreground), relative_luminance(background)), reverse=True
    )
    return (lighter + 0.05) / (darker + 0.05)


def text_colour_on(fill: str) -> str:
    """Black or white, whichever contrasts more with ``fill``.

    One of the two always reaches at least sqrt(21) = 4.58:1, so text on any cell meets WCAG AA.
    """
    on_black, on_white = contrast_ratio("#000000", fill), contrast_ratio("#ffffff", fill)
    return "#000000" if on_black >= on_white else "#ffffff"


def series_colour(index: int) -> str:
    """The ``index``-th categorical colour (Okabe-Ito, cycling)."""
    return OKABE_ITO[index % len(OKABE_ITO)]


def _zero_if_missing(value: Number) -> float:
    return 0.0 if value is None or is_missing(value) else float(value)


def _short(label: object, limit: int = _LABEL_LIMIT) -> str:
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float) -> str:
    """Coordinates with two decimals and no trailing zeros, to keep the markup small."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


#: the widest a digit or sign of an 11 px value label is drawn
_VALUE_CHAR_WIDTH = 6.6


def _fmt(value: Number, value_format: str) -> str:
    """A mark's label; a share in whole percents keeps two significant digits below 1%, so that
    a small non-zero share never reads as "0%"."""
    if value is None or is_missing(value):
        return "n/a"
    return format_percent(float(value)) if value_format == PERCENT else value_format.format(value)


@dataclass(frozen=True)
class _Scale:
    """A linear map from a data domain to a pixel range."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        clipped = min(max(value, self.low), self.high)
        return self.start + (clipped - self.low) / span * (self.end - self.start)


def _domain(values: Sequence[Number], domain: tuple[float, float] | None) -> tuple[float, float]:
    """The axis domain: ``domain`` (or zero) widened to hold every present value, so no mark
    runs past the axis (a bar of 1.44 on an axis meant to end at 1 widens the axis)."""
    present = [float(v) for v in values if not is_missing(v)]  # type: ignore[arg-type]
    base = (float(domain[0]), float(domain[1])) if domain is not None else (0.0, 0.0)
    if domain is None and not present:
        return 0.0, 1.0
    low, high = min([*present, *base]), max([*present, *base])
    if low == high:
        return low, low + 1.0
    if domain is not None and (low, high) == base:
        return low, high
    return _rounded_outward(low, high)


def _rounded_outward(low: float, high: float) -> tuple[float, float]:
    """``low`` and ``high`` moved out to the nearest ticks, so the axis ends on a labelled tick
    (an axis from 0 to 1.44 is drawn to 1.5)."""
    ticks = _nice_ticks(low, high)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else high - low
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step


def _data_range(values: Sequence[Number]) -> tuple[float, float]:
    """The smallest and largest present value (a colour scale need not include zero)."""
    present = [float(v) for v in values if not is_missing(v)]  # type: ignore[arg-type]
    if not present:
        return 0.0, 1.0
    low, high = min(present), max(present)
    return (low, high) if high > low else (low, low + 1.0)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw_step = span / count
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    tick = first
    while tick <= high + step * 1e-6:
        ticks.append(round(tick, 10))
        tick += step
    return ticks


def tick_labels(ticks: Sequence[float], value_format: str) -> list[str]:
    """Tick labels in ``value_format``, or with as many decimals as the tick step needs when that
    format would print two ticks alike (an axis from 0 to 0.0004 in "{:.3f}" reads 0.000 five
    times).

    Example:
        >>> tick_labels([0.0, 0.0001, 0.0002], "{:.3f}")
        ['0.0000', '0.0001', '0.0002']
        >>> tick_labels([0.0, 0.001, 0.002], "{:.0%}")
        ['0.0%', '0.1%', '0.2%']
        >>> tick_labels([0.0, 0.5, 1.0], "{:.2f}")
        ['0.00', '0.50', '1.00']
    """
    labels = [value_format.format(tick) for tick in ticks]
    if len(set(labels)) == len(labels) or len(ticks) < 2:
        return labels
    percent = value_format.endswith("%}")
    scaled = [tick * 100 if percent else tick for tick in ticks]
    step = min(abs(b - a) for a, b in itertools.pairwise(scaled) if b != a)
    decimals = 0
    while decimals < 12 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    suffix = "%" if percent else ""
    return [f"{value:.{decimals}f}{suffix}" for value in scaled]


def _svg(width: float, height: float, title: str, body: list[str], kind: str) -> Markup:
    """The ``<svg>`` element: accessible name from the title, scalable through the viewBox."""
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" '
        'viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-label="{title}">'
        "<title>{title}</title>{body}</svg>"
    ).format(kind=kind, w=_num(width), h=_num(height), title=title, body=Markup("".join(body)))


def _element(tag: str, tooltip: str | None = None, **attributes: object) -> str:
    """One SVG element; attribute values and the tooltip are escaped, numbers written compactly.

    Attribute names use ``_`` for ``-`` (``stroke_width``) and ``class_`` for ``class``.
    """
    rendered = " ".join(
        f'{name.rstrip("_").replace("_", "-")}="{_attribute(value)}"'
        for name, value in attributes.items()
    )
    if tooltip is None:
        return f"<{tag} {rendered}/>"
    return f"<{tag} {rendered}><title>{escape(tooltip)}</title></{tag}>"


def _attribute(value: object) -> str:
    if isinstance(value, float):
        return _num(value)
    return str(escape(str(value)))


def _text(
    x: float,
    y: float,
    content: object,
    *,
    anchor: str = "start",
    size: int = 12,
    fill: str = _INK,
    weight: str = "normal",
    full: object | None = None,
) -> str:
    """A ``<text>``; ``full`` adds a tooltip with the untruncated label."""
    tooltip = f"<title>{escape(str(full))}</title>" if full is not None and full != content else ""
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}" font-weight="{weight}">{tooltip}{escape(str(content))}</text>'
    )


def _title_text(width: float, title: str) -> str:
    """The chart's title, cut to the chart's width (8.6 px a bold 14px character); the full title
    stays in the tooltip and the svg's accessible name."""
    return _text(8, 18, _short(title, int((width - 16) / 8.6)), size=14, weight="bold", full=title)


_MAX_TICKS = 8
_TICK_GAP = 8  # pixels kept free between neighbouring tick labels


def _fits(positions: Sequence[float], labels: Sequence[str]) -> bool:
    """Whether centred labels at these x positions keep ``_TICK_GAP`` pixels apart."""
    for (x1, a), (x2, b) in itertools.pairwise(zip(positions, labels, strict=True)):
        if abs(x2 - x1) < (len(a) + len(b)) / 2 * _CHAR_WIDTH + _TICK_GAP:
            return False
    return True


def _readable(positions: list[float], labels: list[str]) -> tuple[list[float], list[str]]:
    """Every k-th tick, the smallest k that leaves at most ``_MAX_TICKS`` labels that fit."""
    for k in range(1, len(positions) + 1):
        kept_positions, kept_labels = positions[::k], labels[::k]
        if len(kept_positions) <= _MAX_TICKS and _fits(kept_positions, kept_labels):
            return kept_positions, kept_labels
    return positions[:1], labels[:1]


def _draw_axis(
    scale: _Scale, ticks: Sequence[float], labels: Sequence[str], y: float, label: str, top: float
) -> list[str]:
    """Grid lines and labels at ``ticks`` (in the scale's units), thinned until they read."""
    positions, texts = _readable([scale(t) for t in ticks], list(labels))
    parts = ['<g class="axis">']
    for x, text in zip(positions, texts, strict=True):
        parts.append(_element("line", x1=x, x2=x, y1=top, y2=y, stroke=_RULE))
        parts.append(_text(x, y + 14, text, anchor="middle", size=11, fill=_MUTED))
    parts.append("</g>")
    if label:
        parts.append(_text((scale.start + scale.end) / 2, y + 30, label, anchor="middle", size=11))
    return parts


def _x_axis(scale: _Scale, y: float, label: str, value_format: str, top: float) -> list[str]:
    ticks = _nice_ticks(scale.low, scale.high)
    if value_format == "{:.0f}":  # counts: a tick at 2.5 would be labelled "2" beside the real 2
        ticks = [tick for tick in ticks if tick == int(tick)]
    return _draw_axis(scale, ticks, tick_labels(ticks, value_format), y, label, top)


def _plot_area(left: float, top: float, right: float, bottom: float) -> str:
    """An invisible rectangle naming the region every data mark must lie in (checked in tests)."""
    return _element(
        "rect",
        class_="plot-area",
        x=left,
        y=top,
        width=right - left,
        height=bottom - top,
        fill="none",
        pointer_events="none",
    )


def _value_room(values: Sequence[Number], value_format: str, least: float) -> float:
    """Room right of the plot for the longest value printed beside a mark (11 px text)."""
    longest = max((len(_fmt(value, value_format)) for value in values), default=4)
    return max(least, longest * _VALUE_CHAR_WIDTH + 10)


def _label_width(labels: Sequence[object]) -> float:
    """Room for the longest (truncated) row label."""
    longest = max((len(_short(label)) for label in labels), default=4)
    return min(max(longest * _ROW_LABEL_CHAR_WIDTH + 12, 48), 250)


def _legend(
    names: Sequence[str], colours: Sequence[str], x: float, y: float, width: float
) -> list[str]:
    """Swatches and names, wrapped onto as many rows as the width needs."""
    parts: list[str] = []
    cursor_x, cursor_y = x, y
    for name, colour in zip(names, colours, strict=True):
        item_width = 18 + len(_short(name, 24)) * _CHAR_WIDTH + 14
        if cursor_x + item_width > width and cursor_x > x:
            cursor_x, cursor_y = x, cursor_y + 18
        parts.append(
            _element("rect", x=cursor_x, y=cursor_y - 10, width=12, height=12, fill=colour)
        )
        parts.append(_text(cursor_x + 16, cursor_y, _short(name, 24), size=11, full=name))
        cursor_x += item_width
    return parts


def _legend_height(names: Sequence[str], width: float, x: float) -> float:
    rows, cursor = 1, x
    for name in names:
        item_width = 18 + len(_short(name, 24)) * _CHAR_WIDTH + 14
        if cursor + item_width > width and cursor > x:
            rows, cursor = rows + 1, x
        cursor += item_width
    return rows * 18


def bar_chart(
    labels: Sequence[object],
    values: Sequence[Number],
    *,
    title: str,
    value_label: str = "",
    domain: tuple[float, float] | None = None,
    value_format: str = "{:.2f}",
    colour: str = OKABE_ITO[0],
    width: float = 720,
) -> Markup:
    """A horizontal bar chart, one bar per label, the value printed at the bar's end.

    Example:
        >>> "<rect" in bar_chart(["US", "JP"], [0.4, 0.7], title="Mean answer")
        True
    """
    _check_lengths(labels, values=values)
    low, high = _domain(values, domain)
    label_width = _label_width(labels)
    row, top = 22, 32
    plot_bottom = top + row * len(labels)
    scale = _Scale(low, high, label_width + 8, width - _value_room(values, value_format, least=48))
    parts = [
        _title_text(width, title),
        *_x_axis(scale, plot_bottom, value_label, value_format, top),
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + index * row
        parts.append(_text(label_width, y + 15, _short(label), anchor="end", full=label))
        if is_missing(value):
            parts.append(_text(scale.start + 4, y + 15, "n/a", size=11, fill=_MUTED))
            continue
        start, end = sorted((scale(max(low, min(0.0, high))), scale(float(value))))  # type: ignore[arg-type]
        parts.append(
            _element(
                "rect",
                f"{label}: {_fmt(value, value_format)}",
                class_="bar",
                x=start,
                y=y + 4,
                width=max(end - start, 1.0),
                height=row - 8,
                fill=colour,
            )
        )
        parts.append(_text(end + 4, y + 15, _fmt(value, value_format), size=11, fill=_MUTED))
    parts.append(_plot_area(scale.start, top, scale.end, plot_bottom))
    return _svg(width, plot_bottom + 36, title, parts, "bar")


def stacked_bar_chart(
    labels: Sequence[object],
    segments: Mapping[str, Sequence[Number]],
    *,
    title: str,
    value_label: str = "",
    domain: tuple[float, float] | None = None,
    value_format: str = "{:.2f}",
    width: float = 720,
) -> Markup:
    """Horizontal stacked bars: one bar per label, one coloured segment per series.

    Suited to shares that add up, such as variance components.

    Missing segment values count as zero in the stack but are named "n/a" in the tooltip.

    Example:
        >>> chart = stacked_bar_chart(["q1"], {"culture": [0.6], "wording": [0.4]}, title="Shares")
        >>> chart.count('class="segment"')
        2
    """
    for name, series in segments.items():
        _check_lengths(labels, **{name: series})
    names = list(segments)
    colours = [series_colour(i) for i in range(len(names))]
    totals = [
        sum(_zero_if_missing(segments[name][i]) for name in names) for i in range(len(labels))
    ]
    low, high = _domain(totals, domain)
    label_width = _label_width(labels)
    row, top = 22, 32
    legend_h = _legend_height(names, width, label_width + 8)
    plot_top = top + legend_h
    plot_bottom = plot_top + row * len(labels)
    scale = _Scale(low, high, label_width + 8, width - 16)
    parts = [_title_text(width, title), *_legend(names, colours, label_width + 8, top + 10, width)]
    parts += _x_axis(scale, plot_bottom, value_label, value_format, plot_top)
    for index, label in enumerate(labels):
        y = plot_top + index * row
        parts.append(_text(label_width, y + 15, _short(label), anchor="end", full=label))
        cumulative = 0.0
        for name, colour in zip(names, colours, strict=True):
            value = segments[name][index]
            share = max(_zero_if_missing(value), 0.0)
            start, end = scale(cumulative), scale(cumulative + share)
            cumulative += share
            parts.append(
                _element(
                    "rect",
                    f"{label}, {name}: {_fmt(value, value_format)}",
                    class_="segment",
                    x=start,
                    y=y + 4,
                    width=max(end - start, 0.0),
                    height=row - 8,
                    fill=colour,
                )
            )
    parts.append(_plot_area(scale.start, plot_top, scale.end, plot_bottom))
    return _svg(width, plot_bottom + 36, title, parts, "stacked")


def heatmap(
    row_labels: Sequence[object],
    column_labels: Sequence[object],
    values: Sequence[Sequence[Number]],
    *,
    title: str,
    domain: tuple[float, float] | None = None,
    palette: str = "viridis",
    value_format: str = "{:.2f}",
    legend_label: str = "",
    show_values: bool = True,
    width: float = 720,
) -> Markup:
    """A grid of coloured cells (rows x columns) with a colour bar; missing cells grey, "n/a".

    Example:
        >>> chart = heatmap(["US", "JP"], ["p1", "p2"], [[0.1, 0.2], [0.8, None]], title="Answer")
        >>> chart.count('class="cell"'), chart.count("n/a")
        (4, 2)
    """
    if len(values) != len(row_labels) or any(len(row) != len(column_labels) for row in values):
        raise ValueError(
            f"heatmap values must be {len(row_labels)} rows x {len(column_labels)} columns"
        )
    every = [v for row in values for v in row]
    # a value beyond the requested domain widens the colour bar rather than taking its end colour
    low, high = _domain(every, domain) if domain is not None else _data_range(every)
    label_width = _label_width(row_labels)
    longest_column = max((len(_short(c, 18)) for c in column_labels), default=2)
    header = min(longest_column * _CHAR_WIDTH * 0.72 + 16, 110)
    top = 32 + header
    available = width - label_width - 16
    cell_w = max(min(available / max(len(column_labels), 1), 90), 14)
    cell_h = 22
    parts = [_title_text(width, title)]
    for j, column in enumerate(column_labels):
        x = label_width + 8 + (j + 0.5) * cell_w
        parts.append(
            f'<g transform="translate({_num(x)},{_num(top - 6)}) rotate(-45)">'
            + _text(0, 0, _short(column, 18), size=11, full=column)
            + "</g>"
        )
    for i, (label, row) in enumerate(zip(row_labels, values, strict=True)):
        y = top + i * cell_h
        parts.append(_text(label_width, y + 15, _short(label), anchor="end", full=label))
        for j, value in enumerate(row):
            x = label_width + 8 + j * cell_w
            missing = is_missing(value)
            t = 0.0 if missing else (float(value) - low) / (high - low)  # type: ignore[arg-type]
            fill = MISSING_FILL if missing else sequential_colour(t, palette)
            parts.append(
                _element(
                    "rect",
                    f"{label} x {column_labels[j]}: {_fmt(value, value_format)}",
                    class_="cell",
                    x=x,
                    y=float(y),
                    width=cell_w - 1,
                    height=cell_h - 1,
                    fill=fill,
                )
            )
            if show_values and (cell_w >= 34 or missing):
                parts.append(
                    _text(
                        x + cell_w / 2,
                        y + 15,
                        _fmt(value, value_format),
                        anchor="middle",
                        size=10,
                        fill=_MUTED if missing else text_colour_on(fill),
                    )
                )
    grid_left = label_width + 8
    grid_bottom = top + cell_h * len(row_labels)
    parts.append(_plot_area(grid_left, top, grid_left + cell_w * len(column_labels), grid_bottom))
    bottom = grid_bottom + 14
    parts += _colour_bar(
        label_width + 8, bottom, min(available, 260), low, high, palette, value_format
    )
    if legend_label:
        parts.append(_text(label_width + 8, bottom + 40, legend_label, size=11))
    # many narrow columns, and the last column's label, which leans right from its centre
    label_reach = grid_left + (len(column_labels) - 0.5) * cell_w + header - 6
    full_width = max(width, grid_left + cell_w * len(column_labels) + 8, label_reach)
    return _svg(full_width, bottom + (50 if legend_label else 34), title, parts, "heatmap")


def _colour_bar(
    x: float, y: float, length: float, low: float, high: float, palette: str, value_format: str
) -> list[str]:
    steps = 24
    parts = []
    for k in range(steps):
        parts.append(
            _element(
                "rect",
                x=x + k * length / steps,
                y=y,
                width=length / steps + 0.5,
                height=10,
                fill=sequential_colour(k / (steps - 1), palette),
            )
        )
    parts.append(_text(x, y + 24, value_format.format(low), size=10, fill=_MUTED))
    parts.append(
        _text(x + length, y + 24, value_format.format(high), anchor="end", size=10, fill=_MUTED)
    )
    return parts


def forest_plot(
    labels: Sequence[object],
    estimates: Sequence[Number],
    lows: Sequence[Number],
    highs: Sequence[Number],
    *,
    title: str,
    reference: float | None = None,
    value_label: str = "",
    log_scale: bool = False,
    value_format: str = "{:.2f}",
    width: float = 720,
) -> Markup:
    """Point estimates with confidence intervals, one row per label, and a dashed reference line.

    With ``log_scale`` the axis is log10 (for ratios such as the culture-vs-wording index, where 1
    is parity); non-positive values are then clipped to the smallest positive value shown.

    Example:
        >>> chart = forest_plot(["q1", "q2"], [2.0, 0.5], [1.2, 0.2], [3.1, 0.9], title="CWI",
        ...                     reference=1.0, log_scale=True)
        >>> chart.count('class="interval"'), chart.count('class="estimate"')
        (2, 2)
    """
    _check_lengths(labels, estimates=estimates, lows=lows, highs=highs)
    transform = _log10 if log_scale else float
    every = [v for v in (*estimates, *lows, *highs) if not is_missing(v)]
    if log_scale:
        every = [v for v in every if float(v) > 0]  # type: ignore[arg-type]
    points = [transform(float(v)) for v in every]  # type: ignore[arg-type]
    if reference is not None and (not log_scale or reference > 0):
        points.append(transform(reference))
    low, high = (min(points), max(points)) if points else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    pad = (high - low) * 0.05
    label_width = _label_width(labels)
    row, top = 22, 32
    plot_bottom = top + row * len(labels)
    value_room = _value_room(estimates, value_format, least=56)
    scale = _Scale(low - pad, high + pad, label_width + 8, width - value_room)
    parts = [_title_text(width, title)]
    parts += _forest_axis(scale, plot_bottom, top, value_label, log_scale, value_format)
    if reference is not None and (not log_scale or reference > 0):
        x = scale(transform(reference))
        parts.append(
            _element(
                "line",
                class_="reference",
                x1=x,
                x2=x,
                y1=top,
                y2=plot_bottom,
                stroke=_MUTED,
                stroke_dasharray="4 3",
            )
        )
    floor = low - pad
    for index, label in enumerate(labels):
        y = top + index * row + row / 2
        parts.append(_text(label_width, y + 4, _short(label), anchor="end", full=label))
        estimate, lo, hi = estimates[index], lows[index], highs[index]

        def place(value: Number) -> float | None:
            if is_missing(value):
                return None
            v = float(value)  # type: ignore[arg-type]
            return scale(transform(v) if not log_scale or v > 0 else floor)

        x_lo, x_hi, x_est = place(lo), place(hi), place(estimate)
        tooltip = f"{label}: {format_interval(estimate, lo, hi, value_format, missing='n/a')}"
        if x_lo is not None and x_hi is not None:
            parts.append(
                _element(
                    "line",
                    tooltip,
                    class_="interval",
                    x1=x_lo,
                    x2=x_hi,
                    y1=y,
                    y2=y,
                    stroke=OKABE_ITO[0],
                    stroke_width=2,
                )
            )
        if x_est is None:
            parts.append(_text(scale.start + 4, y + 4, "n/a", size=11, fill=_MUTED))
            continue
        parts.append(
            _element(
                "rect",
                tooltip,
                class_="estimate",
                # a value clipped to the axis end (0 on a log axis) keeps its whole mark inside
                x=min(max(x_est, scale.start + 4), scale.end - 4) - 4,
                y=y - 4,
                width=8,
                height=8,
                fill=OKABE_ITO[5],
            )
        )
        parts.append(
            _text(width - value_room + 4, y + 4, _fmt(estimate, value_format), size=11, fill=_MUTED)
        )
    parts.append(_plot_area(scale.start, top, scale.end, plot_bottom))
    return _svg(width, plot_bottom + 36, title, parts, "forest")


def _log10(value: float) -> float:
    return math.log10(value)


def _forest_axis(
    scale: _Scale, bottom: float, top: float, label: str, log_scale: bool, value_format: str
) -> list[str]:
    if not log_scale:
        return _x_axis(scale, bottom, label, value_format, top)
    values = log_ticks(scale.low, scale.high)
    return _draw_axis(
        scale, [math.log10(v) for v in values], [f"{v:g}" for v in values], bottom, label, top
    )


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log10 axis from 10**low to 10**high: 1-2-5 per decade, or one tick per
    decade, or every n-th decade, whichever first gives at most eight; linear nice ticks when the
    range is too narrow to hold two of those.

    Example:
        >>> log_ticks(-1.2, 1.1)
        [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
        >>> log_ticks(-3, 3)
        [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
        >>> len(log_ticks(-30, 30))
        7
    """
    first, last = math.floor(low), math.ceil(high)
    inside = [
        multiple * 10.0**exponent
        for exponent in range(first, last + 1)
        for multiple in (1, 2, 5)
        if low - 1e-9 <= exponent + math.log10(multiple) <= high + 1e-9
    ]
    if len(inside) < 2:
        return [t for t in _nice_ticks(10**low, 10**high, 4) if t > 0]
    if len(inside) <= _MAX_TICKS:
        return inside
    decades = [e for e in range(first, last + 1) if low - 1e-9 <= e <= high + 1e-9]
    step = math.ceil(len(decades) / _MAX_TICKS)
    anchor = 0 if 0 in decades else decades[0]  # keep 1 (parity) on the axis when it is there
    return [10.0**e for e in decades if (e - anchor) % step == 0]


def histogram(
    values: Sequence[Number],
    *,
    title: str,
    bins: int = 20,
    domain: tuple[float, float] | None = None,
    value_label: str = "",
    value_format: str = "{:.2f}",
    reference: float | None = None,
    width: float = 720,
    height: float = 220,
) -> Markup:
    """A histogram with a strip (rug) of the individual values underneath; NaN counted aside.

    Example:
        >>> chart = histogram([0.1, 0.15, 0.9], title="Wording spread", bins=4, domain=(0, 1))
        >>> chart.count('class="bin"'), chart.count('class="tick"')
        (4, 3)
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    present = [float(v) for v in values if not is_missing(v)]  # type: ignore[arg-type]
    low, high = _domain(present, domain)
    counts = [0] * bins
    for value in present:
        position = int((min(max(value, low), high) - low) / (high - low) * bins)
        counts[min(position, bins - 1)] += 1
    left, right, top = 44.0, width - 16, 32.0
    strip_top = height - 58
    bottom = strip_top - 10
    scale = _Scale(low, high, left, right)
    count_scale = _Scale(0, max([*counts, 1]), bottom, top)
    parts = [_title_text(width, title)]
    for tick in _nice_ticks(0, max([*counts, 1]), 4):
        if tick != int(tick):
            continue
        y = count_scale(tick)
        parts.append(_element("line", x1=left, x2=right, y1=y, y2=y, stroke=_RULE))
        parts.append(_text(left - 6, y + 4, f"{int(tick)}", anchor="end", size=10, fill=_MUTED))
    bin_width = (right - left) / bins
    for index, count in enumerate(counts):
        x = left + index * bin_width
        y = count_scale(count)
        edge_low = low + index * (high - low) / bins
        edge_high = edge_low + (high - low) / bins
        parts.append(
            _element(
                "rect",
                f"{value_format.format(edge_low)} to {value_format.format(edge_high)}: {count}",
                class_="bin",
                x=x + 0.5,
                y=y,
                width=bin_width - 1,
                height=bottom - y,
                fill=OKABE_ITO[0],
            )
        )
    for value in present:
        x = scale(value)
        parts.append(
            _element(
                "line",
                class_="tick",
                x1=x,
                x2=x,
                y1=strip_top,
                y2=strip_top + 12,
                stroke=OKABE_ITO[5],
                stroke_opacity="0.6",
            )
        )
    if reference is not None:
        x = scale(reference)
        parts.append(
            _element(
                "line",
                class_="reference",
                x1=x,
                x2=x,
                y1=top,
                y2=strip_top + 12,
                stroke=_INK,
                stroke_dasharray="4 3",
            )
        )
    axis = _x_axis(scale, strip_top + 14, value_label, value_format, strip_top + 14)
    parts += axis
    missing = len(values) - len(present)
    if missing:
        parts.append(_text(right, 18, f"{missing} missing", anchor="end", size=11, fill=_MUTED))
    parts.append(_plot_area(left, top, right, strip_top + 12))
    return _svg(width, height, title, parts, "histogram")


def distribution_bars(
    categories: Sequence[object],
    series: Mapping[str, Sequence[Number]],
    *,
    title: str,
    value_format: str = "{:.0%}",
    domain: tuple[float, float] | None = None,
    width: float = 720,
    height: float = 240,
) -> Markup:
    """Side-by-side vertical bars: per category (answer option), one bar per series (model, human).

    Example:
        >>> series = {"model": [0.7, 0.3], "human": [0.5, 0.5]}
        >>> chart = distribution_bars(["agree", "disagree"], series, title="q1, JP")
        >>> chart.count('class="dist-bar"')
        4
    """
    for name, values in series.items():
        _check_lengths(categories, **{name: values})
    names = list(series)
    colours = [series_colour(i) for i in range(len(names))]
    every = [v for values in series.values() for v in values]
    low, high = _domain(every, domain)
    left, right = 44.0, width - 12
    legend_h = _legend_height(names, width, left)
    top = 32 + legend_h
    label_rows = 2 if any(len(str(c)) > 14 for c in categories) else 1
    bottom = height - 18 - 14 * label_rows
    scale = _Scale(low, high, bottom, top)
    parts = [_title_text(width, title), *_legend(names, colours, left, 42, width)]
    ticks = _nice_ticks(low, high, 4)
    for tick, text in zip(ticks, tick_labels(ticks, value_format), strict=True):
        y = scale(tick)
        parts.append(_element("line", x1=left, x2=right, y1=y, y2=y, stroke=_RULE))
        parts.append(_text(left - 6, y + 4, text, anchor="end", size=10, fill=_MUTED))
    group = (right - left) / max(len(categories), 1)
    bar = group * 0.8 / max(len(names), 1)
    for index, category in enumerate(categories):
        x0 = left + index * group + group * 0.1
        for k, (name, colour) in enumerate(zip(names, colours, strict=True)):
            value = series[name][index]
            if is_missing(value):
                continue
            y = scale(float(value))  # type: ignore[arg-type]
            parts.append(
                _element(
                    "rect",
                    f"{category}, {name}: {_fmt(value, value_format)}",
                    class_="dist-bar",
                    x=x0 + k * bar,
                    y=y,
                    width=max(bar - 1, 1.0),
                    height=bottom - y,
                    fill=colour,
                )
            )
        limit = max(int(group / _CHAR_WIDTH), 3)
        parts.append(
            _text(
                left + (index + 0.5) * group,
                bottom + 14,
                _short(category, limit),
                anchor="middle",
                size=10,
                full=category,
            )
        )
    parts.append(_plot_area(left, top, right, bottom))
    return _svg(width, height, title, parts, "distribution")


def range_plot(
    labels: Sequence[object],
    lows: Sequence[Number],
    highs: Sequence[Number],
    points: Sequence[Number] | None = None,
    *,
    title: str,
    value_label: str = "",
    domain: tuple[float, float] | None = None,
    value_format: str = "{:.2f}",
    width: float = 720,
) -> Markup:
    """A min-max range per label (e.g. similarity to humans across wordings) and a central point.

    Example:
        >>> chart = range_plot(["US", "JP"], [0.6, 0.5], [0.8, 0.9], [0.7, 0.6], title="Similarity")
        >>> chart.count('class="range"'), chart.count('class="point"')
        (2, 2)
    """
    middle = list(points) if points is not None else [None] * len(labels)
    _check_lengths(labels, lows=lows, highs=highs, points=middle)
    low, high = _domain([*lows, *highs, *middle], domain)
    label_width = _label_width(labels)
    row, top = 22, 32
    plot_bottom = top + row * len(labels)
    scale = _Scale(low, high, label_width + 8, width - 110)
    parts = [
        _title_text(width, title),
        *_x_axis(scale, plot_bottom, value_label, value_format, top),
    ]
    for index, label in enumerate(labels):
        y = top + index * row + row / 2
        parts.append(_text(label_width, y + 4, _short(label), anchor="end", full=label))
        lo, hi, mid = lows[index], highs[index], middle[index]
        summary = f"{label}: {_fmt(lo, value_format)} to {_fmt(hi, value_format)}"
        if not is_missing(lo) and not is_missing(hi):
            x_lo, x_hi = scale(float(lo)), scale(float(hi))  # type: ignore[arg-type]
            parts.append(
                _element(
                    "rect",
                    summary,
                    class_="range",
                    x=x_lo,
                    y=y - 5,
                    width=max(x_hi - x_lo, 2.0),
                    height=10,
                    rx=5,
                    fill=OKABE_ITO[4],
                )
            )
        if not is_missing(mid):
            parts.append(
                _element(
                    "circle",
                    f"{summary}; mean {_fmt(mid, value_format)}",
                    class_="point",
                    cx=scale(float(mid)),  # type: ignore[arg-type]
                    cy=y,
                    r=4,
                    fill=OKABE_ITO[5],
                )
            )
        parts.append(
            _text(
                width - 104,
                y + 4,
                f"{_fmt(lo, value_format)}–{_fmt(hi, value_format)}",
                size=11,
                fill=_MUTED,
            )
        )
    parts.append(_plot_area(scale.start, top, scale.end, plot_bottom))
    return _svg(width, plot_bottom + 36, title, parts, "range")


def _check_lengths(labels: Sequence[object], **series: Sequence[Number]) -> None:
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(f"{name} has {len(values)} values for {len(labels)} labels")
