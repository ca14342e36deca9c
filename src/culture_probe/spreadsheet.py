"""Cells that a spreadsheet shows as text, never evaluates: the one guard against formula injection.

Titles, annotations and labels come from other people. A cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is run as a formula by Excel, LibreOffice and Google Sheets when the
file is opened (``=HYPERLINK(...)`` leaks data, ``=cmd|' /C calc'!A0`` runs a program). Following
OWASP's CSV-injection guidance, every export neutralises such cells and keeps their text:

- CSV: the cell gets a leading apostrophe, which the spreadsheet hides and reads as "this is text";
- xlsx: the cell is stored as a text cell (``data_type 's'``) with the quote-prefix style that Excel
  itself gives a typed ``'=...``, so that editing the cell does not turn it into a formula either.

A text that is a plain number (``-1.5``, ``+3``) is not a formula and stays as it is, so data stays
readable; numbers themselves are written as numbers.

Example:
    >>> neutralise_text('=HYPERLINK("http://evil.example","click")')
    '\\'=HYPERLINK("http://evil.example","click")'
    >>> neutralise_text("-1.5"), neutralise_text("Culture -- a survey")
    ('-1.5', 'Culture -- a survey')
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet

from culture_probe.atomic import atomic_write

#: What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet would evaluate ``text`` typed into a cell.

    Example:
        >>> [is_formula_like(t) for t in ("=1+1", "@SUM(A1)", "-2+3", "-2", "plain", "")]
        [True, True, True, False, False, False]
    """
    return text.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text)


def neutralise_text(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would evaluate it, else unchanged."""
    return "'" + text if is_formula_like(text) else text


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells no spreadsheet evaluates; numbers stay numbers."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or str(safe[column].dtype) in ("string", "str"):
            safe[column] = safe[column].map(
                lambda value: neutralise_text(value) if isinstance(value, str) else value
            )
    safe.columns = [neutralise_text(str(name)) for name in safe.columns]
    return safe


def write_cell(sheet: Worksheet, row: int, column: int, value: object) -> Cell:
    """Set one xlsx cell; text is always stored as text, never as a formula.

    openpyxl stores any string starting with ``=`` as a formula, so text cells get their type
    set explicitly, and formula-like text the quote prefix as well.
    """
    cell = sheet.cell(row=row, column=column)
    if isinstance(value, str):
        cell.value = value
        cell.data_type = "s"
        if is_formula_like(value):
            cell.quotePrefix = True
    else:
        cell.value = value
    return cell


def write_row(sheet: Worksheet, row: int, values: Sequence[object]) -> None:
    """Write ``values`` into ``row`` from column A on; None leaves a cell empty."""
    for column, value in enumerate(values, start=1):
        if value is not None:
            write_cell(sheet, row, column, value)


def write_xlsx_table(frame: pd.DataFrame, path: str | Path, sheet_name: str = "Sheet1") -> Path:
    """Write ``frame`` (header row, then one row per record) to an xlsx file, atomically.

    Missing values become empty cells; text is stored as text (see :func:`write_cell`).
    """
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = sheet_name
    write_row(sheet, 1, [str(name) for name in frame.columns])
    for row, record in enumerate(frame.itertuples(index=False, name=None), start=2):
        write_row(sheet, row, [_cell_value(value) for value in record])
    return atomic_write(path, workbook.save)


def write_csv_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as UTF-8 CSV without its index, formula-like text neutralised, atomically.

    Example:
        >>> import tempfile
        >>> path = write_csv_table(pd.DataFrame({"title": ["=1+1"], "score": [-1.5]}),
        ...                        Path(tempfile.mkdtemp()) / "out.csv")
        >>> path.read_bytes()
        b"title,score\\r\\n'=1+1,-1.5\\r\\n"
    """
    safe = csv_safe(frame)
    return atomic_write(path, lambda temporary: write_csv(safe, temporary))


def write_csv(frame: pd.DataFrame, target: str | Path | io.StringIO) -> None:
    """``frame`` as CSV, every cell holding a line break quoted; no formula neutralising here.

    RFC 4180 line ends: the csv module quotes a cell only for the characters of its line
    terminator, so with a bare "\\n" a cell holding "\\r" stays unquoted and every reader (pandas,
    Excel, Python's csv) then splits the row there.

    Example:
        >>> buffer = io.StringIO()
        >>> write_csv(pd.DataFrame({"option": ["Yes\\rNo", "Maybe"]}), buffer)
        >>> buffer.getvalue()
        'option\\r\\n"Yes\\rNo"\\r\\nMaybe\\r\\n'
    """
    frame.to_csv(target, index=False, lineterminator="\r\n")


def _cell_value(value: object) -> object:
    """A pandas value as openpyxl takes it: None for any missing value, Python scalars."""
    if value is None or (not isinstance(value, str | bytes) and bool(pd.isna(value))):
        return None
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else value
