"""Survey workbooks end to end on the survey's own paper list, plus the xlsx details."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from culture_probe.survey import (
    PaperRecord,
    build_fields,
    import_long_list,
    read_bibtex,
    read_review,
    write_workbook,
)
from culture_probe.survey._coverage import compute_coverage, load_study_coverage
from culture_probe.survey._report import render_coverage_report
from culture_probe.survey._tidy import tidy_table
from culture_probe.taxonomy import load_taxonomy

REPO = Path(__file__).parents[1]
TAXONOMY = REPO / "taxonomy" / "taxonomy.yaml"
SURVEY_LIST = "survey/survey_v1_readme_paper_categories.csv"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return Path(__file__).parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def fields() -> tuple:
    return build_fields(load_taxonomy(TAXONOMY))


@pytest.fixture(scope="module")
def survey_workbook(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, fields: tuple
) -> Path:
    records = import_long_list(data_dir / SURVEY_LIST, fields)
    return write_workbook(tmp_path_factory.mktemp("survey") / "review.xlsx", records, fields)


def _embedded_coverage(html: str) -> list[dict]:
    match = re.search(r'<script type="application/json" id="coverage">(.*?)</script>', html, re.S)
    assert match, "the report embeds its numbers as JSON"
    return json.loads(match.group(1))


def _paper_key(listing: pd.DataFrame) -> pd.Series:
    """A paper of the long list: its title up to case, first author's surname and year."""
    first_author = listing["authors_year"].str.extract(r"^([^,( ]+)")[0].str.casefold()
    year = listing["authors_year"].str.extract(r"(\d{4})")[0]
    return listing["title"].str.casefold() + "|" + first_author + "|" + year


def test_survey_list_round_trips_into_a_report_with_its_paper_counts(
    survey_workbook: Path, data_dir: Path, fields: tuple, tmp_path: Path
) -> None:
    sheet = read_review(str(survey_workbook), fields)
    assert sheet.issues == []
    coverage = compute_coverage(
        sheet.records, fields, load_study_coverage(TAXONOMY.parent, TAXONOMY)
    )
    out = render_coverage_report(coverage, str(survey_workbook), tmp_path / "coverage.html")
    reported = {row["label"]: row["papers"] for row in _embedded_coverage(out.read_text())}

    # The list has one title in two casings ("Assessing cross-cultural alignment ..."), and one
    # title under two first authors ("The Skipped Beat ...": Zhang and Tanmay): a paper is a title
    # up to case with its first author and year.
    listing = pd.read_csv(data_dir / SURVEY_LIST)
    listing["paper"] = _paper_key(listing)
    expected = listing.groupby("category")["paper"].nunique()
    labels = {c.id: c.label for f in fields for c in f.choices}
    for category, count in expected.items():
        choice = next(f.resolve(category) for f in fields if f.resolve(category) is not None)
        assert reported[labels[choice.id]] == count, category
    assert reported["Region"] == 21
    assert reported["Language"] == 19
    assert reported["Emotions and Values"] == 19
    assert reported["Aboutness"] == 0
    assert coverage.papers == listing["paper"].nunique() == 44
    assert "aboutness" in set(coverage.gaps["label_id"])
    # The values study probes Emotions and Values across regions: the suite covers both cells.
    covered = coverage.per_label.set_index("label_id")["probe_suite"]
    assert covered["emotions_and_values"] and covered["region"] and not covered["aboutness"]


def test_survey_list_keeps_access_from_the_method_dimension(
    survey_workbook: Path, fields: tuple
) -> None:
    records = {r.title: r for r in read_review(str(survey_workbook), fields).records}
    white_box = [r for r in records.values() if "white_box" in r.labels("method")]
    assert len(white_box) == 1
    assert white_box[0].labels("access") in (("white-box",), ("both",))
    hershcovich = records["Challenges and Strategies in Cross-Cultural NLP"]
    assert hershcovich.paper_id == "hershcovich2022challenges"
    assert hershcovich.year == 2022
    assert set(hershcovich.labels("demographic")) == {"language", "region"}


