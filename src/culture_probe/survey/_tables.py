"""Reading the papers sheet of a review workbook, or a CSV export of it, as plain text cells.

Spreadsheets come back from people in many shapes: an ``.xlsx`` from Excel or LibreOffice, or a CSV
exported with a comma, a semicolon or a tab between cells, in UTF-8 (with or without a byte-order
mark), UTF-16 or a Windows code page. All of them become one :class:`RawTable` of strings.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from culture_probe.bounds import MAX_DATA_FILE_BYTES, read_input_file, require_regular_file
from culture_probe.errors import InputError, did_you_mean

PAPERS_SHEET = "papers"
CODEBOOK_SHEET = "codebook"
CSV_DELIMITERS = ",;\t|"


@dataclass(frozen=True)
class RawTable:
    """A header row and data rows of text, with where they came from (rows are 1-based).

    ``formulas`` maps (row, column index) to the formula text of every cell of a workbook that
    holds a formula rather than a value; the cell's text is the value last computed for it, if the
    program that saved the workbook stored one.
    """

    path: str
    sheet: str | None
    header: list[str]
    rows: list[tuple[int, list[str]]]
    formulas: dict[tuple[int, int], str] = field(default_factory=dict)

    def column_letter(self, index: int) -> str:
        return str(get_column_letter(index + 1))

    def where(self, row: int, column: int | None = None) -> str:
        """``review.xlsx: sheet 'papers', row 5, column H (access)`` for messages."""
        parts = [f"sheet '{self.sheet}'"] if self.sheet else []
        parts.append(f"row {row}")
        if column is not None:
            name = self.header[column] if column < len(self.header) else ""
            parts.append(f"column {self.column_letter(column)} ({name})")
        return f"{self.path}: " + ", ".join(parts)


def read_table(path: str | Path) -> RawTable:
    """The papers sheet of an ``.xlsx`` workbook or a CSV export, as text."""
    path = Path(path)
    info = require_regular_file(path, "a review sheet")
    if info.st_size > MAX_DATA_FILE_BYTES:
        read_input_file(path, MAX_DATA_FILE_BYTES, "a review sheet")  # refuses with both sizes
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return _read_csv(path)
    raise InputError(
        f"cannot read a '{path.suffix}' file as a review sheet",
        path=path,
        hint="expected an .xlsx workbook or a .csv/.tsv export of its 'papers' sheet",
    )


def cell_text(value: object) -> str:
    """A cell as the text an annotator sees: integral floats without '.0', dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()


def _read_xlsx(path: Path) -> RawTable:
    # Two passes: cached values (what the annotator saw) and the formulas behind them, which
    # openpyxl gives only when it does not read the values.
    grid = [[cell_text(value) for value in row] for row in _papers_rows(path, data_only=True)]
    formulas = {
        (cell.row, cell.column - 1): _formula_text(cell.value)
        for row in _papers_rows(path, data_only=False, values_only=False)
        for cell in row
        if getattr(cell, "data_type", None) == "f"
    }
    return _to_table(str(path), PAPERS_SHEET, grid, formulas)


def _papers_rows(path: Path, *, data_only: bool, values_only: bool = True) -> list[tuple[Any, ...]]:
    try:
        workbook = load_workbook(path, read_only=True, data_only=data_only)
    except Exception as error:  # openpyxl raises many types for a damaged or foreign file
        raise InputError(f"not a readable .xlsx workbook ({error})", path=path) from None
    try:
        if PAPERS_SHEET not in workbook.sheetnames:
            raise _missing_sheet_error(path, list(workbook.sheetnames))
        return list(workbook[PAPERS_SHEET].iter_rows(values_only=values_only))
    finally:
        workbook.close()


def _formula_text(value: object) -> str:
    """``=SUM(A1:A3)`` for a plain formula; array formulas keep theirs in ``text``."""
    return str(getattr(value, "text", value))


def _missing_sheet_error(path: Path, names: list[str]) -> InputError:
    others = [name for name in names if name != CODEBOOK_SHEET]
    suggestion = did_you_mean(PAPERS_SHEET, others)
    renamed = (
        f"; if '{others[0]}' holds the papers, rename it back to '{PAPERS_SHEET}'"
        if (len(others) == 1)
        else ""
    )
    hint = f"{suggestion} " if suggestion else ""
    return InputError(
        f"no sheet named '{PAPERS_SHEET}' (found sheets: {', '.join(repr(n) for n in names)})",
        path=path,
        hint=f"{hint}the annotations must be on a sheet named '{PAPERS_SHEET}'{renamed}",
    )


def _to_table(
    path: str,
    sheet: str | None,
    grid: list[list[str]],
    formulas: dict[tuple[int, int], str] | None = None,
) -> RawTable:
    formulas = formulas or {}
    if not grid or not any(grid[0]):
        where = f"sheet '{sheet}', row 1" if sheet else "row 1"
        raise InputError(
            f"{where}: the header row is empty",
            path=path,
            hint="expected column names such as paper_id, title, ...",
        )
    header = _trim(grid[0])
    width = len(header)
    rows = [(number, (cells + [""] * width)[:width]) for number, cells in enumerate(grid[1:], 2)]
    # A row whose only content is a formula with no computed value still counts: it is reported.
    formula_rows = {row for row, _ in formulas}
    kept = [(n, cells) for n, cells in rows if any(cells) or n in formula_rows]
    return RawTable(path=path, sheet=sheet, header=header, rows=kept, formulas=formulas)


def _trim(cells: list[str]) -> list[str]:
    while cells and not cells[-1]:
        cells = cells[:-1]
    return cells


def decode_text(data: bytes, path: str | Path) -> str:
    """Text of a CSV file in UTF-8 (BOM or not), UTF-16 (BOM or not), cp1252 or latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if len(data) >= 4 and data[1::2].count(0) > len(data) // 4:
        return data.decode("utf-16-le")  # ASCII-heavy UTF-16 without a BOM
    if len(data) >= 4 and data[0::2].count(0) > len(data) // 4:
        return data.decode("utf-16-be")
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError("cannot decode the file as text", path=path)  # latin-1 never fails


def sniff_delimiter(text: str) -> str:
    """The cell delimiter of a CSV text: comma, semicolon, tab or pipe."""
    sample = "\n".join(text.splitlines()[:50])
    try:
        return str(csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter)
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {delimiter: first.count(delimiter) for delimiter in CSV_DELIMITERS}
        best = max(counts, key=lambda delimiter: counts[delimiter])
        return best if counts[best] else ","


def read_csv_rows(path: str | Path) -> list[list[str]]:
    """All rows of a CSV file of any of the accepted encodings and delimiters, as stripped text."""
    text = decode_text(read_input_file(path, MAX_DATA_FILE_BYTES, "a CSV file"), path)
    delimiter = sniff_delimiter(text)
    try:
        return [
            [cell.strip() for cell in row]
            for row in csv.reader(io.StringIO(text), delimiter=delimiter)
        ]
    except csv.Error as error:
        raise InputError(f"malformed CSV ({error})", path=path) from None


def _read_csv(path: Path) -> RawTable:
    return _to_table(str(path), None, read_csv_rows(path))
