"""Option order: the three-factor decomposition, the order verdict, reversal shift, kappa, PriDe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from rich.console import Console
from scipy import special, stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.anova import anova_lm

from culture_probe.analysis import AnalysisResult, analyze, format_terminal_summary, tidy_responses
from culture_probe.analysis._order import cohen_kappa, pride_prior
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study


@pytest.fixture(scope="module")
def three_orders() -> tuple[pd.DataFrame, AnalysisResult]:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1, wording=0.05, interaction=0.03, noise=0.03, position_bias=0.3),
        n_items=3,
        n_proxies=4,
        n_paraphrases=3,
        n_orders=3,
        n_seeds=2,
        seed=1,
    )
    tidy = tidy_responses(plan, responses)
    return tidy, analyze(tidy, n_bootstrap=50, n_permutations=19)


@pytest.fixture(scope="module")
def first_option_model() -> tuple[pd.DataFrame, AnalysisResult]:
    """A model that picks whatever option is shown first, as the embedded 135M model does."""
    plan, responses = simulate_study(
        PlantedEffects(position_bias=1.0),
        n_items=5,
        n_proxies=4,
        n_paraphrases=4,
        n_orders=2,
        n_placebos=2,
        seed=3,
    )
    tidy = tidy_responses(plan, responses)
    return tidy, analyze(tidy, n_bootstrap=50, n_permutations=19)


def _row(result: AnalysisResult, item: str) -> pd.Series:
    table = result.tables["item_stats"]
    return table.loc[table["item_id"] == item].iloc[0]


def test_three_factor_sums_of_squares_match_statsmodels(
    three_orders: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    tidy, result = three_orders
    rows = tidy.loc[(tidy["item_id"] == "Q1") & (tidy["proxy_kind"] == "culture")]
    fit = smf.ols("score ~ C(proxy) * C(wording) * C(order)", data=rows).fit()
    table = anova_lm(fit, typ=2)
    row = _row(result, "Q1")
    terms = {
        "order": "C(order)",
        "proxy_order": "C(proxy):C(order)",
        "wording_order": "C(wording):C(order)",
        "proxy_wording_order": "C(proxy):C(wording):C(order)",
        "seed": "Residual",
    }
    for ours, theirs in terms.items():
        assert row[f"ss_{ours}"] == pytest.approx(table.loc[theirs, "sum_sq"])
    assert (row["n_orders"], row["n_seeds"]) == (3, 2)
    # Components from the expected mean squares of the random model, n = 2 seeds, C = 4, P = 3.
    ms = table["sum_sq"] / table["df"]
    var_order = (
        ms["C(order)"]
        - ms["C(proxy):C(order)"]
        - ms["C(wording):C(order)"]
        + ms["C(proxy):C(wording):C(order)"]
    ) / (2 * 4 * 3)
    assert row["var_order"] == pytest.approx(max(var_order, 0.0))
    var_wording_order = (ms["C(wording):C(order)"] - ms["C(proxy):C(wording):C(order)"]) / (2 * 4)
    assert row["var_wording_order"] == pytest.approx(max(var_wording_order, 0.0))
    assert row["var_seed"] == pytest.approx(ms["Residual"])
    # The order test: MS_O over the order x (proxy x wording cell) mean square.
    error = table.loc[
        ["C(proxy):C(order)", "C(wording):C(order)", "C(proxy):C(wording):C(order)"], "sum_sq"
    ].sum() / (2 * (12 - 1))
    assert row["f_order"] == pytest.approx(ms["C(order)"] / error)
    assert row["p_order"] == pytest.approx(stats.f.sf(ms["C(order)"] / error, 2, 22))


def test_a_model_that_picks_the_first_option_is_order_dominated(
    first_option_model: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    _, result = first_option_model
    table = result.tables["item_stats"]
    # Canonical order: score 0 everywhere; reversed: score 1. Order effects +-0.5 on 1 df give
    # s2_O = 0.5 and nothing else varies.
    np.testing.assert_allclose(table["var_order"], 0.5)
    np.testing.assert_allclose(table["order_share"], 1.0)
    np.testing.assert_allclose(table["residual_share"], 1.0)
    np.testing.assert_allclose(table["reversal_shift"], -1.0)
    np.testing.assert_allclose(table["mean_order_flip_rate"], 1.0)
    # Modal answers 0 (canonical) and 3 (reversed) never agree, and never by chance: kappa 0.
    np.testing.assert_allclose(table["order_kappa"], 0.0)
    assert set(table["verdict"]) == {"order-dominated"}
    positions = result.tables["position_bias"]
    first = positions.loc[positions["position"] == 0]
    np.testing.assert_allclose(first["choice_share"], 1.0)
    np.testing.assert_allclose(first["pride_prior"], 1.0, atol=1e-9)
    np.testing.assert_allclose(first["pride_entropy"], 0.0, atol=1e-6)


def test_headline_says_where_the_variance_goes_and_that_answers_follow_position(
    first_option_model: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    _, result = first_option_model
    text = " ".join(result.headline)
    assert "culture explains 0% [0%, 0%]" in text
    assert "the culture F test is significant in none of the 5 items" in text
    assert (
        "The remaining 100% [100%, 100%] lies within a proxy-by-wording prompt, where order" in text
    )
    assert "order dominates with 100%" in text
    assert "5 order-dominated" in text
    # canonical order: the first option (score 0); reversed: the last (score 1)
    assert "moves the mean answer from 0.00 to 1.00 (+1.00 on the 0-1 scale" in text
    assert "needs at least 6" in text and "p = " not in text  # 5 items: no test can speak
    sentences = [claim.sentence for claim in result.claims]
    assert "The option shown first gets 100% of the probability on average." in sentences
    order = result.summary["axes"]["region"]["order"]
    assert order["reversal_shift"] == pytest.approx(-1.0)
    # Five items all shifted by -1: the exact two-sided signed-rank p-value is 2 / 2^5.
    assert order["reversal_p"] == pytest.approx(2 / 2**5)


def test_reversal_shift_and_its_wilcoxon_test_match_scipy(
    three_orders: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    tidy, result = three_orders
    rows = tidy.loc[(tidy["item_id"] == "Q2") & (tidy["proxy_kind"] == "culture")]
    wide = rows.pivot_table(index=["proxy", "wording", "seed"], columns="order", values="score")
    differences = (wide["canonical"] - wide["reversed"]).to_numpy()
    row = _row(result, "Q2")
    assert row["n_matched_cells"] == len(differences) == 4 * 3 * 2
    assert row["reversal_shift"] == pytest.approx(differences.mean())
    assert row["reversal_shift_sd"] == pytest.approx(differences.std(ddof=1))
    assert row["reversal_p"] == pytest.approx(stats.wilcoxon(differences).pvalue)


def test_order_kappa_matches_scikit_learn(
    three_orders: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    tidy, result = three_orders
    rows = tidy.loc[(tidy["item_id"] == "Q0") & (tidy["proxy_kind"] == "culture")]
    probs = np.stack(rows["probs"].to_numpy())
    frame = rows[["proxy", "wording", "order"]].assign(**{str(k): probs[:, k] for k in range(4)})
    pooled = frame.groupby(["proxy", "wording", "order"])[[str(k) for k in range(4)]].mean()
    modal = pd.Series(pooled.to_numpy().argmax(axis=1), index=pooled.index).unstack("order")
    expected = cohen_kappa_score(modal["canonical"], modal["reversed"])
    assert _row(result, "Q0")["order_kappa"] == pytest.approx(expected)


def test_cohen_kappa_by_hand() -> None:
    # 10 units: agree on 7 (p_o = 0.7); first coder 6 x "a", second 5 x "a":
    # p_e = 0.6 * 0.5 + 0.4 * 0.5 = 0.5, kappa = (0.7 - 0.5) / 0.5 = 0.4.
    first = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    second = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert np.isnan(cohen_kappa(np.zeros(4), np.zeros(4)))


def test_pride_prior_is_the_normalised_geometric_mean_of_position_probabilities() -> None:
    shown = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    geometric = np.exp(np.log(shown).mean(axis=0))
    np.testing.assert_allclose(pride_prior(shown), geometric / geometric.sum())
    np.testing.assert_allclose(pride_prior(shown), special.softmax(np.log(shown).mean(axis=0)))


def test_pride_prior_reads_displayed_positions_not_canonical_options() -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1, position_bias=0.4),
        n_items=1,
        n_proxies=3,
        n_paraphrases=2,
        n_orders=4,
        seed=8,
    )
    tidy = tidy_responses(plan, responses)
    result = analyze(tidy, n_bootstrap=20, n_permutations=9)
    shown = np.stack(
        [
            np.asarray(p)[np.asarray(d)]
            for p, d in zip(tidy["probs"], tidy["display_to_canonical"], strict=True)
        ]
    )
    expected = special.softmax(np.log(shown).mean(axis=0))
    positions = result.tables["position_bias"].sort_values("position")
    np.testing.assert_allclose(positions["pride_prior"], expected)
    assert positions["pride_entropy"].iloc[0] == pytest.approx(stats.entropy(expected, base=2))
    assert expected.argmax() == 0  # the planted bias favours the first position


@pytest.mark.parametrize("axis", ["region", "education"])
def test_terminal_summary_fits_80_columns_without_truncated_headers(
    first_option_model: tuple[pd.DataFrame, AnalysisResult],
    three_orders: tuple[pd.DataFrame, AnalysisResult],
    axis: str,
) -> None:
    for _, result in (first_option_model, three_orders):
        facts = result.summary["axes"]["region"]
        # The widest cells a summary can produce: a long axis, wide intervals, many verdicts.
        wide = {
            **facts,
            "verdicts": {v: 12 for v in facts["verdicts"]},
            "aggregates": {
                **facts["aggregates"],
                "median_cwi": {"estimate": 0.012, "ci_low": 0.0012, "ci_high": 123.0},
            },
        }
        summary = {**result.summary, "axes": {axis: wide, "ethnicity": wide}}
        console = Console(width=80, record=True)
        console.print(format_terminal_summary(AnalysisResult(result.tables, summary, [])))
        text = console.export_text()
        assert "…" not in text
        assert max(len(line) for line in text.splitlines()) <= 80
        header = next(line for line in text.splitlines() if "culture" in line and "CWI" in line)
        for name in ("culture", "wording", "w×c", "order", "CWI", "W", "verdicts"):
            assert name in header.split()
        assert "12 order" in text and "12 none" in text