def test_tidy_table_has_one_row_per_paper_field_and_label(
    survey_workbook: Path, data_dir: Path, fields: tuple
) -> None:
    records = read_review(str(survey_workbook), fields).records
    tidy = tidy_table(records, fields)
    listing = pd.read_csv(data_dir / SURVEY_LIST)
    listing["paper"] = _paper_key(listing)
    taxonomy_rows = tidy[tidy["field"].isin(["demographic", "semantic", "interaction", "method"])]
    assert len(taxonomy_rows) == len(listing.drop_duplicates(["paper", "category"]))
    assert not tidy.duplicated(["paper_id", "field", "label"]).any()
    region = tidy[(tidy["field"] == "demographic") & (tidy["label"] == "region")]
    assert region["label_name"].unique().tolist() == ["Region"]
    assert region["paper_id"].nunique() == 21


def test_template_has_dropdowns_frozen_header_and_codebook(
    survey_workbook: Path, fields: tuple
) -> None:
    workbook = load_workbook(survey_workbook)
    papers = workbook["papers"]
    header = [cell.value for cell in papers[1]]
    assert header[:6] == ["paper_id", "title", "authors", "year", "venue", "url"]
    assert papers.freeze_panes == "C2"
    by_column = {}
    for validation in papers.data_validations.dataValidation:
        for cell_range in validation.sqref.ranges:
            by_column[header[cell_range.min_col - 1]] = validation
    access = by_column["access"]
    assert access.type == "list" and access.formula1 == '"black-box,white-box,both"'
    assert by_column["turns"].formula1 == '"single-turn,multi-turn,both"'
    assert by_column["demographic:region"].formula1 == '"x"'
    assert by_column["year"].type == "whole"
    assert by_column["paper_id"].type == "custom"
    assert "languages" not in by_column  # free lists have no dropdown
    checkboxes = [name for name in header if name.startswith("demographic:")]
    assert len(checkboxes) == len(next(f for f in fields if f.key == "demographic").choices)
    header_row, *rows = workbook["codebook"].values
    codebook = pd.DataFrame(rows, columns=header_row)
    aboutness = codebook[codebook["label_id"] == "aboutness"].iloc[0]
    assert aboutness["label"] == "Aboutness" and "Hershcovich" in aboutness["citation"]
    assert aboutness["status"] == "not_yet_studied"


def test_libreoffice_opens_the_workbook_and_its_csv_export_validates(
    survey_workbook: Path, fields: tuple, tmp_path: Path
) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    assert soffice, "LibreOffice is needed: apt-get install -y libreoffice-calc-nogui"
    profile = tmp_path / "profile"
    # A private profile: a second LibreOffice (or a user's open one) cannot block the conversion.
    command = [
        soffice,
        f"-env:UserInstallation=file://{profile}",
        "--headless",
        "--convert-to",
        "csv:Text - txt - csv (StarCalc):44,34,76,1",
        "--outdir",
        str(tmp_path),
        str(survey_workbook),
    ]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=180,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    exported = tmp_path / "review.csv"
    from_libreoffice = read_review(str(exported), fields)
    from_openpyxl = read_review(str(survey_workbook), fields)
    assert from_libreoffice.issues == []
    assert [(r.paper_id, r.title, r.year, r.values) for r in from_libreoffice.records] == [
        (r.paper_id, r.title, r.year, r.values) for r in from_openpyxl.records
    ]


BIBTEX = r"""
@string{emnlp = "Proceedings of EMNLP"}
@comment{exported by a reference manager {with braces}}
@inproceedings{naous2024beer,
  title     = {Having Beer after Prayer? Measuring Cultural Bias in {L}arge {L}anguage {M}odels},
  author    = {Naous, Tarek and Ryan, Michael J. and Ritter, Alan and Xu, Wei},
  booktitle = emnlp # " 2024",
  year      = 2024,
  doi       = "10.18653/v1/2024.acl-long.862",
}
@article{koksal2023,
  title = "Cultural {NLP} in {T}{\"u}rkiye",
  author = {K{\"o}ksal, Ay{\c{s}}e},
  journal = {TACL}, year = {2023}
}
"""


