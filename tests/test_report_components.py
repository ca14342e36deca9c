"""The shared report components: escaping, palettes, tables, charts and the page shell."""

from __future__ import annotations

import html as html_module
import itertools
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup
from playwright.sync_api import BrowserContext

from browser import BrowserPage
from culture_probe.report import (
    OKABE_ITO,
    Section,
    bar_chart,
    distribution_bars,
    figure,
    forest_plot,
    heatmap,
    histogram,
    html_table,
    join,
    json_for_script,
    key_values,
    paragraph,
    range_plot,
    render_page,
    sequential_colour,
    stacked_bar_chart,
    write_page,
)
from culture_probe.report.page import content_security_policy
from culture_probe.report.tables import display_text

HOSTILE = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=1">'

# Machado, Oliveira & Fernandes (2009) simulation matrices (severity 1), applied in linear sRGB.
CVD_SIMULATIONS = {
    "deuteranopia": [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ],
    "protanopia": [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ],
    "tritanopia": [
        [1.255528, -0.076749, -0.178779],
        [-0.078411, 0.930809, 0.147602],
        [0.004733, 0.691367, 0.303900],
    ],
}


def _linear_rgb(colour: str) -> np.ndarray:
    channels = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)


def _cie_lab(linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    t = (xyz @ linear) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _smallest_difference(colours: list[str], matrix: list[list[float]]) -> float:
    """Smallest CIE76 colour difference between any two colours as a dichromat would see them."""
    seen = [_cie_lab(np.clip(np.array(matrix) @ _linear_rgb(c), 0, 1)) for c in colours]
    return min(float(np.linalg.norm(seen[i] - seen[j])) for i in range(len(seen)) for j in range(i))


@pytest.mark.parametrize("deficiency", sorted(CVD_SIMULATIONS))
def test_series_colours_stay_distinct_for_dichromats(deficiency: str) -> None:
    matrix = CVD_SIMULATIONS[deficiency]
    assert _smallest_difference(list(OKABE_ITO[:6]), matrix) > 15
    # the check has teeth: a red/green pair collapses under deuteranopia
    if deficiency == "deuteranopia":
        assert _smallest_difference(["#d62728", "#2ca02c"], matrix) < 12


@pytest.mark.parametrize("palette", ["viridis", "cividis"])
def test_sequential_palette_brightens_monotonically(palette: str) -> None:
    lightness = [_cie_lab(_linear_rgb(sequential_colour(t / 40, palette)))[0] for t in range(41)]
    assert all(later > earlier for earlier, later in itertools.pairwise(lightness))
    assert sequential_colour(0.5, "viridis") == "#21918c"  # the published mid-point of viridis
    assert sequential_colour(-3, palette) == sequential_colour(0, palette)


def test_sequential_palette_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="viridis"):
        sequential_colour(0.5, "rainbow")


def _all_charts(label: str) -> list[Markup]:
    return [
        bar_chart([label, "b"], [0.2, float("nan")], title=label),
        stacked_bar_chart([label], {label: [0.5], "wording": [0.5]}, title=label),
        heatmap([label], [label, "p2"], [[0.1, None]], title=label),
        forest_plot([label], [2.0], [1.0], [3.0], title=label, reference=1.0, log_scale=True),
        histogram([0.1, 0.2], title=label),
        distribution_bars([label, "x"], {label: [0.4, 0.6]}, title=label),
        range_plot([label], [0.1], [0.4], [0.2], title=label),
    ]


def test_every_chart_escapes_labels_and_titles() -> None:
    for chart in _all_charts(HOSTILE):
        assert "<script>" not in chart and "<img" not in chart
        assert "&lt;script&gt;" in chart
        assert chart.startswith("<svg") and chart.endswith("</svg>")


def test_bar_chart_draws_present_values_and_names_missing_ones() -> None:
    chart = bar_chart(["a", "b", "c"], [0.5, None, 1.0], title="t", domain=(0, 1))
    widths = [float(w) for w in re.findall(r'class="bar"[^>]*width="([0-9.]+)"', chart)]
    assert len(widths) == 2 and widths[1] == pytest.approx(2 * widths[0], rel=0.01)
    assert "n/a" in chart


@pytest.mark.parametrize(
    "missing", [None, math.nan, np.float32("nan"), np.float64("nan"), pd.NA, pd.NaT]
)
def test_every_kind_of_missing_value_is_shown_as_missing(missing: object) -> None:
    chart = bar_chart(["a", "b"], [0.5, missing], title="t", domain=(0, 1))  # type: ignore[list-item]
    assert len(re.findall(r'class="bar"', chart)) == 1 and "n/a" in chart
    assert display_text(missing) == ""


def test_stacked_bar_segments_are_proportional_to_the_shares() -> None:
    chart = stacked_bar_chart(["q"], {"c": [0.6], "p": [0.3], "e": [0.1]}, title="t")
    widths = [float(w) for w in re.findall(r'class="segment"[^>]*width="([0-9.]+)"', chart)]
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=0.01)
    assert widths[0] / widths[2] == pytest.approx(6.0, rel=0.01)


def test_heatmap_colours_follow_the_values() -> None:
    chart = heatmap(["r"], ["lo", "hi"], [[0.0, 1.0]], title="t", domain=(0, 1))
    fills = re.findall(r'class="cell"[^>]*fill="(#[0-9a-f]{6})"', chart)
    assert fills == ["#440154", "#fde725"]
    with pytest.raises(ValueError, match="1 rows x 2 columns"):
        heatmap(["r"], ["a", "b"], [[0.1]], title="t")


