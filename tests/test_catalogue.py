"""``culture-probe list``: the taxonomy with the studies and probes that cover each cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from culture_probe.catalogue import build_catalogue
from culture_probe.cli import app
from culture_probe.taxonomy import load_taxonomy


def test_every_taxonomy_cell_is_listed_with_the_studies_that_cover_it(repo: Path) -> None:
    taxonomy_path = repo / "taxonomy" / "taxonomy.yaml"
    catalogue = build_catalogue(taxonomy_path)
    cells = {cell.id: cell for cell in catalogue.cells}
    assert len(cells) == len(load_taxonomy(taxonomy_path).categories)
    assert cells["food_and_drink"].studies == ["food", "food_religion", "food_religion_languages"]
    assert cells["food_and_drink"].probes == ["probes/food", "probes/food_religion"]
    assert "food_religion" in cells["religion"].studies  # a crossed study covers each of its axes
    assert cells["subnational_region"].studies == ["food"]
    assert set(cells["region"].studies) >= {"values", "food", "social", "technology", "names"}
    assert cells["language"].studies == ["food_religion_languages", "values_languages"]
    assert cells["ethnicity"].studies == [] and cells["kinship"].status == "not_yet_studied"
    assert catalogue.problems == {}


def test_a_broken_study_is_reported_not_fatal(tmp_path: Path, repo: Path) -> None:
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    broken = tmp_path / "taxonomy" / "food.yaml"
    broken.write_text(broken.read_text().replace("region: [US,", "region: [USA,"))
    catalogue = build_catalogue(tmp_path / "taxonomy" / "taxonomy.yaml")
    problem = catalogue.problems[str(broken)]
    assert "unknown Region value 'USA'" in problem
    assert [c.studies for c in catalogue.cells if c.id == "food_and_drink"] == [
        ["food_religion", "food_religion_languages"]
    ]


def test_list_json_for_machines(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    names = next(cell for cell in payload["cells"] if cell["id"] == "names")
    assert names["studies"] == ["names"] and names["status"] == "studied"
    assert {study["id"] for study in payload["studies"]} >= {
        "food",
        "social",
        "technology",
        "names",
    }
