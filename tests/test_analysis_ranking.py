"""Rank agreement of the model's proxy means with human country means (robustness.md §3.7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from culture_probe.analysis import AnalysisResult, analyze, tidy_responses
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study

N_OPTIONS = 4


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, pd.DataFrame, AnalysisResult]:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.12, wording=0.04, interaction=0.05),
        n_items=3,
        n_proxies=5,
        n_paraphrases=4,
        n_orders=2,
        seed=12,
    )
    rng = np.random.default_rng(1)
    # People in four of the five proxy countries; C04 has no survey data.
    records = [
        {"item_id": item, "proxy": proxy, "option": option, "share": share}
        for item in ("Q0", "Q1", "Q2")
        for proxy in ("C00", "C01", "C02", "C03")
        for option, share in enumerate(rng.dirichlet(np.ones(N_OPTIONS)))
    ]
    reference = pd.DataFrame(records)
    tidy = tidy_responses(plan, responses)
    return tidy, reference, analyze(tidy, reference, n_bootstrap=20, n_permutations=19)


def _human_means(reference: pd.DataFrame, item: str) -> pd.Series:
    rows = reference.loc[reference["item_id"] == item]
    return (rows["share"] * rows["option"] / (N_OPTIONS - 1)).groupby(rows["proxy"]).sum()


def test_rank_agreement_per_wording_matches_scipy(
    study: tuple[pd.DataFrame, pd.DataFrame, AnalysisResult],
) -> None:
    tidy, reference, result = study
    human = _human_means(reference, "Q1")
    wordings = result.tables["wording_stats"]
    rows = tidy.loc[(tidy["item_id"] == "Q1") & (tidy["proxy"].isin(human.index))]
    for wording, group in rows.groupby("wording"):
        model = group.groupby("proxy")["score"].mean()
        expected_rho = stats.spearmanr(model, human[model.index]).statistic
        expected_tau = stats.kendalltau(model, human[model.index]).statistic
        row = wordings.loc[(wordings["item_id"] == "Q1") & (wordings["wording"] == wording)]
        assert row["n_ranked"].iloc[0] == 4
        assert row["human_spearman"].iloc[0] == pytest.approx(expected_rho)
        assert row["human_kendall"].iloc[0] == pytest.approx(expected_tau)


def test_pooled_rank_agreement_and_its_spread_over_wordings(
    study: tuple[pd.DataFrame, pd.DataFrame, AnalysisResult],
) -> None:
    tidy, reference, result = study
    human = _human_means(reference, "Q2")
    rows = tidy.loc[(tidy["item_id"] == "Q2") & (tidy["proxy"].isin(human.index))]
    model = rows.groupby(["proxy", "wording"])["score"].mean().groupby("proxy").mean()
    rho = stats.spearmanr(model, human[model.index])
    tau = stats.kendalltau(model, human[model.index])
    items = result.tables["item_stats"]
    item = items.loc[items["item_id"] == "Q2"].iloc[0]
    assert item["human_spearman"] == pytest.approx(rho.statistic)
    assert item["human_spearman_p"] == pytest.approx(rho.pvalue)
    assert item["human_kendall"] == pytest.approx(tau.statistic)
    assert item["human_kendall_p"] == pytest.approx(tau.pvalue)
    wordings = result.tables["wording_stats"]
    per_wording = wordings.loc[wordings["item_id"] == "Q2", "human_spearman"]
    assert item["human_spearman_wording_min"] == pytest.approx(per_wording.min())
    assert item["human_spearman_wording_median"] == pytest.approx(per_wording.median())
    assert item["human_spearman_wording_max"] == pytest.approx(per_wording.max())
    summary = result.summary["axes"]["region"]["human_rank_agreement"]
    assert summary["mean_spearman"] == pytest.approx(items["human_spearman"].mean())
    assert summary["wording_spearman_q50"] == pytest.approx(wordings["human_spearman"].median())
    values = items["human_spearman"].dropna()
    expected = (
        f"Spearman's rho of {values.mean():.2f} on average and {values.median():.2f} at the median "
        f"over {len(values)} items (from {values.min():.2f} to {values.max():.2f})"
    )
    assert any(expected in sentence for sentence in result.headline)


def test_no_reference_means_no_rank_columns() -> None:
    plan, responses = simulate_study(PlantedEffects(culture=0.1), n_items=1, n_orders=1, seed=2)
    result = analyze(tidy_responses(plan, responses), n_bootstrap=10, n_permutations=9)
    assert "human_spearman" not in result.tables["item_stats"].columns
    assert result.summary["axes"]["region"]["human_rank_agreement"] is None


def test_two_proxies_are_too_few_to_rank() -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1), n_items=1, n_proxies=2, n_orders=1, seed=2
    )
    reference = pd.DataFrame(
        [
            {"item_id": "Q0", "proxy": p, "option": k, "share": 0.25}
            for p in ("C00", "C01")
            for k in range(N_OPTIONS)
        ]
    )
    result = analyze(tidy_responses(plan, responses), reference, n_bootstrap=10, n_permutations=9)
    assert result.tables["wording_stats"]["human_spearman"].isna().all()
    assert np.isnan(result.tables["item_stats"]["human_spearman"].iloc[0])