def test_forest_plot_places_the_reference_between_intervals_on_a_log_axis() -> None:
    chart = forest_plot(["a", "b"], [4.0, 0.25], [2.0, 0.1], [8.0, 0.5], title="t", reference=1.0,
                        log_scale=True)  # fmt: skip
    reference_x = float(re.search(r'class="reference" x1="([0-9.]+)"', chart).group(1))  # type: ignore[union-attr]
    estimates = [float(x) + 4 for x in re.findall(r'class="estimate" x="([0-9.]+)"', chart)]
    # log symmetry: 4 and 1/4 sit at equal distances on either side of 1
    assert estimates[0] - reference_x == pytest.approx(reference_x - estimates[1], abs=0.05)


def test_histogram_counts_values_into_bins() -> None:
    chart = histogram([0.05, 0.1, 0.15, 0.9, None], title="t", bins=2, domain=(0, 1))
    titles = re.findall(r'class="bin"[^>]*>|<title>([^<]*)</title></rect>', chart)
    counts = [int(t.rsplit(":", 1)[1]) for t in titles if t]
    assert counts == [3, 1]
    assert "1 missing" in chart


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="lows has 1 values for 2 labels"):
        forest_plot(["a", "b"], [1, 2], [0], [3, 4], title="t")


def test_json_for_script_cannot_close_the_script_and_round_trips() -> None:
    data = {"text": "</script><!-- & \u2028 " + HOSTILE}
    encoded = json_for_script(data)
    assert "</" not in encoded and "<!--" not in encoded and "<" not in encoded
    assert json.loads(encoded) == data


def test_table_sorts_numbers_by_value_and_links_cells() -> None:
    frame = pd.DataFrame(
        {"item": ["q1", HOSTILE], "cwi": [2.5, math.nan], "options": [["a", "b"], ["c"]]}
    )
    table = html_table(frame, table_id="Items!", formats={"cwi": "{:.1f}"},
                       links={"item": lambda row: f"#prompts/{row['item']}"})  # fmt: skip
    assert 'id="items"' in table
    assert '<td class="num" data-sort="2.5">2.5</td>' in table
    assert '<td class="num" data-sort=""></td>' in table
    assert '<a href="#prompts/q1">q1</a>' in table
    assert "<td>a, b</td>" in table
    assert "<script>" not in table and "&lt;script&gt;" in table


def test_table_rejects_unknown_columns_and_says_which() -> None:
    with pytest.raises(KeyError, match="cwii"):
        html_table(pd.DataFrame({"cwi": [1.0]}), table_id="t", columns=["cwii"])


def test_table_truncates_and_says_so() -> None:
    table = html_table(pd.DataFrame({"n": range(10)}), table_id="t", max_rows=3)
    assert table.count("<tr>") == 4 and "first 3 of 10" in table


def test_page_is_self_contained_with_a_policy_that_forbids_fetches() -> None:
    body = join(paragraph(HOSTILE, "verdict"), figure(bar_chart(["a"], [1.0], title="c"), HOSTILE),
                key_values([("model", HOSTILE)]))  # fmt: skip
    html = render_page(HOSTILE, [Section(HOSTILE, body, collapsible=True, open=False)],
                       lead=HOSTILE, data={"blob": {"x": HOSTILE}})  # fmt: skip
    assert "<script>window" not in html and "<img" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None
    assert "default-src 'none'" in html_module.unescape(policy.group(1))
    assert html_module.unescape(policy.group(1)) == content_security_policy(
        re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    )


def test_write_page_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    write_page(target, "<p>first</p>")

    def interrupted_rename(source: str, destination: str) -> None:
        raise KeyboardInterrupt  # as if the process were stopped between write and rename

    monkeypatch.setattr(os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        write_page(target, "<p>second</p>")
    monkeypatch.undo()
    assert target.read_text() == "<p>first</p>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --- In a real browser: the system Chromium driven over the DevTools protocol by Playwright. ---


def _component_page(path: Path) -> Path:
    frame = pd.DataFrame({"item": ["q10", "q2", HOSTILE, "q1"], "cwi": [0.5, 12.0, math.nan, 3.0]})
    sections = [
        Section(
            "Charts " + HOSTILE, join(*(figure(chart, HOSTILE) for chart in _all_charts(HOSTILE)))
        ),
        Section("Table", html_table(frame, table_id="items", caption=HOSTILE)),
        Section("Details", key_values([("model", HOSTILE)]), collapsible=True, open=False),
    ]
    return write_page(path, render_page(HOSTILE, sections, lead=HOSTILE, data={"d": [HOSTILE]}))


def test_components_render_in_chromium_as_inert_text(
    browser: BrowserContext, tmp_path: Path
) -> None:
    loaded = BrowserPage(browser, _component_page(tmp_path / "components.html"))
    page = loaded.page
    assert page.locator("svg.chart").count() == 7
    assert page.title() == HOSTILE
    assert page.locator("h1").inner_text() == HOSTILE
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2  # the JSON blob and the page's own script
    assert json.loads(page.locator("script#d").text_content() or "") == [HOSTILE]
    loaded.assert_clean()


def test_tables_sort_numerically_and_filter_in_chromium(
    browser: BrowserContext, tmp_path: Path
) -> None:
    loaded = BrowserPage(browser, _component_page(tmp_path / "components.html"))
    page = loaded.page

    def first_column() -> list[str]:
        return page.locator("#items-table tbody tr:not([hidden]) td:first-child").all_inner_texts()

    page.click("#items-table th:nth-child(2)")
    assert first_column() == ["q10", "q1", "q2", HOSTILE]  # 0.5 < 3 < 12, missing last
    page.click("#items-table th:nth-child(2)")
    assert first_column() == ["q2", "q1", "q10", HOSTILE]
    page.fill("#items input.table-filter", "q1")
    assert first_column() == ["q1", "q10"]
    assert page.locator("#items .table-count").inner_text() == "2 of 4 rows"
    loaded.assert_clean()
