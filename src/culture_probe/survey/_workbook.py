"""Writing the annotation workbook: a ``papers`` sheet with dropdowns and a ``codebook`` sheet.

The papers sheet has one row per paper: the bibliographic columns, then the annotated fields. A
multi-label field takes one narrow column per label (``demographic:region``) with an ``x`` dropdown,
so that every label is one click and Excel or LibreOffice itself refuses anything else; a
single-choice field has a dropdown of its choices. The codebook sheet defines every field and label,
with the work it is cited from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from culture_probe.atomic import atomic_write
from culture_probe.spreadsheet import write_cell, write_row
from culture_probe.survey._fields import CHECK_MARK, METADATA_COLUMNS, Field
from culture_probe.survey._records import PaperRecord
from culture_probe.survey._tables import CODEBOOK_SHEET, PAPERS_SHEET

# Validations cover this many rows beyond the papers given, so that annotators can add papers.
SPARE_ROWS = 200
_WIDTHS = {"paper_id": 18, "title": 50, "authors": 28, "year": 7, "venue": 16, "url": 30}
_KIND_WIDTHS = {"multi": 4.5, "single": 13, "list": 22, "text": 30}
_HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
_KIND_HELP = {
    "multi": f"several labels may apply: put '{CHECK_MARK}' in the column of each label that "
    "applies (or, in one column named after the field, list label ids separated by ';')",
    "single": "pick one choice from the dropdown, or leave empty when the paper does not say",
    "list": "free items separated by ';'",
    "text": "free text",
}


def write_workbook(
    path: str | Path,
    records: Sequence[PaperRecord],
    fields: tuple[Field, ...],
    title: str = "Literature review",
) -> Path:
    """Write the annotation workbook for ``records`` (may be empty) and return its path.

    Example:
        >>> write_workbook("review.xlsx", [], build_fields(taxonomy))  # doctest: +SKIP
    """
    workbook = Workbook()
    papers = workbook.active
    assert papers is not None
    papers.title = PAPERS_SHEET
    columns = _columns(fields)
    _write_header(papers, columns)
    for row, record in enumerate(records, start=2):
        _write_record(papers, row, record, columns)
    _add_validations(papers, columns, last_row=len(records) + 1 + SPARE_ROWS)
    _write_codebook(workbook.create_sheet(CODEBOOK_SHEET), fields)
    workbook.properties.title = title
    return atomic_write(path, lambda temporary: workbook.save(temporary))


def _columns(fields: tuple[Field, ...]) -> list[tuple[str, Field | None, str | None]]:
    """(column name, field, label id) for every column, in sheet order."""
    columns: list[tuple[str, Field | None, str | None]] = [
        (n, None, None) for n in METADATA_COLUMNS
    ]
    for entry in fields:
        if entry.kind == "multi":
            columns += [(entry.checkbox_column(c.id), entry, c.id) for c in entry.choices]
        else:
            columns.append((entry.key, entry, None))
    return columns


def _write_header(sheet: Worksheet, columns: list[tuple[str, Field | None, str | None]]) -> None:
    for index, (name, entry, choice_id) in enumerate(columns, start=1):
        cell = write_cell(sheet, 1, index, name)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        letter = get_column_letter(index)
        if entry is None:
            sheet.column_dimensions[letter].width = _WIDTHS[name]
            continue
        sheet.column_dimensions[letter].width = _KIND_WIDTHS[entry.kind]
        choice = entry.choice(choice_id) if choice_id else None
        if choice is not None:
            # Narrow checkbox columns: the label reads bottom-up, like a questionnaire grid.
            cell.alignment = Alignment(text_rotation=90, horizontal="center")
            cell.comment = Comment(
                f"{entry.label}: {choice.label}\n{choice.description}",
                "culture-probe",
                width=300,
                height=120,
            )
        else:
            cell.comment = Comment(
                f"{entry.label}\n{entry.description}", "culture-probe", width=300, height=100
            )
    sheet.row_dimensions[1].height = 150
    sheet.freeze_panes = "C2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}1"


def _write_record(
    sheet: Worksheet,
    row: int,
    record: PaperRecord,
    columns: list[tuple[str, Field | None, str | None]],
) -> None:
    metadata: dict[str, object] = {
        "paper_id": record.paper_id,
        "title": record.title,
        "authors": record.authors,
        "year": record.year,
        "venue": record.venue,
        "url": record.url,
    }
    for index, (name, entry, choice_id) in enumerate(columns, start=1):
        if entry is None:
            value = metadata[name]
        elif choice_id is not None:
            value = CHECK_MARK if choice_id in record.labels(entry.key) else None
        else:
            value = "; ".join(record.labels(entry.key)) or None
        if value not in (None, ""):
            write_cell(sheet, row, index, value)


def _add_validations(
    sheet: Worksheet, columns: list[tuple[str, Field | None, str | None]], last_row: int
) -> None:
    for index, (name, entry, choice_id) in enumerate(columns, start=1):
        letter = get_column_letter(index)
        cells = f"{letter}2:{letter}{last_row}"
        validation = _validation_for(name, entry, choice_id, letter)
        if validation is not None:
            sheet.add_data_validation(validation)
            validation.add(cells)


def _validation_for(
    name: str, entry: Field | None, choice_id: str | None, letter: str
) -> DataValidation | None:
    if name == "year":
        return DataValidation(
            type="whole",
            operator="between",
            formula1="1900",
            formula2="2100",
            allow_blank=True,
            showErrorMessage=True,
            errorTitle="year",
            error="A year from 1900 to 2100.",
        )
    if name == "paper_id":
        return DataValidation(
            type="custom",
            formula1=f"COUNTIF(${letter}:${letter},{letter}2)=1",
            allow_blank=True,
            showErrorMessage=True,
            errorTitle="paper_id",
            error="Each paper_id must be used once.",
        )
    if entry is None:
        return None
    if choice_id is not None:
        return _list_validation([CHECK_MARK], f"'{CHECK_MARK}' if the label applies, else empty.")
    if entry.kind == "single":
        choices = [choice.id for choice in entry.choices]
        return _list_validation(choices, "One of: " + ", ".join(choices))
    return None


def _list_validation(choices: list[str], message: str) -> DataValidation:
    return DataValidation(
        type="list",
        formula1='"' + ",".join(choices) + '"',
        allow_blank=True,
        showErrorMessage=True,
        errorTitle="Not allowed",
        error=message,
    )


CODEBOOK_COLUMNS = (
    "field",
    "column",
    "kind",
    "label_id",
    "label",
    "definition",
    "citation",
    "status",
    "how to annotate",
)


def _write_codebook(sheet: Worksheet, fields: tuple[Field, ...]) -> None:
    write_row(sheet, 1, list(CODEBOOK_COLUMNS))
    row = 1
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
    for entry in fields:
        column = f"{entry.key}:<label_id>" if entry.kind == "multi" else entry.key
        row += 1
        write_row(
            sheet,
            row,
            [
                entry.key,
                column,
                entry.kind,
                "",
                entry.label,
                entry.description,
                "",
                "",
                _KIND_HELP[entry.kind],
            ],
        )
        sheet.cell(row=row, column=1).font = Font(bold=True)
        for choice in entry.choices:
            column = entry.checkbox_column(choice.id) if entry.kind == "multi" else entry.key
            row += 1
            write_row(
                sheet,
                row,
                [
                    entry.key,
                    column,
                    entry.kind,
                    choice.id,
                    choice.label,
                    choice.description,
                    choice.citation,
                    choice.status,
                    "",
                ],
            )
    for letter, width in zip("ABCDEFGHI", (14, 34, 8, 30, 30, 60, 50, 16, 50), strict=True):
        sheet.column_dimensions[letter].width = width
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.freeze_panes = "A2"
