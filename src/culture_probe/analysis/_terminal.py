"""A one-screen summary of an analysis for the terminal: a table that fits 80 columns, then the
legend and the sentences as paragraphs that wrap to the terminal's own width."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from culture_probe.analysis._claims import Condition, Source, writes_as_zero
from culture_probe.analysis._headline import WORDING_COMPONENTS
from culture_probe.analysis._summary import VERDICTS
from culture_probe.formatting import PERCENT, format_bounds, format_percent, format_ratio

if TYPE_CHECKING:
    from culture_probe.analysis._analyze import AnalysisResult

#: estimates and bounds beyond this are shown as ">100"
LARGEST_SHOWN = 100
#: a share the sentences call not distinguishable from zero, as a cell writes it; its upper bound
#: follows below, after :data:`UPPER_BOUND`
ZERO_CELL = "≈0"
UPPER_BOUND = "≤"
#: the aggregates whose sentences say "not distinguishable from zero" where they would print 0%
ZERO_WORDED_AGGREGATES = tuple(component[1] for component in WORDING_COMPONENTS)

# Short headers keep the table within 80 columns; the caption says what each one means.
COLUMNS = (
    ("axis", ""),
    ("culture", "mean_culture_share"),
    ("wording", "mean_wording_share"),
    ("w×c", "mean_wording_contrast_share"),
    ("order", "mean_order_share"),
    ("CWI", "median_cwi"),
    ("W", "mean_kendall_w"),
    ("verdicts", ""),
)
LEGEND = (
    "culture, wording, w×c: share of the answer variance due to the proxy, the wording level "
    "and wording-by-culture changes, pooled over items (components summed, then divided by the "
    "summed totals); order: share due to the option order in the model over all declared factors "
    "(the one the sentences give), pooled the same way; CWI: median culture-vs-wording index; W: "
    "mean over items of Kendall's W of the proxy ranking across wordings. Each estimate has its "
    "95% interval below it; ≈0: not distinguishable from zero, with its upper bound below where "
    "that is above 0."
)
SHORT_ANSWER_LEGEND = (
    "match: share of written answers that contain an answer the annotators gave (BLEnD, Myung et "
    "al. 2024), each question weighing the same; 95% CI: questions resampled."
)
SHORT_VERDICTS = {
    "culture-dominant": "culture",
    "wording-dominated": "wording",
    "order-dominated": "order",
    "mixed": "mixed",
    "no culture effect": "none",
    "nominal": "nominal",
}


def format_terminal_summary(result: AnalysisResult) -> Group:
    """The table of shares, then its legend and the headline sentences.

    The sentences are paragraphs of their own, not the table's caption: a caption wraps at the
    table's width and a narrow terminal would crop it, while a paragraph wraps at the width of
    whatever terminal prints it.
    """
    short_answer = result.summary.get("short_answer")
    if short_answer and not result.summary.get("axes"):
        table, legend = _short_answer_table(short_answer), SHORT_ANSWER_LEGEND
    else:
        table, legend = _axes_table(result.summary), LEGEND
    return Group(
        _FitTable(table), *(Text(paragraph) for paragraph in ["", legend, "", *result.headline])
    )


def summary_table(result: AnalysisResult) -> Table:
    """The table of :func:`format_terminal_summary` alone."""
    fitted = format_terminal_summary(result).renderables[0]
    assert isinstance(fitted, _FitTable)
    return fitted.table


class _FitTable:
    """A table where the terminal is wide enough for it, else its rows as wrapping lines.

    A narrower terminal would crop every cell to "…"; one line per row, "header value" pairs
    joined by "; ", keeps every number and lets the terminal wrap it.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # rendered where nothing limits it; Measurement under-counts no_wrap columns
        lines = console.render_lines(self.table, options.update_width(1000), pad=False)
        if max(Segment.get_line_length(line) for line in lines) <= options.max_width:
            yield self.table
            return
        yield Text(str(self.table.title or ""), style="bold")
        columns = self.table.columns
        for row in range(self.table.row_count):
            cells = [(str(c.header), str(list(c.cells)[row]).split("\n")) for c in columns]
            yield Text("; ".join(_pair(header, lines) for header, lines in cells))


def _pair(header: str, lines: list[str]) -> str:
    """'order 92% (0-98)': a cell's first line, its second (the interval) in parentheses."""
    shown = lines[0] + "".join(f" ({line})" for line in lines[1:] if line)
    return f"{header} {shown}".strip()


def _table(title: str) -> Table:
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )


def _axes_table(summary: dict[str, Any]) -> Table:
    """Per axis, the variance shares with CIs and the verdict counts; fits 80 columns."""
    table = _table("Culture or wording?")
    for header, _ in COLUMNS:
        left = header in ("axis", "verdicts")
        table.add_column(header, justify="left" if left else "right", no_wrap=True)
    cells = summary_cells(summary)
    for axis, facts in summary.get("axes", {}).items():
        verdicts = facts["verdicts"]
        table.add_row(
            f"{axis}\n{facts['n_items']} items",
            *(cell.text for cell in cells if cell.axis == axis),
            "\n".join(
                f"{verdicts[v]} {SHORT_VERDICTS[v]}" for v in VERDICTS if verdicts.get(v, 0) > 0
            )
            or "-",
        )
    return table


