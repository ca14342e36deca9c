"""Statistics shown honestly: intervals hold their estimates, unreachable targets read as such,
chart axes stay readable."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from culture_probe.analysis import analyze, tidy_responses
from culture_probe.analysis._headline import headline_claims
from culture_probe.analysis._items import bias_corrected_interval, interval_extended
from culture_probe.analysis._summary import two_stage_aggregates
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.report.svg import forest_plot, tick_labels

INTERVALS = ("cwi", "culture_share", "kendall_w", "rho2_1")


@pytest.fixture(scope="module")
def no_culture() -> dict[str, object]:
    """Two items, three wordings, no culture effect: the case that showed 0.00 [0.37, 0.78]."""
    effects = PlantedEffects(culture=0.0, wording=0.08, interaction=0.06, noise=0.01)
    plan, responses = simulate_study(effects, n_items=2, n_proxies=4, n_paraphrases=3, seed=11)
    result = analyze(tidy_responses(plan, responses), n_bootstrap=300, n_permutations=19)
    return {"result": result, "json": json.loads(json.dumps(result.summary, allow_nan=False))}


def test_every_item_interval_holds_its_estimate(no_culture: dict[str, object]) -> None:
    table = no_culture["result"].tables["item_stats"]  # type: ignore[attr-defined]
    for name in INTERVALS:
        present = table[name].notna() & np.isfinite(table[name])
        rows = table.loc[present]
        assert (rows[f"{name}_low"] <= rows[name] + 1e-12).all(), name
        assert (rows[name] <= rows[f"{name}_high"] + 1e-12).all(), name
    assert "intervals_extended" in table.columns


def test_every_study_interval_holds_its_estimate(no_culture: dict[str, object]) -> None:
    aggregates = no_culture["json"]["axes"]["region"]["aggregates"]  # type: ignore[index]
    for name, values in aggregates.items():
        if values["estimate"] is None or values["ci_low"] is None:
            continue
        assert values["ci_low"] <= values["estimate"] <= values["ci_high"], name
        assert isinstance(values["interval_extended"], bool)


def test_unreachable_reliability_target_reads_as_unreachable(
    no_culture: dict[str, object],
) -> None:
    axis = no_culture["json"]["axes"]["region"]  # type: ignore[index]
    assert axis["median_paraphrases_needed_for_0_8"] is None
    assert axis["median_paraphrases_needed_for_0_8_reachable"] is False
    assert "unreachable" in axis["median_paraphrases_needed_for_0_8_note"]
    table = no_culture["result"].tables["item_stats"]  # type: ignore[attr-defined]
    reachable = table["paraphrases_reachable"].astype(bool)
    assert not reachable.all()  # the median of a number and "never" is "never"
    assert table.loc[~reachable, "paraphrases_needed_for_0_8"].isna().all()
    assert table.loc[reachable, "paraphrases_needed_for_0_8"].le(100).all()


def test_reachable_target_keeps_its_number() -> None:
    effects = PlantedEffects(culture=0.2, wording=0.02, interaction=0.02, noise=0.01)
    plan, responses = simulate_study(effects, n_items=3, n_proxies=5, n_paraphrases=4, seed=2)
    result = analyze(tidy_responses(plan, responses), n_bootstrap=100, n_permutations=19)
    axis = result.summary["axes"]["region"]
    assert axis["median_paraphrases_needed_for_0_8_reachable"] is True
    assert 1 <= axis["median_paraphrases_needed_for_0_8"] <= 100


def test_estimate_beside_all_resamples_widens_and_is_flagged() -> None:
    replicates = np.linspace(0.37, 0.78, 400)[None, :]
    low, high = bias_corrected_interval(replicates, np.array([0.0]))
    assert low[0] == 0.0 and high[0] >= 0.37
    assert interval_extended(replicates, np.array([0.0])).tolist() == [True]
    assert interval_extended(replicates, np.array([0.5])).tolist() == [False]
    table = pd.DataFrame({"var_proxy": [0.0, 0.0], "var_interaction": [0.1, 0.1], "rho2_1": 0.0})
    reps = {
        "var_proxy": np.full((2, 50), 0.2),
        "var_interaction": np.full((2, 50), 0.1),
        "rho2_1": np.linspace(0.37, 0.78, 100).reshape(2, 50),
    }
    for column in ("culture_share", "wording_share", "wording_contrast_share", "residual_share",
                   "order_share", "cwi", "kendall_w"):  # fmt: skip
        table[column] = np.nan
    aggregate = two_stage_aggregates(table, reps, seed=0)["mean_rho2_1"]
    assert aggregate["estimate"] == 0.0 and aggregate["ci_low"] == 0.0
    assert aggregate["interval_extended"] is True


def test_headline_says_when_an_interval_was_widened() -> None:
    widened = {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.78, "interval_extended": True}
    plain = {"estimate": 0.5, "ci_low": 0.4, "ci_high": 0.6, "interval_extended": False}
    aggregates = {
        "mean_culture_share": plain,
        "mean_wording_share": plain,
        "mean_wording_contrast_share": plain,
        "mean_kendall_w": plain,
        "mean_rho2_1": widened,
    }
    facts = {
        "aggregates": aggregates,
        "n_items": 2,
        "verdicts": dict.fromkeys(
            [
                "culture-dominant",
                "wording-dominated",
                "order-dominated",
                "mixed",
                "no culture effect",
            ],
            1,
        ),
        "wording_flip_rate": {"mean": None},
        "order_flip_rate": {"mean": None},
    }
    text = " ".join(claim.sentence for claim in headline_claims({"axes": {"region": facts}}, {}))
    assert "rho2(1) of 0.00 [0.00, 0.78] (widened to reach the estimate" in text
    assert "Kendall's W of 0.50 [0.40, 0.60]" in text


def test_kendall_w_interval_holds_its_estimate_with_three_wordings() -> None:
    effects = PlantedEffects(culture=0.05, wording=0.05, interaction=0.08, noise=0.0)
    plan, responses = simulate_study(effects, n_items=12, n_proxies=5, n_paraphrases=3, seed=5)
    table = analyze(tidy_responses(plan, responses), n_bootstrap=200, n_permutations=19).tables[
        "item_stats"
    ]
    rows = table.loc[table["kendall_w"].notna()]
    assert len(rows) == 12
    assert (rows["kendall_w_low"] <= rows["kendall_w"]).all()
    assert (rows["kendall_w"] <= rows["kendall_w_high"]).all()


def _axis_labels(chart: str) -> list[str]:
    axis = re.search(r'<g class="axis">(.*?)</g>', chart, re.S)
    assert axis is not None
    return re.findall(r"<text[^>]*>([^<]*)</text>", axis.group(1))


def test_placebo_scale_ticks_are_distinct() -> None:
    chart = forest_plot(
        ["q1", "q2"],
        [0.00012, -0.00005],
        [0.00002, -0.0002],
        [0.0003, 0.0001],
        title="Culture variance minus placebo variance",
        reference=0.0,
        value_format="{:.3f}",
    )
    labels = _axis_labels(str(chart))
    assert len(labels) >= 3 and len(set(labels)) == len(labels)
    assert labels.count("0.000") <= 1
    assert tick_labels([0.0, 0.25, 0.5], "{:.0%}") == ["0%", "25%", "50%"]
