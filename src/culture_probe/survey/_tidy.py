"""An adjudicated review as one tidy table: one row per paper, field and label."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from culture_probe.atomic import atomic_write
from culture_probe.errors import InputError
from culture_probe.spreadsheet import write_csv_table, write_xlsx_table
from culture_probe.survey._fields import Field
from culture_probe.survey._records import PaperRecord

TIDY_COLUMNS = (
    "paper_id",
    "title",
    "authors",
    "year",
    "venue",
    "url",
    "field",
    "field_label",
    "kind",
    "label",
    "label_name",
)


def tidy_table(records: list[PaperRecord], fields: tuple[Field, ...]) -> pd.DataFrame:
    """One row per (paper, field, label); a paper with nothing in a field has no row for it.

    ``label`` is the taxonomy id (multi-label and single-choice fields), the item (list fields) or
    the text (free-text fields); ``label_name`` is the taxonomy's readable label where there is one.

    Example:
        >>> sheet = read_review("adjudicated.xlsx", fields)  # doctest: +SKIP
        >>> tidy = tidy_table(sheet.records, fields)  # doctest: +SKIP
        >>> tidy.groupby(["field", "label"]).paper_id.nunique()  # doctest: +SKIP
    """
    rows: list[dict[str, object]] = []
    for record in records:
        for entry in fields:
            for label in record.labels(entry.key):
                choice = entry.choice(label)
                rows.append(
                    {
                        "paper_id": record.paper_id,
                        "title": record.title,
                        "authors": record.authors,
                        "year": record.year,
                        "venue": record.venue,
                        "url": record.url,
                        "field": entry.key,
                        "field_label": entry.label,
                        "kind": entry.kind,
                        "label": label,
                        "label_name": choice.label if choice is not None else label,
                    }
                )
    table = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    table["year"] = table["year"].astype("Int64")
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` as Parquet, CSV or xlsx (by suffix), atomically.

    In CSV and xlsx, text that a spreadsheet would run as a formula is neutralised (see
    :mod:`culture_probe.spreadsheet`); Parquet keeps every value as it is.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return write_csv_table(table, path)
    if suffix == ".xlsx":
        return write_xlsx_table(table, path)
    if suffix != ".parquet":
        raise InputError(
            f"cannot write a '{suffix}' table",
            path=path,
            hint="expected a .parquet, .csv or .xlsx output path",
        )
    return atomic_write(path, lambda temporary: table.to_parquet(temporary, index=False))