@dataclass(frozen=True)
class SummaryCell:
    """One number of the terminal table, where it comes from, and its written form.

    Attributes:
        axis: the table's row.
        header: the table's column.
        text: the estimate, and below it the interval (or, for a share written as zero, the
            words' short form and its upper bound).
        source: where the estimate comes from, as the claims name it, so that
            :func:`~culture_probe.analysis._consistency.cell_problems` can find the sentence
            that states the same quantity.
    """

    axis: str
    header: str
    text: str
    source: Source


def summary_cells(summary: dict[str, Any]) -> list[SummaryCell]:
    """The number cells of the axes table, row by row, in :data:`COLUMNS` order."""
    cells = []
    for axis, facts in summary.get("axes", {}).items():
        aggregates = facts["aggregates"]
        for header, key in COLUMNS[1:-1]:
            if header == "order":
                aggregate, source = _order_share(summary, str(axis), aggregates)
            else:
                aggregate = aggregates.get(key)
                source = Source("summary", f"axes/{axis}/aggregates/{key}/estimate")
            percent = key.endswith("_share")
            zero_worded = key in ZERO_WORDED_AGGREGATES
            text = _cell(aggregate, percent=percent, zero_worded=zero_worded)
            cells.append(SummaryCell(str(axis), header, text, source))
    return cells


def _cell(
    aggregate: dict[str, float | None] | None, *, percent: bool, zero_worded: bool = False
) -> str:
    """The estimate, and below it the interval: "41%" over "19-60", "0.94" over ".91-.96",
    "0.0083%" over "0.0050-0.010"; where the sentences say a share is not distinguishable from
    zero (``zero_worded``), "≈0" over its upper bound, "≤2.0", as they do."""
    if not aggregate or aggregate.get("estimate") is None:
        return "-"
    estimate = aggregate["estimate"]
    low, high = aggregate.get("ci_low"), aggregate.get("ci_high")
    if percent and zero_worded and writes_as_zero(estimate):
        if high is None or math.isnan(high) or writes_as_zero(high):
            return ZERO_CELL
        return f"{ZERO_CELL}\n{UPPER_BOUND}{format_percent(high)[:-1]}"
    if percent:
        # a tiny share keeps its significant digits: "0.0083%", never "0%" beside its test
        shown = format_percent(float(estimate or 0.0))
        interval = format_bounds(low, high, PERCENT, compact=True).replace("%", "")
    else:
        shown = _number(estimate)
        interval = format_bounds(low, high, lambda v: _number(v, short=True), compact=True)
    return f"{shown}\n{interval}" if interval else shown


def _order_share(
    summary: dict[str, Any], axis: str, aggregates: dict[str, Any]
) -> tuple[dict[str, Any] | None, Source]:
    """The order share the sentences print: the model over all declared factors' where it has
    one, so that the table and the sentences give one number for one quantity."""
    share = summary.get("factors", {}).get(axis, {}).get("shares", {}).get("order")
    if share is not None:
        where = (Condition("axis", "==", axis), Condition("factor", "==", "order"))
        return share, Source("factor_summary", "share", where)
    path = f"axes/{axis}/aggregates/mean_order_share/estimate"
    return aggregates.get("mean_order_share"), Source("summary", path)


def _short_answer_table(summary: dict[str, Any]) -> Table:
    """Match rates of a run of short-answer items only: overall, per language, per proxy."""
    table = _table("Short answers among the annotators'?")
    for header in ("", "match", "95% CI", "items"):
        table.add_column(header, justify="left" if not header else "right", no_wrap=True)
    rows = [("all", summary["match_rate"])]
    rows += [(f"in {code}", rate) for code, rate in summary.get("by_language", {}).items()]
    rows += [(f"about {proxy}", rate) for proxy, rate in summary.get("by_proxy", {}).items()]
    for label, rate in rows:
        if rate.get("estimate") is None:
            continue
        interval = format_bounds(rate.get("ci_low"), rate.get("ci_high"), "{:.0%}", compact=True)
        table.add_row(label, f"{rate['estimate']:.0%}", interval, str(rate.get("n_items", "")))
    return table


def _number(value: float | None, *, short: bool = False) -> str:
    """As :func:`~culture_probe.formatting.format_ratio` writes it below 10, two significant
    digits above (three from 100 up, ">100" and "∞" past that); ``short`` drops the leading zero
    of 0.x.
    """
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    # A bound past 100 says only "huge" (a near-zero denominator); its digits would overflow.
    if abs(value) > LARGEST_SHOWN:
        return f">{LARGEST_SHOWN}" if value > 0 else f"<-{LARGEST_SHOWN}"
    # below 10 as the sentences write a ratio; above, two significant digits keep the cell narrow
    text = format_ratio(value) if abs(value) < 10 else f"{value:.2g}"
    if abs(value) >= 100:
        text = f"{value:.0f}"
    return text.replace("0.", ".", 1) if short and text.startswith("0.") else text
