"""Charts that cannot mislead: readable ticks, legible cell text, every mark on its axis, and
captions that say what the design did; checked on the markup and, for a real analysed run, in
Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from playwright.sync_api import BrowserContext, Page

from culture_probe.analysis.cli import analyze_run
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.report._design_captions import option_position_caption
from culture_probe.report.run_report import render_run_report
from culture_probe.report.svg import (
    _ANCHORS,
    _MUTED,
    MISSING_FILL,
    bar_chart,
    forest_plot,
    heatmap,
    sequential_colour,
    text_colour_on,
)
from test_report_run import make_run_directory

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build"


def wcag_contrast(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio, written out from the specification's formula."""

    def luminance(colour: str) -> float:
        rgb = np.array([int(colour[k : k + 2], 16) for k in (1, 3, 5)]) / 255.0
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ np.array([0.2126, 0.7152, 0.0722]))

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("palette", sorted(_ANCHORS))
def test_cell_text_meets_wcag_aa_on_every_colour_the_palette_can_produce(palette: str) -> None:
    # 8 segments x 1024 steps: finer than one 8-bit step of any channel, so every colour occurs
    fills = {sequential_colour(t, palette) for t in np.linspace(0, 1, 8 * 1024 + 1)}
    assert len(fills) > 500
    worst = min(wcag_contrast(text_colour_on(fill), fill) for fill in fills)
    assert worst >= 4.5
    assert wcag_contrast(_MUTED, MISSING_FILL) >= 4.5  # "n/a" on a missing cell


def test_the_darkest_and_lightest_cells_get_white_and_black_text() -> None:
    assert text_colour_on(sequential_colour(0.0)) == "#ffffff"
    assert text_colour_on(sequential_colour(1.0)) == "#000000"


def _axis_labels(chart: str) -> list[str]:
    axis = re.search(r'<g class="axis">(.*?)</g>', chart, re.S)
    assert axis is not None
    return re.findall(r"<text[^>]*>([^<]*)</text>", axis.group(1))


def test_a_log_axis_over_twelve_decades_shows_at_most_eight_distinct_ticks() -> None:
    chart = forest_plot(["a", "b"], [1e-6, 1e5], [1e-7, 1e4], [1e-5, 1e6], title="CWI",
                        reference=1.0, log_scale=True)  # fmt: skip
    labels = _axis_labels(chart)
    assert 2 <= len(labels) <= 8
    assert len(set(labels)) == len(labels)
    assert "1" in labels  # parity stays on the axis


