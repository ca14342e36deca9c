"""``culture-probe survey ...``: literature-review workbooks from the command line."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from culture_probe.errors import CultureProbeError, InputError

# The commands import their modules (pandas, openpyxl, ...) when they run, so that
# `culture-probe --help` does not pay for them.
if TYPE_CHECKING:
    import pandas as pd

    from culture_probe.survey._fields import Field
    from culture_probe.survey._records import PaperRecord

app = typer.Typer(
    help="Literature reviews annotated along the taxonomy: workbooks, checks, agreement, coverage.",
    no_args_is_help=True,
)
# Soft wrap: a message names a file path and a cell; breaking it across lines would hide both.
_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")
USER_ERROR = 2

TaxonomyOption = Annotated[
    Path, typer.Option("--taxonomy", "-t", help="The taxonomy YAML the fields come from.")
]
DEFAULT_TAXONOMY = Path("taxonomy/taxonomy.yaml")


def _fields(taxonomy: Path) -> tuple[Field, ...]:
    from culture_probe.survey._fields import build_fields
    from culture_probe.taxonomy import load_taxonomy

    return build_fields(load_taxonomy(taxonomy))


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; a user error is printed without a traceback and exits with status 2,
    the status of every user error of ``culture-probe``."""
    try:
        return action()
    except CultureProbeError as error:
        _err.print(f"[red]error:[/red] {error}", markup=True, highlight=False, soft_wrap=True)
        raise typer.Exit(USER_ERROR) from None


@app.command()
def template(
    out: Annotated[Path, typer.Option("--out", "-o", help="The workbook to write (.xlsx).")],
    papers: Annotated[
        Path | None, typer.Option("--papers", "-p", help="Pre-fill from a .bib or .csv list.")
    ] = None,
    taxonomy: TaxonomyOption = DEFAULT_TAXONOMY,
) -> None:
    """Write an annotation workbook generated from the taxonomy."""

    def run() -> None:
        from culture_probe.survey._papers import read_papers

        fields = _fields(taxonomy)
        records = read_papers(papers) if papers is not None else []
        _write(out, records, fields)

    _guarded(run)


@app.command("import-list")
def import_list(
    file: Annotated[Path, typer.Argument(help="Long-format CSV: one row per (paper, category).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The workbook to write (.xlsx).")],
    taxonomy: TaxonomyOption = DEFAULT_TAXONOMY,
) -> None:
    """Turn a published (paper, category) list into an annotation workbook."""

    def run() -> None:
        from culture_probe.survey._importer import import_long_list

        fields = _fields(taxonomy)
        _write(out, import_long_list(file, fields), fields)

    _guarded(run)


def _write(out: Path, records: list[PaperRecord], fields: tuple[Field, ...]) -> None:
    if out.suffix.lower() != ".xlsx":
        raise InputError("the workbook must be an .xlsx file", path=out)
    from culture_probe.survey._workbook import write_workbook

    write_workbook(out, records, fields)
    for note in getattr(records, "notes", []):  # merges of differently written titles: to check
        _out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    _out.print(f"wrote {out} ({len(records)} papers, {len(fields)} fields)")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workbooks (.xlsx) or CSV exports.")],
    taxonomy: TaxonomyOption = DEFAULT_TAXONOMY,
) -> None:
    """Check every cell; list each problem with sheet, row, column and what is allowed."""

    def run() -> int:
        from culture_probe.survey._records import read_review

        fields = _fields(taxonomy)
        failed = 0
        for file in files:
            try:
                sheet = read_review(str(file), fields)
            except InputError as error:
                _err.print(f"error: {error}", markup=False, highlight=False, soft_wrap=True)
                failed += 1
                continue
            for issue in sheet.issues:
                _err.print(
                    f"{issue.severity}: {issue}", markup=False, highlight=False, soft_wrap=True
                )
            errors = len(sheet.errors)
            failed += errors > 0
            verdict = "ok" if not errors else f"{errors} error(s)"
            _out.print(f"{file}: {len(sheet.records)} papers, {verdict}", highlight=False)
        return failed

    if _guarded(run):
        raise typer.Exit(USER_ERROR)


