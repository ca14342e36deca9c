"""Checking a papers sheet cell by cell and turning it into typed paper records.

Every problem becomes an :class:`Issue` that names the file, the sheet, the row, the column, the
value, what is allowed there and, where a close spelling exists, a "did you mean".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from culture_probe.errors import InputError, did_you_mean
from culture_probe.survey._fields import (
    CHECK_MARK,
    METADATA_COLUMNS,
    REQUIRED_METADATA,
    Field,
    field_by_key,
    owner_of,
    suggest_choice,
)
from culture_probe.survey._tables import RawTable, read_table

Severity = Literal["error", "warning"]
YEAR_RANGE = (1900, 2100)


@dataclass(frozen=True)
class Issue:
    """One problem in a review sheet, located to the cell."""

    where: str
    value: str
    problem: str
    allowed: str = ""
    suggestion: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        text = f"{self.where}: {self.problem}"
        if self.suggestion:
            text += f"; {self.suggestion}"
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        return text


@dataclass(frozen=True)
class PaperRecord:
    """One annotated paper. ``values`` maps a field key to its labels, choice, items or text."""

    paper_id: str
    title: str
    authors: str = ""
    year: int | None = None
    venue: str = ""
    url: str = ""
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    row: int = 0

    def labels(self, key: str) -> tuple[str, ...]:
        return self.values.get(key, ())


@dataclass(frozen=True)
class ReviewSheet:
    """A parsed papers sheet: its records and everything wrong with it."""

    path: str
    records: list[PaperRecord]
    issues: list[Issue]

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    def raise_for_errors(self) -> None:
        """Raise one :class:`InputError` listing every error, so a user fixes all in one pass."""
        errors = self.errors
        if errors:
            listing = "\n  ".join(str(issue) for issue in errors)
            raise InputError(
                f"{len(errors)} problem(s) in the review sheet:\n  {listing}", path=self.path
            )


@dataclass(frozen=True)
class _Column:
    """What one header cell means: a metadata column, a field column or a checkbox of a label."""

    index: int
    name: str
    field: Field | None = None
    choice_id: str | None = None


def read_review(path: str, fields: tuple[Field, ...]) -> ReviewSheet:
    """Read and check a review workbook or CSV export.

    Example:
        >>> sheet = read_review("review.xlsx", build_fields(taxonomy))  # doctest: +SKIP
        >>> sheet.raise_for_errors()  # doctest: +SKIP
    """
    return parse_table(read_table(path), fields)


def parse_table(table: RawTable, fields: tuple[Field, ...]) -> ReviewSheet:
    """Check the header and every cell of ``table``; build a record for every data row."""
    issues: list[Issue] = []
    columns = _parse_header(table, fields, issues)
    issues += _formula_issues(table)
    records = [
        _parse_row(table, number, cells, columns, fields, issues) for number, cells in table.rows
    ]
    _check_unique_ids(table, records, columns, issues)
    return ReviewSheet(path=table.path, records=records, issues=issues)


def _formula_issues(table: RawTable) -> list[Issue]:
    """One issue per formula cell: an error where no computed value was saved, else a warning.

    A formula with no saved value reads as an empty cell, so a label or a title would silently
    vanish; one with a value is used as that value, but the value may be stale.
    """
    issues: list[Issue] = []
    texts = {number: cells for number, cells in table.rows}
    texts[1] = table.header
    for (row, column), formula in sorted(table.formulas.items()):
        cells = texts.get(row, [])
        value = cells[column] if column < len(cells) else ""
        where = table.where(row, column)
        if value:
            problem = f"the cell holds the formula {formula!r}; its saved value '{value}' is used"
            issues.append(Issue(where, formula, problem, severity="warning"))
        else:
            issues.append(
                Issue(
                    where,
                    formula,
                    f"the cell holds the formula {formula!r} and no value",
                    allowed="a plain value: copy the cells and paste them as values only",
                )
            )
    return issues


def _known_columns(fields: tuple[Field, ...]) -> list[str]:
    names = list(METADATA_COLUMNS)
    for entry in fields:
        names += entry.columns()
        if entry.kind == "multi":
            names.append(entry.key)
    return names


def _parse_header(table: RawTable, fields: tuple[Field, ...], issues: list[Issue]) -> list[_Column]:
    known = _known_columns(fields)
    columns: list[_Column] = []
    seen: dict[str, int] = {}
    for index, raw_name in enumerate(table.header):
        name = raw_name.strip()
        if not name:
            continue
        if name in seen:
            issues.append(
                Issue(
                    table.where(1, index),
                    name,
                    f"column '{name}' appears twice (also column "
                    f"{table.column_letter(seen[name])})",
                )
            )
            continue
        seen[name] = index
        column = _classify_column(table, index, name, fields, known, issues)
        if column is not None:
            columns.append(column)
    for required in REQUIRED_METADATA:
        if required not in seen:
            issues.append(
                Issue(
                    table.where(1),
                    "",
                    f"required column '{required}' is missing",
                    allowed=", ".join(REQUIRED_METADATA),
                    suggestion=did_you_mean(required, table.header),
                )
            )
    return columns


def _classify_column(
    table: RawTable,
    index: int,
    name: str,
    fields: tuple[Field, ...],
    known: list[str],
    issues: list[Issue],
) -> _Column | None:
    if name in METADATA_COLUMNS:
        return _Column(index, name)
    key, _, label = name.partition(":")
    entry = field_by_key(fields, key)
    if entry is not None and not label:
        return _Column(index, name, entry)
    if entry is not None and entry.kind == "multi" and entry.choice(label) is not None:
        return _Column(index, name, entry, label)
    issues.append(_unknown_column_issue(table, index, name, label, entry, fields, known))
    return None


def _unknown_column_issue(
    table: RawTable,
    index: int,
    name: str,
    label: str,
    entry: Field | None,
    fields: tuple[Field, ...],
    known: list[str],
) -> Issue:
    where = table.where(1, index)
    if entry is not None and entry.kind == "multi":
        owner = owner_of(fields, label)
        if owner is not None and owner[0] is not entry:
            right = owner[0].checkbox_column(owner[1].id)
            return Issue(
                where,
                name,
                f"'{label}' is a label of '{owner[0].key}' "
                f"({owner[0].label}), not of '{entry.key}' ({entry.label})",
                suggestion=f"did you mean '{right}'?",
            )
        labels = [entry.checkbox_column(choice.id) for choice in entry.choices]
        return Issue(
            where,
            name,
            f"unknown label '{label}' of field '{entry.key}'",
            allowed=", ".join(labels),
            suggestion=did_you_mean(name, labels),
        )
    return Issue(
        where,
        name,
        f"unknown column '{name}'",
        allowed=_short_list(known),
        suggestion=did_you_mean(name, known),
    )


def _short_list(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _parse_row(
    table: RawTable,
    number: int,
    cells: list[str],
    columns: list[_Column],
    fields: tuple[Field, ...],
    issues: list[Issue],
) -> PaperRecord:
    metadata: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for column in columns:
        text = cells[column.index].strip()
        where = table.where(number, column.index)
        if column.field is None:
            metadata[column.name] = text
        elif text:
            values.setdefault(column.field.key, []).extend(
                _parse_cell(column, text, where, fields, issues)
            )
    for required in REQUIRED_METADATA:
        if required in {c.name for c in columns} and not metadata.get(required):
            index = next(c.index for c in columns if c.name == required)
            if (number, index) in table.formulas:
                continue  # reported as a formula cell already
            issues.append(
                Issue(
                    table.where(number, index),
                    "",
                    f"required cell '{required}' is empty",
                    allowed=f"a non-empty {required}",
                )
            )
    year = _parse_year(metadata.get("year", ""), table, number, columns, issues)
    return PaperRecord(
        paper_id=metadata.get("paper_id", ""),
        title=metadata.get("title", ""),
        authors=metadata.get("authors", ""),
        year=year,
        venue=metadata.get("venue", ""),
        url=metadata.get("url", ""),
        row=number,
        values={key: tuple(dict.fromkeys(items)) for key, items in values.items()},
    )


def _parse_year(
    text: str,
    table: RawTable,
    number: int,
    columns: list[_Column],
    issues: list[Issue],
) -> int | None:
    if not text:
        return None
    if text.isdigit() and YEAR_RANGE[0] <= int(text) <= YEAR_RANGE[1]:
        return int(text)
    index = next(c.index for c in columns if c.name == "year")
    issues.append(
        Issue(
            table.where(number, index),
            text,
            f"'{text}' is not a year",
            allowed=f"a whole number from {YEAR_RANGE[0]} to {YEAR_RANGE[1]}",
        )
    )
    return None


def _parse_cell(
    column: _Column,
    text: str,
    where: str,
    fields: tuple[Field, ...],
    issues: list[Issue],
) -> list[str]:
    assert column.field is not None
    entry = column.field
    if column.choice_id is not None:
        if text.casefold() == CHECK_MARK:
            return [column.choice_id]
        issues.append(
            Issue(
                where,
                text,
                f"'{text}' is not a check mark",
                allowed=f"'{CHECK_MARK}' (the label applies) or an empty cell",
            )
        )
        return []
    if entry.kind == "multi":
        return [
            label
            for part in _split(text)
            if (label := _resolve(entry, part, where, fields, issues))
        ]
    if entry.kind == "single":
        label = _resolve(entry, text, where, fields, issues)
        return [label] if label else []
    if entry.kind == "list":
        return _split(text)
    return [text]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def _resolve(
    entry: Field,
    text: str,
    where: str,
    fields: tuple[Field, ...],
    issues: list[Issue],
) -> str | None:
    choice = entry.resolve(text)
    if choice is not None:
        return choice.id
    allowed = [choice.id for choice in entry.choices]
    owner = owner_of(fields, text)
    if owner is not None:
        issues.append(
            Issue(
                where,
                text,
                f"'{text}' is a label of '{owner[0].key}' "
                f"({owner[0].label}), not of '{entry.key}' ({entry.label})",
                allowed=", ".join(allowed),
                suggestion=f"did you mean to put it in '{owner[0].key}'?",
            )
        )
        return None
    suggestion = suggest_choice(text, entry.choices)
    issues.append(
        Issue(
            where,
            text,
            f"'{text}' is not a label of '{entry.key}' ({entry.label})",
            allowed=", ".join(allowed),
            suggestion=suggestion,
        )
    )
    return None


def _check_unique_ids(
    table: RawTable,
    records: list[PaperRecord],
    columns: list[_Column],
    issues: list[Issue],
) -> None:
    index = next((c.index for c in columns if c.name == "paper_id"), None)
    if index is None:
        return
    first_row: dict[str, int] = {}
    for record in records:
        if not record.paper_id:
            continue
        if record.paper_id in first_row:
            issues.append(
                Issue(
                    table.where(record.row, index),
                    record.paper_id,
                    f"duplicate paper_id '{record.paper_id}' (first in row "
                    f"{first_row[record.paper_id]})",
                    allowed="a paper_id used once per sheet",
                )
            )
        else:
            first_row[record.paper_id] = record.row


__all__ = ["Issue", "PaperRecord", "ReviewSheet", "parse_table", "read_review"]
