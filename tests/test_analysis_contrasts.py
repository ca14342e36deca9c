"""Proxy-versus-baseline contrasts, paired on the paraphrase, Holm-adjusted within items (§3.9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from culture_probe.analysis import AnalysisResult, analyze, tidy_responses
from culture_probe.analysis._contrasts import holm
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, AnalysisResult]:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.12, wording=0.04, noise=0.02),
        n_items=4,
        n_proxies=5,
        n_paraphrases=5,
        n_orders=2,
        baseline=True,
        seed=21,
    )
    tidy = tidy_responses(plan, responses)
    return tidy, analyze(tidy, n_bootstrap=20, n_permutations=19)


def test_contrasts_are_paired_t_tests_on_paraphrases(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    tidy, result = study
    contrasts = result.tables["contrasts"]
    assert set(contrasts["matched_on"]) == {"paraphrase"}
    rows = tidy.loc[tidy["item_id"] == "Q2"]
    baseline = rows.loc[rows["proxy_kind"] == "baseline"].groupby("paraphrase")["score"].mean()
    item = contrasts.loc[contrasts["item_id"] == "Q2"].set_index("proxy")
    p_values = []
    for proxy in sorted(rows.loc[rows["proxy_kind"] == "culture", "proxy"].unique()):
        model = rows.loc[rows["proxy"] == proxy].groupby("paraphrase")["score"].mean()
        test = stats.ttest_rel(model, baseline[model.index])
        differences = model - baseline[model.index]
        assert item.loc[proxy, "n_wordings"] == 5
        assert item.loc[proxy, "mean_difference"] == pytest.approx(differences.mean())
        assert item.loc[proxy, "cohen_dz"] == pytest.approx(differences.mean() / differences.std())
        assert item.loc[proxy, "t"] == pytest.approx(test.statistic)
        assert item.loc[proxy, "p"] == pytest.approx(test.pvalue)
        p_values.append(test.pvalue)
    expected = multipletests(p_values, method="holm")[1]
    np.testing.assert_allclose(item.sort_index()["p_holm"], expected)


def test_significance_needs_the_item_level_culture_test(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    _, result = study
    contrasts = result.tables["contrasts"]
    items = result.tables["item_stats"].set_index("item_id")["p_proxy_bh"]
    np.testing.assert_allclose(contrasts["item_p_proxy_bh"], contrasts["item_id"].map(items))
    expected = (contrasts["item_p_proxy_bh"] < 0.05) & (contrasts["p_holm"] < 0.05)
    assert (contrasts["significant"] == expected).all()
    assert contrasts["significant"].any()  # a planted culture effect of 0.12 moves some proxies
    counts = result.summary["axes"]["region"]["significant_baseline_contrasts"]
    assert counts == {"n_contrasts": 20, "n_significant": int(contrasts["significant"].sum())}


def test_holm_matches_statsmodels_and_keeps_missing_values() -> None:
    p_values = np.array([0.01, 0.04, np.nan, 0.03, 0.2, 0.005])
    present = ~np.isnan(p_values)
    expected = multipletests(p_values[present], method="holm")[1]
    adjusted = holm(p_values)
    np.testing.assert_allclose(adjusted[present], expected)
    assert np.isnan(adjusted[2])


def test_no_baseline_gives_an_empty_table_with_every_column() -> None:
    plan, responses = simulate_study(PlantedEffects(culture=0.1), n_items=1, n_orders=1, seed=2)
    result = analyze(tidy_responses(plan, responses), n_bootstrap=10, n_permutations=9)
    contrasts = result.tables["contrasts"]
    assert contrasts.empty
    assert {"proxy", "p_holm", "significant"} <= set(contrasts.columns)