@app.command()
def agreement(
    files: Annotated[list[Path], typer.Argument(help="Two or more annotators' workbooks.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Disagreements to adjudicate (.csv or .xlsx).")
    ] = Path("disagreements.csv"),
    table_out: Annotated[
        Path | None, typer.Option("--table", help="Also write the agreement table (.csv).")
    ] = None,
    taxonomy: TaxonomyOption = DEFAULT_TAXONOMY,
) -> None:
    """Cohen's or Fleiss' kappa and Krippendorff's alpha per field; list the disagreements."""

    def run() -> None:
        from culture_probe.survey._agreement import compute_agreement
        from culture_probe.survey._records import read_review
        from culture_probe.survey._tidy import write_table

        fields = _fields(taxonomy)
        result = compute_agreement([read_review(str(f), fields) for f in files], fields)
        write_table(result.disagreements, out)
        if table_out is not None:
            write_table(result.table, table_out)
        _print_agreement(result.table, result.annotators)
        _out.print(f"wrote {len(result.disagreements)} disagreements to {out}")

    _guarded(run)


def _print_agreement(table: pd.DataFrame, annotators: list[str]) -> None:
    view = Table(title=f"Agreement of {', '.join(annotators)}")
    numbers = ("kappa", "alpha_nominal", "alpha_masi", "alpha_jaccard", "observed_agreement")
    for column in ("field", "label", "papers", *numbers):
        view.add_column(column, justify="left" if column in ("field", "label") else "right")
    for row in table.to_dict(orient="records"):
        cells = [str(row["field"]), str(row["label"]) or "(all)", str(row["papers"])]
        view.add_row(*cells, *(_number(float(row[c])) for c in numbers))
    _out.print(view)


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


@app.command()
def merge(
    file: Annotated[Path, typer.Argument(help="The adjudicated workbook or CSV export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="tidy.parquet, .csv or .xlsx")],
    taxonomy: TaxonomyOption = DEFAULT_TAXONOMY,
) -> None:
    """One tidy table: a row per paper x field x label."""

    def run() -> None:
        from culture_probe.survey._records import read_review
        from culture_probe.survey._tidy import tidy_table, write_table

        fields = _fields(taxonomy)
        sheet = read_review(str(file), fields)
        sheet.raise_for_errors()
        table = tidy_table(sheet.records, fields)
        write_table(table, out)
        _out.print(f"wrote {out} ({len(table)} rows, {len(sheet.records)} papers)")

    _guarded(run)


@app.command()
def report(
    file: Annotated[Path, typer.Argument(help="The (adjudicated) workbook or CSV export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML page to write.")] = Path(
        "coverage.html"
    ),
    studies: Annotated[
        Path | None,
        typer.Option("--studies", help="Folder of study YAML files (default: the taxonomy's)."),
    ] = None,
    taxonomy: TaxonomyOption = DEFAULT_TAXONOMY,
) -> None:
    """Coverage per label, demographic x semantic co-occurrence, papers per year and the gaps."""

    def run() -> None:
        from culture_probe.survey._coverage import compute_coverage, load_study_coverage
        from culture_probe.survey._records import read_review
        from culture_probe.survey._report import render_coverage_report

        fields = _fields(taxonomy)
        sheet = read_review(str(file), fields)
        sheet.raise_for_errors()
        folder = studies if studies is not None else taxonomy.parent
        coverage = compute_coverage(sheet.records, fields, load_study_coverage(folder, taxonomy))
        render_coverage_report(coverage, str(file), out)
        _out.print(f"wrote {out} ({coverage.papers} papers, {len(coverage.gaps)} gaps)")

    _guarded(run)