def test_a_bar_past_the_requested_domain_widens_the_axis() -> None:
    chart = bar_chart(["a", "b"], [0.5, 1.44], title="t", domain=(0.0, 1.0), value_format="{:.1f}")
    labels = [float(label) for label in _axis_labels(chart)]
    assert max(labels) >= 1.44
    area = re.search(r'class="plot-area" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)
    bar = re.findall(r'class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)[1]
    assert area is not None
    assert float(bar[0]) + float(bar[1]) <= float(area[1]) + float(area[2]) + 1e-6


def test_a_heatmap_with_many_columns_grows_to_hold_them() -> None:
    chart = heatmap(["r"], [str(k) for k in range(80)], [[0.5] * 80], title="t")
    width = float(re.search(r'viewBox="0 0 ([\d.]+)', chart).group(1))  # type: ignore[union-attr]
    last = re.findall(r'class="cell" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)[-1]
    assert float(last[0]) + float(last[1]) <= width


def _plan(orders: list[list[int]]) -> pd.DataFrame:
    return pd.DataFrame({"item_id": ["q1"] * len(orders), "display_to_canonical": orders})


def test_the_position_caption_names_the_positions_of_canonical_and_reversed_orders() -> None:
    caption = option_position_caption(_plan([[0, 1, 2, 3], [3, 2, 1, 0]]))
    assert "do not balance" in caption and "equally often" not in caption
    assert "option 1 at positions 1 and 4; option 2 at positions 2 and 3" in caption


def test_the_position_caption_calls_a_latin_square_balanced() -> None:
    cyclic = [[(k + shift) % 4 for k in range(4)] for shift in range(4)]
    assert option_position_caption(_plan(cyclic)).startswith("Every option is shown at every")
    assert "do not balance" in option_position_caption(_plan(cyclic[:3]))


# --- a real analysed run, in Chromium -------------------------------------------------------------


def _analysed_run(directory: Path) -> Path:
    """A simulated study, analysed by the real analysis, with placebos and a wide CWI range."""
    effects = PlantedEffects(culture=0.15, wording=0.03, interaction=0.02, noise=0.01,
                             placebo=0.01, position_bias=0.3)  # fmt: skip
    plan, responses = simulate_study(
        effects, n_items=6, n_proxies=4, n_paraphrases=3, n_placebos=2, seed=8
    )
    plan.to_parquet(directory / "plan.parquet")
    responses.to_parquet(directory / "responses.parquet")
    analyze_run(directory, n_bootstrap=100, n_permutations=19)
    return directory


@pytest.fixture(scope="module", params=["analysed", "hand-made"])
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of an analysed simulated run, and of the report tests' hand-made run (hostile
    labels, raw-variance controls)."""
    directory = tmp_path_factory.mktemp("run") / request.param
    if request.param == "analysed":
        directory.mkdir()
        return render_run_report(_analysed_run(directory))
    return render_run_report(make_run_directory(directory))


@pytest.fixture(scope="module")
def page(browser: BrowserContext, report: Path) -> Iterator[Page]:
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    page.goto(report.as_uri(), wait_until="load")
    page.wait_for_selector("html[data-report-ready='1']")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    yield page
    page.close()


OVERLAPPING_TICKS = """() => {
  const found = [];
  for (const axis of document.querySelectorAll('svg.chart g.axis')) {
    const boxes = [...axis.querySelectorAll('text')].map(t => t.getBBox())
      .sort((a, b) => a.x - b.x);
    for (let k = 1; k < boxes.length; k++) {
      if (boxes[k].x < boxes[k - 1].x + boxes[k - 1].width) {
        found.push(axis.closest('svg').getAttribute('aria-label'));
      }
    }
  }
  return {axes: document.querySelectorAll('svg.chart g.axis').length, found};
}"""

CELL_TEXT = """() => {
  const pairs = [];
  for (const cell of document.querySelectorAll('svg.chart-heatmap rect.cell')) {
    const c = cell.getBBox();
    for (const text of cell.closest('svg').querySelectorAll('text')) {
      const t = text.getBBox();
      const x = t.x + t.width / 2, y = t.y + t.height / 2;
      if (x > c.x && x < c.x + c.width && y > c.y && y < c.y + c.height) {
        pairs.push([getComputedStyle(text).fill, cell.getAttribute('fill'), text.textContent]);
      }
    }
  }
  return pairs;
}"""

MARKS_OUTSIDE = """() => {
  const marks = 'rect.bar, rect.segment, rect.estimate, line.interval, line.reference, rect.bin,'
    + ' line.tick, rect.dist-bar, rect.range, circle.point, rect.cell';
  const outside = [];
  let charts = 0, checked = 0;
  for (const svg of document.querySelectorAll('svg.chart')) {
    const area = svg.querySelector('rect.plot-area');
    if (!area) { outside.push(['no plot area', svg.getAttribute('aria-label')]); continue; }
    charts++;
    const a = area.getBBox();
    for (const mark of svg.querySelectorAll(marks)) {
      const m = mark.getBBox();
      checked++;
      if (m.x < a.x - 2 || m.y < a.y - 2 || m.x + m.width > a.x + a.width + 2
          || m.y + m.height > a.y + a.height + 2) {
        outside.push([svg.getAttribute('aria-label'), mark.getAttribute('class'),
                      m.x, m.x + m.width, a.x, a.x + a.width]);
      }
    }
  }
  return {charts, checked, outside};
}"""


TEXT_OUTSIDE = """() => {
  const outside = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const view = svg.viewBox.baseVal;
    for (const text of svg.querySelectorAll('text')) {
      const box = text.getBBox();
      const matrix = text.getCTM(), root = svg.getCTM();
      // rotated column labels: place the box through its own transform, relative to the svg
      const toSvg = root.inverse().multiply(matrix);
      const corner = (x, y) => {
        const point = svg.createSVGPoint();
        point.x = x; point.y = y;
        return point.matrixTransform(toSvg);
      };
      const ends = [corner(box.x, box.y), corner(box.x + box.width, box.y),
                    corner(box.x, box.y + box.height), corner(box.x + box.width, box.y + box.height)];
      const left = Math.min(...ends.map(p => p.x)), right = Math.max(...ends.map(p => p.x));
      if (left < view.x - 1 || right > view.x + view.width + 1) {
        outside.push([svg.getAttribute('aria-label'), text.textContent, left, right]);
      }
    }
  }
  return outside;
}"""


def _rgb_to_hex(css: str) -> str:
    channels = [int(c) for c in re.findall(r"\d+", css)[:3]]
    return "#" + "".join(f"{c:02x}" for c in channels)


@pytest.mark.slow
def test_no_two_tick_labels_of_one_axis_overlap(page: Page) -> None:
    result: dict[str, Any] = page.evaluate(OVERLAPPING_TICKS)
    assert result["axes"] >= 5
    assert result["found"] == []


@pytest.mark.slow
def test_every_heatmap_cell_text_meets_wcag_aa_on_its_cell(page: Page) -> None:
    pairs = page.evaluate(CELL_TEXT)
    assert len(pairs) >= 16
    ratios = [(wcag_contrast(_rgb_to_hex(text), fill), label) for text, fill, label in pairs]
    assert min(ratios)[0] >= 4.5, min(ratios)
    assert {_rgb_to_hex(text) for text, _, _ in pairs} >= {"#000000", "#ffffff"}


@pytest.mark.slow
def test_every_data_mark_lies_inside_its_plot_area(page: Page) -> None:
    result: dict[str, Any] = page.evaluate(MARKS_OUTSIDE)
    assert result["charts"] >= 6 and result["checked"] >= 40
    assert result["outside"] == []


@pytest.mark.slow
def test_every_label_lies_inside_its_chart(page: Page) -> None:
    assert page.evaluate(TEXT_OUTSIDE) == []


@pytest.mark.slow
def test_the_position_caption_in_the_report_follows_the_plan(page: Page) -> None:
    caption = page.locator("#chart-position figcaption").inner_text()
    assert "do not balance" in caption  # simulate_study shows canonical and reversed orders
    assert "option 1 at positions 1 and 4" in caption


@pytest.mark.slow
def test_a_screenshot_of_the_position_chart(page: Page, report: Path) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / f"charts-position-{report.parent.name}.png"
    page.locator("#chart-position").screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_the_position_caption_names_the_one_unbalanced_item_among_balanced_ones() -> None:
    cyclic = [[(k + shift) % 3 for k in range(3)] for shift in range(3)]
    plan = pd.concat([_plan(cyclic), _plan([[0, 1, 2], [2, 1, 0]]).assign(item_id="q2")])
    caption = option_position_caption(plan)
    assert "in q2 (the other items are balanced), option 1 at positions 1 and 3;" in caption


def test_an_estimate_clipped_to_the_end_of_a_log_axis_keeps_its_mark_inside_the_plot() -> None:
    chart = forest_plot(["zero", "b"], [0.0, 2.0], [0.0, 1.0], [0.5, 4.0], title="CWI",
                        reference=1.0, log_scale=True)  # fmt: skip
    area = re.search(r'class="plot-area" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)
    marks = re.findall(r'class="estimate" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', chart)
    assert area is not None and len(marks) == 2
    assert float(marks[0][0]) >= float(area[1])  # the zero sits at the axis start, whole