def test_bibtex_prefills_the_template(tmp_path: Path, fields: tuple) -> None:
    bib = tmp_path / "refs.bib"
    bib.write_text(BIBTEX, encoding="utf-8")
    records = read_bibtex(bib)
    assert [r.paper_id for r in records] == ["naous2024beer", "koksal2023"]
    naous, koksal = records
    assert (
        naous.title == "Having Beer after Prayer? Measuring Cultural Bias in Large Language Models"
    )
    assert naous.venue == "Proceedings of EMNLP 2024" and naous.year == 2024
    assert naous.url == "https://doi.org/10.18653/v1/2024.acl-long.862"
    assert koksal.authors == "Köksal, Ayşe" and koksal.title == "Cultural NLP in Türkiye"
    workbook = write_workbook(tmp_path / "review.xlsx", records, fields)
    back = read_review(str(workbook), fields)
    assert back.issues == []
    assert [(r.title, r.authors, r.year) for r in back.records] == [
        (r.title, r.authors, r.year) for r in records
    ]


def test_empty_template_reads_back_with_no_papers(tmp_path: Path, fields: tuple) -> None:
    workbook = write_workbook(tmp_path / "empty.xlsx", [], fields)
    sheet = read_review(str(workbook), fields)
    assert sheet.records == [] and sheet.issues == []


def test_a_labelled_record_survives_the_workbook(tmp_path: Path, fields: tuple) -> None:
    record = PaperRecord(
        "p1",
        "A paper",
        year=2023,
        values={
            "demographic": ("region", "religion"),
            "semantic": ("food_and_drink",),
            "access": ("black-box",),
            "turns": ("multi-turn",),
            "languages": ("en", "sw"),
            "notes": ("uses GPT-4; see appendix",),
            "annotator": ("AB",),
        },
    )
    workbook = write_workbook(tmp_path / "one.xlsx", [record], fields)
    (back,) = read_review(str(workbook), fields).records
    # Labels come back in taxonomy order, list items in the order written.
    assert back.values == {**record.values, "demographic": ("religion", "region")}


def test_commands_run_the_survey_list_from_import_to_report(tmp_path: Path, data_dir: Path) -> None:
    from typer.testing import CliRunner

    from culture_probe.survey.cli import app

    runner = CliRunner()
    taxonomy = ["--taxonomy", str(TAXONOMY)]
    workbook, html, tidy = tmp_path / "review.xlsx", tmp_path / "coverage.html", tmp_path / "t.csv"
    steps = [
        ["import-list", str(data_dir / SURVEY_LIST), "-o", str(workbook), *taxonomy],
        ["validate", str(workbook), *taxonomy],
        ["report", str(workbook), "-o", str(html), *taxonomy],
        ["merge", str(workbook), "-o", str(tidy), *taxonomy],
        [
            "template",
            "--papers",
            str(data_dir / SURVEY_LIST),
            "-o",
            str(tmp_path / "t.xlsx"),
            *taxonomy,
        ],
    ]
    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, (step, result.output)
    assert "44 papers" in runner.invoke(app, ["validate", str(workbook), *taxonomy]).output
    reported = {row["label_id"]: row["papers"] for row in _embedded_coverage(html.read_text())}
    assert reported["region"] == 21 and reported["aboutness"] == 0
    assert pd.read_csv(tidy).query("label == 'language'")["paper_id"].nunique() == 19
    # The long list as a plain paper list: one row per distinct title, no labels yet.
    template = read_review(str(tmp_path / "t.xlsx"), build_fields(load_taxonomy(TAXONOMY)))
    assert len(template.records) == 44 and template.issues == []
    assert all(not record.values for record in template.records)
