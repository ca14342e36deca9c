"""DataFrame -> an HTML table the reader can sort (click a header) and filter (type in the box).

Cells are rendered by the autoescaping ``table.html.j2`` template, so every value is shown as text.
Numeric cells carry their exact value in ``data-sort``, so sorting is numeric whatever the display
format; missing values (NaN, None) show as an empty cell and always sort last.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from markupsafe import Markup

from culture_probe.report._missing import is_missing
from culture_probe.report.page import render_template, slug

CellFormat = str | Callable[[Any], str]
"""A ``str.format`` pattern ("{:.2f}", "{:.1%}") or a function from the value to its display
text."""

LinkBuilder = Callable[[Mapping[str, Any]], str | None]
"""Given the row (column -> value), the ``href`` for a cell, or None for no link."""


def html_table(
    frame: pd.DataFrame,
    *,
    table_id: str,
    caption: str | None = None,
    columns: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
    formats: Mapping[str, CellFormat] | None = None,
    links: Mapping[str, LinkBuilder] | None = None,
    max_rows: int | None = None,
    filterable: bool = True,
) -> Markup:
    """Render ``frame`` as a sortable, filterable table.

    Args:
        frame: The rows to show.
        table_id: Element id of the table block (made safe with :func:`slug`).
        caption: A caption above the table.
        columns: Which columns to show, in order (default: all). Unknown names raise ``KeyError``.
        labels: Header text per column (default: the column name).
        descriptions: Header tooltips per column (what the column means, where it comes from).
        formats: Display format per column; floats default to 3 significant digits.
        links: Per column, a function from the row to the cell's ``href``.
        max_rows: Show at most this many rows (the block says how many were left out).
        filterable: Show the filter box.

    Example:
        >>> table = html_table(pd.DataFrame({"item": ["q1"], "cwi": [2.5]}), table_id="items",
        ...                    formats={"cwi": "{:.1f}"}, links={"item": lambda row: "#q1"})
        >>> 'data-sort="2.5"' in table and '<a href="#q1">q1</a>' in table
        True
    """
    shown = list(columns) if columns is not None else [str(c) for c in frame.columns]
    missing = [name for name in shown if name not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the table: {missing}; it has {list(frame.columns)}")
    total = len(frame)
    visible = frame.head(max_rows) if max_rows is not None else frame
    labels, descriptions = labels or {}, descriptions or {}
    formats, links = formats or {}, links or {}
    records = [{str(k): v for k, v in row.items()} for row in visible.to_dict(orient="records")]
    rows = [
        [_cell(record, name, formats.get(name), links.get(name)) for name in shown]
        for record in records
    ]
    headers = [{"label": labels.get(name, name), "title": descriptions.get(name)} for name in shown]
    return render_template(
        "table.html.j2",
        table_id=slug(table_id),
        caption=caption,
        headers=headers,
        rows=rows,
        total_rows=total,
        truncated=len(visible) < total,
        filterable=filterable,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def display_text(value: Any, cell_format: CellFormat | None = None) -> str:
    """The text shown for one value: formatted numbers, joined lists, empty for missing."""
    if _is_sequence(value):
        return ", ".join(display_text(v, cell_format) for v in value)
    if is_missing(value):
        return ""
    if callable(cell_format):
        return cell_format(value)
    if cell_format is not None:
        return cell_format.format(value)
    if _is_number(value) and not float(value).is_integer():
        return f"{float(value):.3g}"
    if _is_number(value):
        return str(int(value)) if abs(float(value)) < 1e15 else f"{float(value):.3g}"
    return str(value)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple) or (
        hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0
    )


def _cell(
    record: Mapping[str, Any],
    name: str,
    cell_format: CellFormat | None,
    link: LinkBuilder | None,
) -> dict[str, Any]:
    value = record[name]
    numeric = _is_number(value) and not _is_sequence(value)
    sort: str | None = None
    if numeric:
        sort = "" if is_missing(value) else repr(float(value))
    elif is_missing(value):
        sort = ""
    href = link(record) if link is not None and not is_missing(value) else None
    return {
        "text": display_text(value, cell_format),
        "sort": sort,
        "numeric": numeric,
        "href": href,
    }
