"""The run report: a run directory in, one self-contained report.html out, checked in Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageStat
from playwright.sync_api import BrowserContext, ConsoleMessage

from culture_probe.columns import PLAN_COLUMNS, RESPONSE_COLUMNS
from culture_probe.errors import InputError
from culture_probe.report._rundir import read_run_data
from culture_probe.report.run_report import build_run_page, render_run_report

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "<script>window.__pwned=1</script>"
IMAGE = '"><img src=x onerror="window.__pwned=1">'
HOSTILE_ITEM = "q2" + SCRIPT
HOSTILE_PROXY_NAME = "Japan" + IMAGE
HOSTILE_ANSWER = "I pick B " + SCRIPT + IMAGE
HOSTILE_SEMANTIC = "values" + SCRIPT
OPTIONS = ["Very important", "Rather important", "Not important", "Not at all"]
ITEMS = ("q1", HOSTILE_ITEM)
PROXIES = (("US", "United States", "culture", "region"), ("JP", HOSTILE_PROXY_NAME, "culture",
           "region"), ("green", "likes green", "placebo", "placebo"))  # fmt: skip
ORDERS = {"canonical": [0, 1, 2, 3], "reversed": [3, 2, 1, 0]}


def _plan_rows() -> list[dict[str, Any]]:
    rows = []
    for item in ITEMS:
        for proxy, name, kind, axis in PROXIES:
            for paraphrase in ("p1", "p2"):
                for order, shown in ORDERS.items():
                    lines = [f"{paraphrase}: how important is {item}?", ""]
                    lines += [f"{'ABCD'[j]}. {OPTIONS[k]}" for j, k in enumerate(shown)]
                    rows.append(
                        {
                            "prompt_id": f"{len(rows):016x}",
                            "row": len(rows),
                            "study": "values",
                            "item_id": item,
                            "wvs_id": "Q1",
                            "topic": "Important in life",
                            "scale": "ordinal",
                            "n_options": 4,
                            "axis": axis,
                            "proxy": proxy,
                            "proxy_name": name,
                            "proxy_kind": kind,
                            "paraphrase": paraphrase,
                            "framing": "imagine",
                            "wording": f"{paraphrase}/imagine",
                            "order": order,
                            "display_to_canonical": shown,
                            "option_labels": list("ABCD"),
                            "options": OPTIONS,
                            "seed": 0,
                            "language": "en",
                            "system": f"Imagine you are a person from {name}.",
                            "user": "\n".join(lines),
                            "text_hash": f"{len(rows):016x}",
                        }
                    )
    return rows


def _responses(plan: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for record in plan.itertuples():
        probs = rng.dirichlet(np.ones(4) * (3.0 if record.proxy == "US" else 1.0))
        answer = int(np.argmax(probs))
        generated = HOSTILE_ANSWER if record.row == 0 else ""
        rows.append(
            {
                "prompt_id": record.prompt_id,
                "probs": probs.tolist(),
                "option_mass": 0.9,
                "answer": answer,
                "outcome": "answered",
                "generated": generated,
                "failure": "",
                "mapped_by": "",
            }
        )
    return pd.DataFrame(rows, columns=list(RESPONSE_COLUMNS))


def _stats(plan: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Analysis tables with the analysis' column names and values chosen for the assertions."""
    items = pd.DataFrame(
        {
            "item_id": list(ITEMS),
            "axis": ["region", "region"],
            "culture_share": [0.62, 0.20],
            "culture_share_low": [0.50, 0.10],
            "culture_share_high": [0.70, 0.30],
            "wording_share": [0.20, 0.50],
            "wording_contrast_share": [0.08, 0.25],
            "residual_share": [0.10, 0.05],
            "cwi": [2.5, 0.4],
            "cwi_low": [1.3, 0.2],
            "cwi_high": [4.0, 0.9],
            "kendall_w": [0.9, 0.5],
            "kendall_w_low": [0.8, 0.3],
            "kendall_w_high": [1.0, 0.7],
            "rho2_1": [0.8, 0.3],
            "p_proxy_bh": [0.001, 0.4],
            "verdict": ["culture-dominant", "wording-dominated"],
        }
    )
    cells = plan.groupby(["item_id", "axis", "proxy", "proxy_kind"], as_index=False).size()
    cells["mean_score"] = 0.4
    cells["wording_spread"] = np.linspace(0.05, 0.6, len(cells))
    wording = plan.groupby(["item_id", "axis", "proxy", "proxy_kind", "wording"], as_index=False)
    wording_cells = wording.size().rename(columns={"size": "n_rows"})
    wording_cells["mean_score"] = np.linspace(0, 1, len(wording_cells))
    position = pd.DataFrame(
        {"item_id": [i for i in ITEMS for _ in range(4)], "position": [0, 1, 2, 3] * 2,
         "choice_share": [0.4, 0.3, 0.2, 0.1] * 2}
    )  # fmt: skip
    controls = items[["item_id", "axis"]].assign(
        culture_minus_placebo=[0.02, -0.01],
        culture_minus_placebo_low=[0.01, -0.03],
        culture_minus_placebo_high=[0.03, 0.01],
    )
    information = items[["item_id", "axis"]].assign(
        info_culture=[0.5, 0.1], info_wording=[0.1, 0.4], info_order=[0.05, 0.05], noise=[1, 1]
    )
    alignment_summary = pd.DataFrame(
        {"item_id": ["q1", "q1"], "axis": ["region"] * 2, "proxy": ["US", "JP"],
         "min_p": [0.6, 0.3], "max_p": [0.9, 0.7], "avg_p": [0.75, 0.5], "nsr": [0.4, 0.4]}
    )  # fmt: skip
    return {
        "item_stats": items,
        "cell_stats": cells.drop(columns="size"),
        "wording_cells": wording_cells,
        "position_bias": position,
        "controls": controls,
        "information": information,
        "alignment_summary": alignment_summary,
    }


