"""The survey's own paper list (the 39-paper first version: 44 papers as title, first author and
year) from import to report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from culture_probe.survey.cli import app

SURVEY_LIST = "survey/survey_v1_readme_paper_categories.csv"


def test_the_survey_list_reports_its_paper_counts(
    real_data: Path, repo: Path, tmp_path: Path
) -> None:
    taxonomy = ["--taxonomy", str(repo / "taxonomy" / "taxonomy.yaml")]
    workbook, html, tidy = tmp_path / "review.xlsx", tmp_path / "coverage.html", tmp_path / "t.csv"
    runner = CliRunner()
    for step in (
        ["import-list", str(real_data / SURVEY_LIST), "-o", str(workbook), *taxonomy],
        ["report", str(workbook), "-o", str(html), *taxonomy],
        ["merge", str(workbook), "-o", str(tidy), *taxonomy],
    ):
        result = runner.invoke(app, step)
        assert result.exit_code == 0, (step, result.output)
    # one title in two casings ("Assessing cross-cultural alignment ..."), one title under two
    # first authors ("The Skipped Beat ..."): 44 papers
    assert "44 papers" in runner.invoke(app, ["validate", str(workbook), *taxonomy]).output
    match = re.search(r'<script type="application/json" id="coverage">(.*?)</script>',
                      html.read_text(), re.S)  # fmt: skip
    assert match is not None
    reported = {row["label"]: row["papers"] for row in json.loads(match.group(1))}
    assert reported["Region"] == 21 and reported["Language"] == 19
    assert reported["Emotions and Values"] == 19 and reported["Aboutness"] == 0
    assert pd.read_csv(tidy).query("label == 'language'")["paper_id"].nunique() == 19
