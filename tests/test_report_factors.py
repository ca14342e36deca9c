"""The report's N-way section: a chart of every factor's share with intervals, the verdict, a table."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from culture_probe.analysis.cli import analyze_run
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.report.run_report import render_run_report

HOSTILE = '<img src=x onerror="alert(1)">'


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    effects = PlantedEffects(culture=0.15, wording=0.03, interaction=0.02, noise=0.01)
    plan, responses = simulate_study(effects, n_items=3, n_proxies=4, n_paraphrases=3, seed=8)
    plan["separator"] = [HOSTILE if k % 2 else "\n" for k in range(len(plan))]  # a format factor
    directory = tmp_path_factory.mktemp("run")
    plan.to_parquet(directory / "plan.parquet")
    responses.to_parquet(directory / "responses.parquet")
    analyze_run(directory, n_bootstrap=100, n_permutations=19)
    return directory


def test_analyze_run_writes_the_factor_tables(run_dir: Path) -> None:
    stats = pd.read_parquet(run_dir / "stats" / "factor_stats.parquet")
    assert {"separator", "culture x separator", "region", "residual"} <= set(stats["factor"])
    assert (run_dir / "stats" / "factor_summary.parquet").exists()
    assert (run_dir / "stats" / "factor_verdicts.parquet").exists()


def test_report_shows_shares_with_intervals_and_the_verdict(run_dir: Path) -> None:
    html = render_run_report(run_dir).read_text(encoding="utf-8")
    section = html[html.index('id="chart-factors"') - 400 :]
    charts = re.findall(r'<svg[^>]*class="chart chart-forest"[^>]*>.*?</svg>', section, re.S)
    chart = [c for c in charts if "region: share of the answer variance per factor" in c]
    assert len(chart) == 1
    summary = pd.read_parquet(run_dir / "stats" / "factor_summary.parquet")
    assert chart[0].count('class="interval"') == summary["share_low"].notna().sum()
    assert "over all declared factors: region" in section
    assert "table-factors" in section
    assert "<img src=x" not in html  # the hostile separator only ever appears escaped


def test_factor_caption_says_how_the_shares_were_combined(run_dir: Path) -> None:
    """The chart's caption follows the table it draws: pooled over the run's 3 items, with the
    fixed factors named; a one-item summary is described as that item's own shares."""
    from culture_probe.report._factors import factor_caption

    html = render_run_report(run_dir).read_text(encoding="utf-8")
    summary = pd.read_parquet(run_dir / "stats" / "factor_summary.parquet")
    fixed = sorted(summary.loc[summary["effect"] == "fixed", "factor"].unique())
    assert "separator" in fixed  # a format factor, fixed by design
    caption = factor_caption(summary)
    assert "pooled over the 3 items" in caption and "Mean over items" not in caption
    assert f"Fixed by design: {', '.join(summary.loc[summary['effect'] == 'fixed', 'factor'])}" in (
        caption
    )
    assert "pooled over the 3 items" in html
    one_item = summary.assign(n_items=1, effect="random")
    assert "this item's answer variance" in factor_caption(one_item)
    assert "Fixed by design" not in factor_caption(one_item)


def test_factors_under_their_error_are_named_under_the_chart() -> None:
    from culture_probe.report._factors import below_error_note

    rows = pd.DataFrame(
        {
            "factor": ["culture x paraphrase", HOSTILE, "residual"],
            "below_error": [True, True, False],
        }
    )
    text = str(below_error_note(rows))
    assert "Under their error: culture x paraphrase, &lt;img" in text and "<img" not in text
    assert "own mean square alone" in text
    assert below_error_note(rows.assign(below_error=False)) is None
    assert below_error_note(rows.drop(columns="below_error")) is None  # a run analysed before
