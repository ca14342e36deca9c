"""Every packaged study's report, on a small slice scored by the embedded model, in Chromium: no
overlapping ticks, legible cell text, every mark inside its plot, every nav link to a section that
is there; the crossed study's charts per axis and order; and the CLI's summary in 60 columns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from packaged_studies import SLICES
from test_report_charts import (
    CELL_TEXT,
    MARKS_OUTSIDE,
    OVERLAPPING_TICKS,
    SCREENSHOTS,
    TEXT_OUTSIDE,
    _rgb_to_hex,
    wcag_contrast,
)

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("culture-probe"))

NAV_TARGETS = """() => [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href'))
  .map(href => [href, document.getElementById(href.slice(1)) !== null])"""


@pytest.fixture(scope="module")
def study_reports(packaged_study_runs: Any) -> dict[str, Path]:
    """The report of every packaged study on the claims tests' slice (scored once per session)."""
    return {study: packaged_study_runs[study].path / "report.html" for study in sorted(SLICES)}


@pytest.fixture(scope="module", params=sorted(SLICES))
def page(request: pytest.FixtureRequest, browser: BrowserContext, packaged_study_runs: Any
         ) -> Iterator[Page]:  # fmt: skip
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    report = packaged_study_runs[request.param].path / "report.html"  # this study's run alone
    page.goto(report.as_uri(), wait_until="load")
    page.wait_for_selector("html[data-report-ready='1']")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    yield page
    page.close()


def test_the_charts_of_every_study_are_readable_and_hold_their_marks(page: Page) -> None:
    # a study sliced to a nominal item has fewer charts: those of the expected answer leave it out
    least = 2 if "leave out" in page.locator("#culture-or-wording").inner_text() else 3
    ticks: dict[str, Any] = page.evaluate(OVERLAPPING_TICKS)
    assert ticks["axes"] >= least and ticks["found"] == []
    marks: dict[str, Any] = page.evaluate(MARKS_OUTSIDE)
    assert marks["charts"] >= least and marks["outside"] == []
    assert page.evaluate(TEXT_OUTSIDE) == []
    pairs = page.evaluate(CELL_TEXT)
    assert pairs, "every study's report has at least one heatmap"
    worst = min(wcag_contrast(_rgb_to_hex(text), fill) for text, fill, _ in pairs)
    assert worst >= 4.5


def test_every_nav_link_leads_to_a_section_of_the_page(page: Page) -> None:
    links = page.evaluate(NAV_TARGETS)
    assert len(links) >= 5
    assert [href for href, found in links if not found] == []
    titles = page.locator("nav.toc").inner_text()
    people = page.locator("#compared-with-people").count()
    assert ("Compared with people" in titles) == (people == 1)


def test_the_crossed_study_charts_each_axis_per_order(study_reports: dict[str, Path],
                                                      browser: BrowserContext) -> None:  # fmt: skip
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(study_reports["food_religion"].as_uri(), wait_until="load")
    page.wait_for_selector("html[data-report-ready='1']")
    assert page.locator("nav.toc a[href='#crossed-axes']").count() == 1
    region = page.locator("#chart-marginal-pork_at_home-region")
    labels = region.locator("text").all_text_contents()
    for name in ("India, canonical", "India, reversed", "United States, reversed"):
        assert name in labels  # proxies named in full, both orders shown
    caption = region.locator("figcaption").inner_text()
    assert caption.startswith("2 levels of region (India and United States)")
    assert "canonical and reversed" in caption
    for order in ("canonical", "reversed"):
        grid = page.locator(f"#chart-grid-pork_at_home-{order}")
        assert grid.locator("rect.cell").count() == 4  # 2 regions x 2 religions
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / "report-crossed-food_religion.png"
    page.locator("#crossed-axes").screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    assert page.locator("#crossed-axes").count() == 1
    page.close()
    others = [path for study, path in study_reports.items() if not study.startswith("food_relig")]
    assert all('id="crossed-axes"' not in path.read_text() for path in others)


def test_a_crossed_study_in_two_languages_keeps_its_nominal_item_on_its_own_measure(
    packaged_study_runs: Any, browser: BrowserContext
) -> None:
    run = packaged_study_runs["food_religion_languages"]
    indonesian = run.plan.loc[(run.plan["language"] == "id") & (run.plan["proxy"] == "IN+islam")]
    assert indonesian["user"].str.contains("sebuah keluarga Muslim biasa di India").any()
    assert run.plan.groupby("language")["prompt_id"].count().to_dict() == {"en": 144, "id": 144}
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto((run.path / "report.html").as_uri(), wait_until="load")
    page.wait_for_selector("html[data-report-ready='1']")
    verdicts = page.locator("#verdict ul.verdicts li").all_inner_texts()
    staple = next(text for text in verdicts if text.startswith("everyday_staple"))
    pork = next(text for text in verdicts if text.startswith("pork_at_home"))
    assert "Gini variation (CATANOVA)" in staple and "CWI" not in staple
    assert "CWI" in pork and "Gini" not in pork
    cwi_labels = page.locator("#chart-cwi text").all_text_contents()
    assert any("pork_at_home" in label for label in cwi_labels)
    assert not any("everyday_staple" in label for label in cwi_labels)
    assert "leave out everyday_staple (nominal)" in page.locator("#culture-or-wording").inner_text()
    assert page.locator("#crossed-axes").count() == 1 and page.locator("#prompt-language").count()
    SCREENSHOTS.mkdir(exist_ok=True)
    for section in ("verdict", "crossed-axes", "culture-or-wording"):
        shot = SCREENSHOTS / f"report-food_religion_languages-{section}.png"
        page.locator(f"#{section}").screenshot(path=str(shot))
        assert shot.stat().st_size > 20_000
    page.close()


def test_the_cli_summary_wraps_to_a_60_column_terminal(
    repo: Path, tmp_path: Path, packaged_study_runs: Any
) -> None:
    # the session's run, copied: the command finds every prompt scored and goes on to the summary
    shutil.copytree(packaged_study_runs["food_religion"].path, tmp_path / "run")
    items, proxies = SLICES["food_religion"]
    environment = {**os.environ, "COLUMNS": "60"}
    done = subprocess.run(
        [CLI, "run", str(repo / "taxonomy/food_religion.yaml"), "--items", items, "--proxies",
         proxies, "--out", str(tmp_path / "run"), "--dtype", "float32", "--bootstrap", "100"],
        capture_output=True, text=True, env=environment, timeout=300, check=True,
    )  # fmt: skip
    assert "resuming: " in done.stderr and "already scored" in done.stderr
    # the last line, "report: <path>", is a path to copy: it is left whole
    lines = [line for line in done.stdout.splitlines() if not line.startswith("report: ")]
    assert "…" not in done.stdout
    assert max(len(line.rstrip()) for line in lines) <= 60
    assert any(line.startswith("axis region x religion") for line in lines), done.stdout
    assert "Over all" in " ".join(done.stdout.split())  # the sentences follow the table, whole
