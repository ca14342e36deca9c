"""Literature reviews of cultural LLM research, annotated along the project's taxonomy.

Build an annotation workbook from the taxonomy (optionally pre-filled from BibTeX, a CSV paper list
or a survey's long-format category list), check filled-in workbooks cell by cell, measure agreement
between annotators, merge an adjudicated workbook into a tidy table and report coverage and gaps.

Example:
    >>> from culture_probe.taxonomy import load_taxonomy
    >>> from culture_probe.survey import build_fields, import_long_list, write_workbook
    >>> fields = build_fields(load_taxonomy("taxonomy/taxonomy.yaml"))  # doctest: +SKIP
    >>> papers = import_long_list("survey_v1_readme_paper_categories.csv", fields)  # doctest: +SKIP
    >>> write_workbook("review.xlsx", papers, fields)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from culture_probe._lazy import lazy_attributes

# Loaded on first use (PEP 562): the workbook modules pull in openpyxl and pandas, and the CLI
# imports this package only to list its commands.
_SOURCES = {
    "Choice": "_fields",
    "Field": "_fields",
    "build_fields": "_fields",
    "normalize_label": "_fields",
    "import_long_list": "_importer",
    "parse_bibtex": "_papers",
    "read_bibtex": "_papers",
    "read_paper_csv": "_papers",
    "read_papers": "_papers",
    "Issue": "_records",
    "PaperRecord": "_records",
    "ReviewSheet": "_records",
    "parse_table": "_records",
    "read_review": "_records",
    "RawTable": "_tables",
    "read_table": "_tables",
    "write_workbook": "_workbook",
}

if TYPE_CHECKING:
    from culture_probe.survey._fields import Choice, Field, build_fields, normalize_label
    from culture_probe.survey._importer import import_long_list
    from culture_probe.survey._papers import parse_bibtex, read_bibtex, read_paper_csv, read_papers
    from culture_probe.survey._records import (
        Issue,
        PaperRecord,
        ReviewSheet,
        parse_table,
        read_review,
    )
    from culture_probe.survey._tables import RawTable, read_table
    from culture_probe.survey._workbook import write_workbook


__getattr__ = lazy_attributes(__name__, _SOURCES)


__all__ = [
    "Choice",
    "Field",
    "Issue",
    "PaperRecord",
    "RawTable",
    "ReviewSheet",
    "build_fields",
    "import_long_list",
    "normalize_label",
    "parse_bibtex",
    "parse_table",
    "read_bibtex",
    "read_paper_csv",
    "read_papers",
    "read_review",
    "read_table",
    "write_workbook",
]
