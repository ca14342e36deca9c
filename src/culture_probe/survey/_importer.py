"""Importing a long-format paper list: one row per (paper, category), as surveys publish them.

The survey's own list (``cultural-llm-papers`` README, Adilazuarda, Mukherjee et al. 2024) has the
columns ``taxonomy, dimension, category, authors_year, title, venue, url``; a paper appears once per
category it was filed under. Categories are matched to taxonomy ids through the id, the label and
the aliases, ignoring case and punctuation; the dimension, when given, must agree with the category.
A method row filed under "Black-box Approach" or "White-box Approach" also sets the paper's access.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl.utils import get_column_letter

from culture_probe.errors import InputError, did_you_mean
from culture_probe.survey._fields import (
    Field,
    field_by_key,
    normalize_label,
    owner_of,
    resolve_field,
)
from culture_probe.survey._papers import (
    PaperList,
    assign_paper_ids,
    is_placeholder_title,
    note_merge,
    paper_identity,
    paper_list_header,
    title_and_year,
)
from culture_probe.survey._records import Issue, PaperRecord
from culture_probe.survey._tables import read_csv_rows

ACCESS_FIELD = "access"


@dataclass
class _Paper:
    title: str
    authors: str = ""
    year: int | None = None
    venue: str = ""
    url: str = ""
    paper_id: str = ""
    line: int = 0
    labels: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, label: str) -> None:
        labels = self.labels.setdefault(key, [])
        if label not in labels:
            labels.append(label)


@dataclass(frozen=True)
class _Row:
    path: str
    number: int
    header: list[str]
    cells: dict[str, str]

    def where(self, column: str) -> str:
        index = self.header.index(column)
        return f"{self.path}: row {self.number}, column {get_column_letter(index + 1)} ({column})"


def import_long_list(path: str | Path, fields: tuple[Field, ...]) -> list[PaperRecord]:
    """Papers with their labels from a long-format (paper, category) CSV.

    Raises:
        InputError: listing every row whose dimension or category names no taxonomy entry, or
            whose category belongs to another dimension than the row says.

    Example:
        >>> records = import_long_list("paper_categories.csv", fields)  # doctest: +SKIP
    """
    rows = read_csv_rows(path)
    if not rows:
        raise InputError("the paper list is empty", path=path)
    header = paper_list_header(rows[0], path, required=("title", "category"))
    papers: dict[tuple[str, str, int | None], _Paper] = {}
    issues: list[Issue] = []
    notes: list[str] = []
    for number, cells in enumerate(rows[1:], start=2):
        row = _Row(str(path), number, header, dict(zip(header, cells, strict=False)))
        if not any(cells) or is_placeholder_title(row.cells.get("title", "")):
            continue
        _import_row(row, fields, papers, issues, notes)
    if issues:
        listing = "\n  ".join(str(issue) for issue in issues)
        raise InputError(f"{len(issues)} row(s) could not be imported:\n  {listing}", path=path)
    return PaperList(assign_paper_ids(_record(paper) for paper in papers.values()), notes)


def _import_row(
    row: _Row,
    fields: tuple[Field, ...],
    papers: dict[tuple[str, str, int | None], _Paper],
    issues: list[Issue],
    notes: list[str],
) -> None:
    title = row.cells.get("title", "")
    if not title:
        issues.append(Issue(row.where("title"), "", "the title is empty", allowed="a title"))
        return
    new = _new_paper(row)
    identity = paper_identity(new.title, new.authors, new.year)
    known = identity in papers
    paper = papers.setdefault(identity, new)
    firsts = {
        normalize_label(other.title): other.line for other in papers.values() if other is not new
    }
    where = (row.path, row.number, paper.line)
    note_merge(notes, firsts if not known else {}, where, (new.title, paper.title), known)
    dimension = row.cells.get("dimension", "")
    category = row.cells.get("category", "")
    target = _dimension_field(row, dimension, fields, issues) if dimension else None
    if dimension and target is None:
        return
    resolved = _category_label(row, category, target, fields, issues)
    if resolved is None:
        return
    paper.add(resolved[0].key, resolved[1])
    access = field_by_key(fields, ACCESS_FIELD)
    choice = access.resolve(dimension) if access is not None and dimension else None
    if choice is not None:
        paper.add(ACCESS_FIELD, choice.id)


def _new_paper(row: _Row) -> _Paper:
    authors = row.cells.get("authors") or row.cells.get("authors_year", "")
    title, year = title_and_year(row.cells)
    return _Paper(
        title=title,
        authors=re.sub(r"\s*\(\d{4}[a-z]?\)\s*$", "", authors),
        year=year,
        venue=row.cells.get("venue", ""),
        url=row.cells.get("url", ""),
        paper_id=row.cells.get("paper_id", ""),
        line=row.number,
    )


def _dimension_field(
    row: _Row, dimension: str, fields: tuple[Field, ...], issues: list[Issue]
) -> Field | None:
    target = resolve_field(fields, dimension)
    if target is not None and target.kind == "multi":
        return target
    names = [name for f in fields if f.kind == "multi" for name in (f.label, *f.aliases)]
    issues.append(
        Issue(
            row.where("dimension"),
            dimension,
            f"unknown dimension '{dimension}'",
            allowed=", ".join(f.label for f in fields if f.kind == "multi"),
            suggestion=did_you_mean(dimension, names),
        )
    )
    return None


def _category_label(
    row: _Row, category: str, target: Field | None, fields: tuple[Field, ...], issues: list[Issue]
) -> tuple[Field, str] | None:
    if target is not None and (choice := target.resolve(category)) is not None:
        return target, choice.id
    owner = owner_of(fields, category)
    if owner is not None and target is None:
        return owner[0], owner[1].id
    where = row.where("category")
    if owner is not None and target is not None:
        issues.append(
            Issue(
                where,
                category,
                f"'{category}' is a label of '{owner[0].key}' "
                f"({owner[0].label}), but the row's dimension names '{target.key}' "
                f"({target.label})",
                allowed=", ".join(c.label for c in target.choices),
            )
        )
        return None
    candidates = (
        target.choices
        if target is not None
        else [c for f in fields if f.kind == "multi" for c in f.choices]
    )
    issues.append(
        Issue(
            where,
            category,
            f"unknown category '{category}'",
            allowed=", ".join(c.label for c in candidates),
            suggestion=did_you_mean(category, [c.label for c in candidates]),
        )
    )
    return None


def _record(paper: _Paper) -> PaperRecord:
    values = {key: tuple(labels) for key, labels in paper.labels.items()}
    access = values.get(ACCESS_FIELD, ())
    if len(access) > 1:
        values[ACCESS_FIELD] = ("both",)
    return PaperRecord(
        paper.paper_id, paper.title, paper.authors, paper.year, paper.venue, paper.url, values
    )