SUMMARY = {
    "n_responses": 48,
    "axes": {
        "region": {
            "aggregates": {
                "mean_kendall_w": {"estimate": 0.71, "ci_low": 0.60, "ci_high": 0.80},
                "mean_culture_share": {"estimate": 0.41, "ci_low": 0.3, "ci_high": 0.52},
            }
        }
    },
    "headline": ["Culture explains 41% of the answer variance.", SCRIPT],
}
MANIFEST = {
    "model": {"name": "SmolLM2-135M-Instruct", "dtype": "bfloat16"},
    "backend": "hf",
    "study": {"semantic_proxy": HOSTILE_SEMANTIC, "sha256": "ab12"},
    "versions": {"culture_probe": "0.1.0", "torch": "2.6.0"},
    "command": ["culture-probe", "run", "taxonomy/values.yaml"],
}


def make_run_directory(path: Path) -> Path:
    """A complete run directory: plan, responses, human reference, stats, summary, manifest."""
    (path / "stats").mkdir(parents=True)
    plan = pd.DataFrame(_plan_rows(), columns=list(PLAN_COLUMNS))
    plan.to_parquet(path / "plan.parquet")
    _responses(plan).to_parquet(path / "responses.parquet")
    reference = pd.DataFrame(
        [("q1", proxy, k, share) for proxy in ("US", "JP") for k, share in
         enumerate([0.1, 0.2, 0.3, 0.4])], columns=["item_id", "proxy", "option", "share"]
    )  # fmt: skip
    reference.to_parquet(path / "reference.parquet")
    for name, table in _stats(plan).items():
        table.to_parquet(path / "stats" / f"{name}.parquet")
    (path / "summary.json").write_text(json.dumps(SUMMARY))
    (path / "manifest.json").write_text(json.dumps(MANIFEST, indent=1))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_directory(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def report(run_dir: Path) -> Path:
    return render_run_report(run_dir)


def test_the_verdict_states_counts_and_intervals_in_words(report: Path) -> None:
    html = report.read_text()
    assert "culture moves the answer more than wording for 1 of 2 items" in html
    assert "for 1 the whole 95% interval is above 1" in html
    assert "Kendall&#39;s W = 0.71 [0.60, 0.80]" in html
    assert "culture explains 41% [30%, 52%] of the answer variance" in html
    assert "CWI 2.50 [1.30, 4.00]" in html and "CWI 0.40 [0.20, 0.90]" in html
    assert "Culture explains 41% of the answer variance." in html  # the analysis' headline


def test_the_prompt_blob_holds_every_prompt_and_its_probabilities(run_dir: Path) -> None:
    page = build_run_page(read_run_data(run_dir))
    start = page.index('id="prompt-data">') + len('id="prompt-data">')
    blob = json.loads(page[start : page.index("</script>", start)])
    plan = pd.read_parquet(run_dir / "plan.parquet")
    responses = pd.read_parquet(run_dir / "responses.parquet").set_index("prompt_id")
    packed = [p for item in ITEMS for p in blob["items"][item]["prompts"]]
    assert len(packed) == len(plan)
    for prompt, row in zip(packed, plan.itertuples(), strict=True):
        assert "\n".join(blob["lines"][i] for i in prompt[6]) == row.user
        assert "\n".join(blob["lines"][i] for i in prompt[5]) == row.system
        expected = responses.loc[row.prompt_id, "probs"]
        assert prompt[7] == pytest.approx(list(expected), abs=1e-4)
    assert packed[0][11] == HOSTILE_ANSWER


def test_missing_tables_leave_their_sections_with_a_note(run_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial, ignore=shutil.ignore_patterns("report.html"))
    for name in ("wording_cells", "position_bias", "alignment_summary"):
        (partial / "stats" / f"{name}.parquet").unlink()
    html = render_run_report(partial).read_text()
    assert "stats/wording_cells.parquet is not in this run" in html
    assert "stats/position_bias.parquet is not in this run" in html
    assert "No human reference data in this run" in html
    assert 'id="chart-cwi"' in html and 'id="chart-position"' not in html
    assert "Compared with people" not in html  # neither a section nor a link to one
    assert unresolved_nav_links(html) == []


def unresolved_nav_links(html: str) -> list[str]:
    """The table-of-contents links whose ``#target`` is no element id of the page."""
    nav = re.search(r'<nav class="toc"[^>]*>(.*?)</nav>', html, re.S)
    assert nav is not None
    targets = re.findall(r'href="#([^"]+)"', nav.group(1))
    assert len(targets) >= 3
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    return [target for target in targets if target not in ids]


def test_every_nav_link_of_a_full_report_resolves(run_dir: Path) -> None:
    html = render_run_report(run_dir).read_text()
    assert 'href="#compared-with-people"' in html  # the hand-made run has human data
    assert unresolved_nav_links(html) == []


def test_a_run_with_only_a_plan_still_renders(run_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "plan.parquet", bare)
    out = render_run_report(bare, tmp_path / "elsewhere" / "page.html")
    html = out.read_text()
    assert out.name == "page.html" and not (bare / "report.html").exists()
    assert "stats/item_stats.parquet is not in this run" in html
    assert "manifest.json is not in this run" in html


def test_a_folder_without_a_plan_is_rejected_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing plan\.parquet.*culture-probe run"):
        render_run_report(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_broken_manifest_is_rejected_with_its_line(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "report.html").unlink()
    (broken / "manifest.json").write_text('{\n "model": "x",\n "backend": }\n')
    with pytest.raises(InputError, match=r"manifest\.json:3: invalid JSON"):
        render_run_report(broken)
    assert not (broken / "report.html").exists()


def test_the_default_study_report_stays_under_5_mb(tmp_path: Path) -> None:
    """The real values study (4,144 prompts), with every prompt and probability in the page."""
    from culture_probe.design import build_plan
    from culture_probe.study import load_study

    plan = build_plan(load_study(REPO / "taxonomy" / "values.yaml"))
    run = tmp_path / "values"
    run.mkdir()
    plan.to_parquet(run / "plan.parquet")
    _responses(plan).to_parquet(run / "responses.parquet")
    size = render_run_report(run).stat().st_size
    assert len(plan) > 4000  # every prompt of the default study is in the page
    assert size < 5_000_000, f"report is {size / 1e6:.2f} MB"


# --- in Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(browser: BrowserContext, report: Path) -> Iterator[dict[str, Any]]:
    """The report opened once; records console messages, page errors and every request."""
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 900})
    seen: dict[str, Any] = {"errors": [], "requests": [], "page": page, "url": report.as_uri()}

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            seen["errors"].append(f"{message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on("request", lambda request: seen["requests"].append(request.url))
    page.goto(seen["url"], wait_until="load")
    page.wait_for_selector("html[data-report-ready='1']")
    yield seen
    page.close()


def test_the_report_loads_without_errors_or_requests_and_draws_its_charts(
    loaded: dict[str, Any],
) -> None:
    page = loaded["page"]
    for chart in ("cwi", "shares", "spread", "position", "information", "placebo"):
        assert page.locator(f"#chart-{chart} svg.chart").count() == 1, chart
    assert page.locator("svg.chart-heatmap").count() >= 3  # two items + the position chart
    assert page.locator("svg.chart-distribution").count() == 2  # q1 x (US, JP)
    assert page.locator("svg.chart-range").count() == 1
    assert page.locator("#table-items-table tbody tr").count() == 2
    assert loaded["errors"] == []
    assert loaded["requests"] == [loaded["url"]]


def test_an_item_link_shows_its_prompts_and_probabilities_as_text(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    page.locator("#table-items-table a", has_text="q2").click()
    viewer = page.locator("#prompt-viewer")
    viewer.locator(".prompt-card").first.wait_for()
    assert page.locator("details#prompts").get_attribute("open") is not None
    assert viewer.locator("h3").inner_text() == f"Item {HOSTILE_ITEM}: 12 of 12 prompts"
    first = viewer.locator(".prompt-card").first
    assert (
        first.locator("pre.message").first.inner_text()
        == "Imagine you are a person from United States."
    )
    assert first.locator(".prob-row").count() == 4
    page.fill("#prompt-filter", "reversed japan")
    assert viewer.locator(".prompt-card").count() == 2
    assert HOSTILE_PROXY_NAME in viewer.locator(".prompt-card h4").first.inner_text()
    page.select_option("#prompt-item", "q1")
    page.fill("#prompt-filter", "")
    assert viewer.locator("pre.generated").first.inner_text() == HOSTILE_ANSWER
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert loaded["errors"] == [] and loaded["requests"] == [loaded["url"]]


def test_hostile_strings_show_as_text_everywhere_and_never_run(loaded: dict[str, Any]) -> None:
    page = loaded["page"]
    text = page.locator("body").inner_text()
    for hostile in (HOSTILE_ITEM, HOSTILE_PROXY_NAME, HOSTILE_SEMANTIC, SCRIPT):
        assert hostile in text
    page.locator("details#taxonomy-cells").evaluate("element => { element.open = true; }")
    assert page.locator("#table-coverage-table", has_text=HOSTILE_SEMANTIC).count() == 1
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 3  # the JSON blob, report.js and prompts.js only
    assert page.evaluate("typeof window.__pwned") == "undefined"


def test_the_report_reads_in_a_narrow_window_and_its_screenshot_is_not_blank(
    loaded: dict[str, Any], tmp_path: Path
) -> None:
    page = loaded["page"]
    page.set_viewport_size({"width": 380, "height": 800})
    page.goto(loaded["url"])
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.set_viewport_size({"width": 1100, "height": 900})
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    stats = ImageStat.Stat(Image.open(shot).convert("L"))
    assert stats.stddev[0] > 20  # text and charts, not a blank page
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50
    assert not math.isnan(stats.mean[0])
