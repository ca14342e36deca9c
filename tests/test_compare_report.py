"""The comparison report: one self-contained HTML file, checked in headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import BrowserContext

from culture_probe.compare import compare
from test_compare_stats import (
    human_reference,
    make_run,
    synthetic_plan,
    synthetic_responses,
)

SCRIPT = "<script>window.__pwned=1</script>"
HOSTILE_ITEM = "q2" + SCRIPT
HOSTILE_MODEL = '"><img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("compare-report")
    plan = synthetic_plan(("q1", "q2", "q3"))
    plan["item_id"] = plan["item_id"].replace("q2", HOSTILE_ITEM)
    reference = human_reference(("q1", HOSTILE_ITEM))
    a = make_run(root / "a", "model-a", plan, synthetic_responses(plan, 1), reference=reference)
    b = make_run(
        root / "b",
        HOSTILE_MODEL,
        plan,
        synthetic_responses(plan, 2, shift={"q1": 0.8}),
        reference=reference,
    )
    return compare([a, b], n_bootstrap=200)


@pytest.fixture(scope="module")
def report(comparison: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(comparison.write_report(tmp_path_factory.mktemp("html") / "compare.html"))


def test_the_report_is_one_file_that_names_every_model_and_item(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert SCRIPT not in html and HOSTILE_MODEL not in html  # escaped everywhere
    for section in ("differences", "interaction", "ranking", "alignment", "proxies", "runs"):
        assert f'id="{section}"' in html, section


@pytest.fixture(scope="module")
def loaded(browser: BrowserContext, report: Path) -> Iterator[dict[str, Any]]:
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    seen: dict[str, Any] = {"errors": [], "requests": [], "page": page, "url": report.as_uri()}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.goto(seen["url"], wait_until="load")
    page.wait_for_selector("html[data-report-ready='1']")
    yield seen
    page.close()


def test_the_chart_shows_each_items_difference_with_its_interval(
    loaded: dict[str, Any], comparison: Any
) -> None:
    page = loaded["page"]
    chart = page.locator("#chart-differences svg.chart")
    assert chart.count() == 1
    assert chart.locator(".interval").count() == 3 and chart.locator(".estimate").count() == 3
    items = comparison.tables["item_differences"].set_index("item_id")
    # the planted item sits right of zero, with its interval text in the tooltip
    tooltip = chart.locator(".estimate title").first.text_content()
    assert tooltip == f"q1: {items.loc['q1', 'difference']:+.3f} [{items.loc['q1', 'low']:+.3f}, " \
        f"{items.loc['q1', 'high']:+.3f}]"  # fmt: skip
    assert page.locator("#chart-alignment svg.chart").count() == 1
    assert page.locator("#table-differences-table tbody tr").count() == 3
    assert loaded["errors"] == []
    assert loaded["requests"] == [loaded["url"]]


def test_hostile_names_show_as_text_and_never_run(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    page.locator("details#proxies").evaluate("element => { element.open = true; }")
    text = page.locator("body").inner_text()
    assert HOSTILE_ITEM in text and HOSTILE_MODEL in text
    assert page.locator("img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_the_tables_sort_and_filter(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    block = page.locator("#table-differences")
    block.locator("input.table-filter").fill("q3")
    assert block.locator("tbody tr:visible").count() == 1
    block.locator("input.table-filter").fill("")
    assert block.locator("tbody tr:visible").count() == 3


def test_the_report_reads_in_a_narrow_window_and_is_not_blank(
    loaded: dict[str, Any], tmp_path: Path
) -> None:
    page = loaded["page"]
    page.set_viewport_size({"width": 380, "height": 800})
    page.goto(loaded["url"])
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    page.set_viewport_size({"width": 1100, "height": 900})
    shot = tmp_path / "compare.png"
    page.screenshot(path=str(shot))
    assert ImageStat.Stat(Image.open(shot).convert("L")).stddev[0] > 20
