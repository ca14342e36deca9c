"""Each statistic of culture_probe.analysis against an independent computation or a worked example."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pandas as pd
import pingouin
import pytest
import statsmodels.formula.api as smf
from scipy import optimize, special, stats
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests

from culture_probe.analysis import AnalysisResult, analyze, tidy_responses
from culture_probe.analysis._anova import (
    block_ranks,
    concordance_interval,
    decompose,
    expected_spearman,
    friedman,
    indices,
    noise_scale_calibration,
    noncentrality_bound,
    paraphrase_bootstrap,
    resampled_concordance,
    rho2_interval,
    robust_noise_variance,
)
from culture_probe.analysis._summary import clustered_mean, two_stage_aggregates
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study

EFFECTS = PlantedEffects(culture=0.1, wording=0.05, interaction=0.04, noise=0.03, position_bias=0.1)


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, AnalysisResult]:
    plan, responses = simulate_study(
        EFFECTS,
        n_items=6,
        n_proxies=5,
        n_paraphrases=4,
        n_orders=2,
        n_seeds=2,
        n_placebos=2,
        baseline=True,
        seed=7,
    )
    tidy = tidy_responses(plan, responses)
    return tidy, analyze(tidy, n_bootstrap=200, n_permutations=199, seed=3)


def _culture(tidy: pd.DataFrame, item: str) -> pd.DataFrame:
    return tidy.loc[(tidy["item_id"] == item) & (tidy["proxy_kind"] == "culture")]


def _item_row(result: AnalysisResult, item: str) -> pd.Series:
    table = result.tables["item_stats"]
    return table.loc[table["item_id"] == item].iloc[0]


def _cell_means(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.groupby(["proxy", "wording"], as_index=False)["score"].mean()


def _two_option_tidy(scores: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """A tidy table of a two-option item whose scores are given per (proxy, wording) cell."""
    records = []
    for (proxy, wording), values in scores.items():
        for replicate, score in enumerate(values):
            records.append(
                {
                    "prompt_id": f"{proxy}-{wording}-{replicate}",
                    "item_id": "Q1",
                    "scale": "ordinal",
                    "n_options": 2,
                    "axis": "region",
                    "proxy": proxy,
                    "proxy_kind": "culture",
                    "wording": wording,
                    "order": ["canonical", "reversed"][replicate],
                    "display_to_canonical": [[0, 1], [1, 0]][replicate],
                    "seed": 0,
                    "probs": [1 - score, score],
                    "option_mass": 1.0,
                    "outcome": "answered",
                }
            )
    frame = pd.DataFrame(records)
    return tidy_responses(
        frame.drop(columns=["probs", "option_mass", "outcome"]),
        frame[["prompt_id", "probs", "option_mass", "outcome"]],
    )


def test_hand_worked_two_by_two_decomposition() -> None:
    # Cells (scaled by 1/20), canonical then reversed order: C1/W1 {1,3}, C1/W2 {3,5}, C2/W1
    # {5,7}, C2/W2 {13,11}. Grand mean 6; proxy means 3, 9 -> SS_C = 2*2*(9+9) = 72; wording
    # means 4, 8 -> SS_P = 2*2*(4+4) = 32; interaction residuals +-1 -> SS_CP = 2*4 = 8; within
    # cells (+-1)^2 -> SS_E = 8. The canonical order's deviations -1, -1, -1, +1 average -1 for
    # C1 and W1, 0 for C2 and W2, -0.5 overall: the proxy x wording x order residuals are +-0.5,
    # so the interaction's error is SS_E' = 8 * 0.25 = 2 on 1 df, MS_E' = 2 = MS_E.
    # MS_C = 72, MS_CP = 8, MS_E = 2, F_C = 9; s2_C = (72-8)/4 = 16, s2_P = (32-8)/4 = 6,
    # s2_CP = (8-2)/2 = 3, s2_E = 2; CWI = 16/9; culture share = 16/27.
    cells = {
        ("C1", "W1"): [1, 3],
        ("C1", "W2"): [3, 5],
        ("C2", "W1"): [5, 7],
        ("C2", "W2"): [13, 11],
    }
    tidy = _two_option_tidy({k: [v / 20 for v in vs] for k, vs in cells.items()})
    row = _item_row(analyze(tidy, n_bootstrap=20, n_permutations=9), "Q1")
    scale = 1 / 400
    assert row["ss_proxy"] == pytest.approx(72 * scale)
    assert row["ss_wording"] == pytest.approx(32 * scale)
    assert row["ss_interaction"] == pytest.approx(8 * scale)
    assert row["ss_residual"] == pytest.approx(8 * scale)
    assert row["ss_error"] == pytest.approx(2 * scale) and row["df_error"] == 1
    assert row["f_interaction"] == pytest.approx(4.0)
    assert row["f_proxy"] == pytest.approx(9.0)
    assert row["p_proxy"] == pytest.approx(stats.f.sf(9.0, 1, 1))
    assert row["var_proxy"] == pytest.approx(16 * scale)
    assert row["var_wording"] == pytest.approx(6 * scale)
    assert row["var_interaction"] == pytest.approx(3 * scale)
    assert row["var_residual"] == pytest.approx(2 * scale)
    assert row["cwi"] == pytest.approx(16 / 9)
    assert row["culture_share"] == pytest.approx(16 / 27)
    # Erho2(1) = 16 / (16 + 3 + 2/2) = 0.8, so one wording suffices for 0.8.
    assert row["rho2_1"] == pytest.approx(0.8)
    assert row["paraphrases_needed_for_0_8"] == 1


def test_sums_of_squares_match_statsmodels_anova(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    tidy, result = study
    for item in ("Q0", "Q3"):
        rows = _culture(tidy, item)
        fit = smf.ols("score ~ C(proxy) * C(wording)", data=rows).fit()
        table = anova_lm(fit, typ=2)
        row = _item_row(result, item)
        assert row["ss_proxy"] == pytest.approx(table.loc["C(proxy)", "sum_sq"])
        assert row["ss_wording"] == pytest.approx(table.loc["C(wording)", "sum_sq"])
        assert row["ss_interaction"] == pytest.approx(table.loc["C(proxy):C(wording)", "sum_sq"])
        assert row["ss_residual"] == pytest.approx(table.loc["Residual", "sum_sq"])
        assert row["df_residual"] == table.loc["Residual", "df"]
        # The mixed-model F for culture uses the interaction mean square, not the residual.
        ms = table["sum_sq"] / table["df"]
        expected_f = ms["C(proxy)"] / ms["C(proxy):C(wording)"]
        assert row["f_proxy"] == pytest.approx(expected_f)
        # The interaction is tested against the residual of cell + proxy x context + wording x
        # context (context: the order x seed of each replicate): the simulated position bias
        # moves every cell alike, and the cell contrasts do not hold it.
        context = rows["order"] + rows["seed"].astype(str)
        additive = smf.ols(
            "score ~ C(proxy):C(wording) + C(proxy):C(context) + C(wording):C(context)",
            data=rows.assign(context=context),
        ).fit()
        assert row["ss_error"] == pytest.approx(additive.ssr)
        assert row["df_error"] == additive.df_resid == 4 * 3 * 3
        f_interaction = ms["C(proxy):C(wording)"] / additive.mse_resid
        assert row["f_interaction"] == pytest.approx(f_interaction)
        df_cp = table.loc["C(proxy):C(wording)", "df"]
        assert row["p_interaction"] == pytest.approx(
            stats.f.sf(f_interaction, df_cp, additive.df_resid)
        )


def test_single_replicate_uses_interaction_as_error_like_an_additive_model() -> None:
    plan, responses = simulate_study(
        EFFECTS, n_items=2, n_proxies=4, n_paraphrases=5, n_orders=1, n_seeds=1, seed=11
    )
    tidy = tidy_responses(plan, responses)
    result = analyze(tidy, n_bootstrap=50, n_permutations=19)
    row = _item_row(result, "Q1")
    fit = smf.ols("score ~ C(proxy) + C(wording)", data=_culture(tidy, "Q1")).fit()
    table = anova_lm(fit, typ=2)
    assert row["n_replicates"] == 1
    assert np.isnan(row["var_residual"]) and np.isnan(row["f_interaction"])
    assert row["ss_interaction"] == pytest.approx(table.loc["Residual", "sum_sq"])
    assert row["f_proxy"] == pytest.approx(table.loc["C(proxy)", "F"])
    assert row["var_interaction"] == pytest.approx(row["ms_interaction"])


def test_two_orders_are_the_replicates_of_a_cell(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    _, result = study
    # 2 orders x 2 seeds per proxy x wording cell.
    assert set(result.tables["item_stats"]["n_replicates"]) == {4}


def test_icc_matches_pingouin(study: tuple[pd.DataFrame, AnalysisResult]) -> None:
    tidy, result = study
    means = _cell_means(_culture(tidy, "Q2"))
    icc = pingouin.intraclass_corr(data=means, targets="proxy", raters="wording", ratings="score")
    expected = icc.set_index("Type").loc["ICC(A,1)", "ICC"]  # ICC(2,1): two-way random, absolute
    assert _item_row(result, "Q2")["icc2_1"] == pytest.approx(expected)


def test_noncentrality_bounds_put_the_right_share_below_the_ratio_by_simulation() -> None:
    # numpy's noncentral chi-square, not scipy's ncf that the bisection reads
    rng = np.random.default_rng(4)
    ratio, df_num, df_den = np.array([3.2, 9.0]), np.array([9.0, 4.0]), np.array([18.0, 44.0])
    for probability in (0.975, 0.025):
        bound = noncentrality_bound(ratio, df_num, df_den, probability)
        assert (bound > 0).all()
        for value, lam, d1, d2 in zip(ratio, bound, df_num, df_den, strict=True):
            draws = (rng.noncentral_chisquare(d1, lam, 400_000) / d1) / (
                rng.chisquare(d2, 400_000) / d2
            )
            assert (draws <= value).mean() == pytest.approx(probability, abs=0.003)
    # a ratio that even lambda = 0 rarely reaches from above: the lower bound is 0
    assert noncentrality_bound(np.array([0.3]), np.array([9.0]), np.array([18.0]), 0.975)[0] == 0


def test_rho2_interval_covers_the_proxies_own_rho2_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    units, proxies, wordings, replicates = 400, 8, 4, 2
    effects = rng.normal(size=(units, proxies, 1))
    cells = (
        effects
        + rng.normal(size=(units, 1, wordings)) * 0.7
        + rng.normal(size=(units, proxies, wordings)) * 0.5
    )
    draws = cells[..., None] + rng.normal(size=(*cells.shape, replicates)) * 0.6
    means = draws.mean(axis=-1)
    within = ((draws - means[..., None]) ** 2).sum(axis=-1)
    parts = decompose(means, within, replicates)
    low, high = rho2_interval(parts, wordings, 0.95)
    s2_proxy = effects[..., 0].var(axis=1, ddof=1)
    truth = s2_proxy / (s2_proxy + 0.5**2 + 0.6**2 / replicates)
    assert 0.92 <= np.mean((low <= truth) & (truth <= high)) <= 0.98
    estimate = indices(parts, replicates, wordings)["rho2_1"]
    assert (low <= estimate + 1e-12).mean() > 0.99 and (estimate <= high + 1e-12).mean() > 0.99


def test_rho2_interval_edges() -> None:
    parts = {
        "ms_proxy": np.array([2.0, 3e-1, 0.0, 3.0]),
        "ms_interaction": np.array([0.0, 1e-31, 0.0, 1.0]),
        "df_proxy": np.array([4.0, 4.0, 4.0, 4.0]),
        "df_interaction": np.array([12.0, 12.0, 12.0, 0.0]),
    }
    low, high = rho2_interval(parts, 4, 0.95)
    # no interaction at all, or only rounding noise: the wordings agree exactly
    assert (low[:2] == 1.0).all() and (high[:2] == 1.0).all()
    assert np.isnan(low[2:]).all() and np.isnan(high[2:]).all()
    # just below the cut-off, with one degree of freedom each, the exact bounds are near 1 too
    near = {"ms_proxy": np.array([0.99e7]), "ms_interaction": np.array([1.0])}
    near |= {"df_proxy": np.array([1.0]), "df_interaction": np.array([1.0])}
    assert rho2_interval(near, 2, 0.95)[0][0] > 0.999


def test_analyze_reports_the_f_based_rho2_interval(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    _, result = study
    table = result.tables["item_stats"]
    parts = {
        c: table[c].to_numpy() for c in ("ms_proxy", "ms_interaction", "df_proxy", "df_interaction")
    }
    low, high = rho2_interval(parts, table["n_wordings"].to_numpy(), 0.95)
    assert table["rho2_1_low"].to_numpy() == pytest.approx(low)
    assert table["rho2_1_high"].to_numpy() == pytest.approx(high)
    assert ((low > 0) & (high < 1)).sum() >= 2


def test_friedman_and_kendall_w_match_pingouin_and_scipy(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    tidy, result = study
    means = _cell_means(_culture(tidy, "Q4"))
    pg = pingouin.friedman(data=means, dv="score", within="proxy", subject="wording")
    wide = means.pivot(index="wording", columns="proxy", values="score")
    chi2, p_value = stats.friedmanchisquare(*[wide[c] for c in wide.columns])
    row = _item_row(result, "Q4")
    assert row["kendall_w"] == pytest.approx(pg["W"].iloc[0])
    assert row["friedman_stat"] == pytest.approx(chi2)
    assert row["friedman_p"] == pytest.approx(p_value)


def _rank_f_bounds(w: float, n_proxies: int, n_wordings: int) -> list[float]:
    """By hand: the lambda at which scipy's noncentral F of the ranks puts 97.5% (2.5%) below
    F = (P - 1) W / (1 - W), theta = lambda / ((C - 1) P), rho = theta / (1 + theta) and
    W = ((P - 1) rho + 1) / P."""
    ratio = (n_wordings - 1) * w / (1 - w)
    d1, d2 = n_proxies - 1, (n_proxies - 1) * (n_wordings - 1)
    bounds = []
    for probability in (0.975, 0.025):
        if stats.f.cdf(ratio, d1, d2) <= probability:
            bounds.append(1 / n_wordings)
            continue
        lam = optimize.brentq(
            lambda x, p=probability: stats.ncf.cdf(ratio, d1, d2, x) - p, 1e-9, 1e4
        )
        theta = lam / (d1 * n_wordings)
        bounds.append(((n_wordings - 1) * theta / (1 + theta) + 1) / n_wordings)
    return bounds


def test_kendall_w_interval_is_the_rank_f_interval_where_the_test_does_not_reject() -> None:
    # pingouin's F form of the Friedman test is the rank ANOVA's F = (P - 1) W / (1 - W)
    means = np.array([[0.1, 0.3, 0.2], [0.2, 0.1, 0.3], [0.3, 0.2, 0.4], [0.4, 0.5, 0.1]])
    long = pd.DataFrame(
        [(c, p, means[c, p]) for c in range(4) for p in range(3)],
        columns=["proxy", "wording", "score"],
    )
    pg = pingouin.friedman(data=long, dv="score", within="proxy", subject="wording", method="f")
    w = float(friedman(*block_ranks(means))["kendall_w"])
    assert float(pg["F"].iloc[0]) == pytest.approx(2 * w / (1 - w))
    assert stats.f.sf(2 * w / (1 - w), 3, 6) > 0.025  # no concordance beyond chance shown
    low, high = concordance_interval(means[None], np.array([w]), 0.95)
    expected = _rank_f_bounds(w, 4, 3)
    assert low[0] == pytest.approx(min(expected[0], w), abs=1e-6)
    assert high[0] == pytest.approx(expected[1], abs=1e-6)


def test_expected_spearman_matches_simulated_wordings() -> None:
    """rho from the closed form against the mean of scipy's Spearman correlation over 20,000
    pairs of simulated wordings of the same proxies."""
    rng = np.random.default_rng(4)
    standard = np.array([0.0, 0.4, 0.5, 1.5, -1.0, 2.5])
    first = standard + rng.standard_normal((20_000, 6))
    second = standard + rng.standard_normal((20_000, 6))
    simulated = np.mean(
        [stats.spearmanr(a, b).statistic for a, b in zip(first, second, strict=True)]
    )
    assert expected_spearman(standard) == pytest.approx(simulated, abs=0.01)
    assert expected_spearman(np.zeros(5)) == pytest.approx(0.0)
    assert expected_spearman(np.arange(5) * 1e3) == pytest.approx(1.0)


def test_kendall_w_interval_reaches_below_one_when_every_wording_agrees() -> None:
    """Three wordings rank five well-separated proxies alike (W = 1); their differences are
    large against the wording noise, but not infinite: the interval holds 1 and reaches below."""
    rng = np.random.default_rng(1)
    means = np.arange(5.0)[:, None] * 0.5 + rng.normal(0, 0.1, (5, 3))
    w = float(friedman(*block_ranks(means))["kendall_w"])
    assert w == 1.0
    low, high = concordance_interval(means[None], np.array([w]), 0.95)
    assert high[0] == 1.0 and 0.8 < low[0] < 1.0
    nan_low, nan_high = concordance_interval(np.zeros((1, 5, 3)), np.array([np.nan]), 0.95)
    assert np.isnan(nan_low[0]) and np.isnan(nan_high[0])


def test_noise_scale_calibration_tends_to_the_median_absolute_deviation_constants() -> None:
    """In a large table the residuals are nearly independent N(0, (1 - 1/C)(1 - 1/P)): the median
    of their absolute values is z sqrt(c2), z the normal 75% point, and its square has the spread
    of a chi-square with 8 z^2 phi(z)^2 C P degrees of freedom (the sample median's asymptotic
    variance 1 / (4 n f^2); the median absolute deviation's 37% efficiency)."""
    n_proxies = n_wordings = 40
    mean_square, df = noise_scale_calibration(n_proxies, n_wordings)
    z = stats.norm.ppf(0.75)
    c2 = (1 - 1 / n_proxies) * (1 - 1 / n_wordings)
    assert mean_square == pytest.approx(z**2 * c2, rel=0.005)
    assert df == pytest.approx(8 * z**2 * stats.norm.pdf(z) ** 2 * n_proxies * n_wordings, rel=0.05)


def test_robust_noise_variance_is_unbiased_with_chi_square_spread_for_normal_noise() -> None:
    """Fresh normal 6 x 4 tables of noise variance 4 (another seed than the calibration's): the
    estimate averages 4 and s2_hat df / 4 has the chi-square's variance 2 df. One cell 5 sd out
    adds 25 s2 (1 - 1/6)(1 - 1/4) to the residual sum of squares (E = 15 s2), doubling it; it
    moves the median far less."""
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 2, (20_000, 6, 4))
    s2, df = robust_noise_variance(_double_centred(noise))
    assert 7 < df < 9.5  # 15 residual degrees of freedom, about half the sum of squares' efficiency
    assert s2.mean() == pytest.approx(4, rel=0.02)
    assert np.var(s2 * df / 4) == pytest.approx(2 * df, rel=0.06)
    far = noise.copy()
    far[:, 2, 1] += 10
    squares = (_double_centred(far) ** 2).sum((1, 2)).mean() / (_double_centred(noise) ** 2).sum(
        (1, 2)
    ).mean()
    assert squares == pytest.approx(1 + 25 * 4 * (5 / 6) * (3 / 4) / 60, rel=0.02)
    assert robust_noise_variance(_double_centred(far))[0].mean() / s2.mean() < 1.6


def test_kendall_w_pivot_falls_back_to_the_residual_mean_square_where_the_median_is_zero() -> None:
    """Five of nine residuals exactly 0: the median absolute residual is 0 although MS_CP is not,
    and the pivot takes MS_CP as the scale instead of reading rho = 1 with certainty."""
    pattern = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    means = pattern * 0.5 + np.array([0.0, 2.0, 4.0])[:, None]
    assert robust_noise_variance(_double_centred(means[None]))[0][0] == 0.0
    w = np.asarray(friedman(*block_ranks(means))["kendall_w"])
    assert w == 1.0
    low, high = concordance_interval(means[None], w[None], 0.95)
    assert high[0] == 1.0 and 0.5 < low[0] < 0.95


def _double_centred(tables: np.ndarray) -> np.ndarray:
    """Proxy x wording residuals of tables of shape (G, C, P)."""
    grand = tables.mean((1, 2))[:, None, None]
    return tables - tables.mean(2, keepdims=True) - tables.mean(1, keepdims=True) + grand


@pytest.mark.parametrize("heavy_tails", [False, True])
def test_kendall_w_interval_covers_with_normal_and_heavy_tailed_noise(heavy_tails: bool) -> None:
    """400 items of 6 proxies x 4 wordings, each cell the mean of 6 responses with noise of sd
    0.05, normal or Student-t(3) (same variance), culture effects of sd 0.05. The truth is the W
    that 4 wordings give on average, ((P - 1) rho + 1) / P with rho the mean Spearman correlation
    over 1,000 fresh wordings. Here the interval covers 94.75% (normal) and 92.5% (t(3)); the
    normal-theory pivot (the residual sum of squares on chi2(15)) covered 91.75% and 87.75%.
    400 items leave a standard error of about
    1.2 points, hence the bounds."""
    assert 0.92 <= concordance_coverage(heavy_tails) <= 0.975


def concordance_coverage(heavy_tails: bool) -> float:
    """The share of the items of :func:`test_kendall_w_interval_covers_with_normal_and_heavy_tailed_noise`
    whose Kendall's W interval holds the truth."""
    rng = np.random.default_rng(5)
    n_items, n_proxies, n_wordings, fresh = 400, 6, 4, 1000
    culture = rng.normal(0, 0.05, (n_items, n_proxies, 1))

    def cells(count: int) -> np.ndarray:
        shape = (n_items, n_proxies, count, 6)
        draws = rng.standard_t(3, shape) / np.sqrt(3) if heavy_tails else rng.normal(size=shape)
        return culture + 0.05 * draws.mean(-1)

    means = cells(n_wordings)
    ranks = stats.rankdata(cells(fresh), axis=1)
    standard = (ranks - ranks.mean(1, keepdims=True)) / np.sqrt(n_proxies * (n_proxies**2 - 1) / 12)
    total = standard.sum(axis=2)
    rho = ((total**2).sum(1) - fresh) / (fresh * (fresh - 1))
    truth = ((n_wordings - 1) * rho + 1) / n_wordings
    w = np.asarray(friedman(*block_ranks(means))["kendall_w"])
    low, high = concordance_interval(means, w, 0.95)
    return float(np.mean((low <= truth) & (truth <= high)))


def test_study_mean_kendall_w_is_the_log_odds_t_interval_over_items(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    """The t half-width over items, on the log-odds scale (docs/statistics.md, "Study-level
    intervals")."""
    _, result = study
    table = result.tables["item_stats"]
    rows = table.loc[table["axis"] == table["axis"].iat[0]].reset_index(drop=True)
    aggregate = two_stage_aggregates(
        rows,
        {"var_proxy": np.zeros((len(rows), 2)), "var_interaction": np.zeros((len(rows), 2))},
        0,
    )
    values = rows["kendall_w"].to_numpy()
    low, high = stats.t.interval(0.95, len(values) - 1, values.mean(), stats.sem(values))
    assert low > 0 and high < 1
    mean = values.mean()
    spread = (high - mean) / (mean * (1 - mean))
    low, high = special.expit(special.logit(mean) + np.array([-spread, spread]))
    assert aggregate["mean_kendall_w"]["estimate"] == pytest.approx(values.mean())
    assert aggregate["mean_kendall_w"]["ci_low"] == pytest.approx(low)
    assert aggregate["mean_kendall_w"]["ci_high"] == pytest.approx(high)


def test_friedman_tie_correction_matches_scipy() -> None:
    # Ties within wordings: W1 ranks C1 = C2 < C3, W2 has C2 = C3.
    cells = {
        ("C1", "W1"): [0.2, 0.2],
        ("C2", "W1"): [0.2, 0.2],
        ("C3", "W1"): [0.6, 0.6],
        ("C1", "W2"): [0.1, 0.1],
        ("C2", "W2"): [0.5, 0.5],
        ("C3", "W2"): [0.5, 0.5],
        ("C1", "W3"): [0.3, 0.3],
        ("C2", "W3"): [0.4, 0.4],
        ("C3", "W3"): [0.9, 0.9],
    }
    row = _item_row(analyze(_two_option_tidy(cells), n_bootstrap=20, n_permutations=9), "Q1")
    chi2, _ = stats.friedmanchisquare([0.2, 0.1, 0.3], [0.2, 0.5, 0.4], [0.6, 0.5, 0.9])
    assert row["friedman_stat"] == pytest.approx(chi2)
    assert row["kendall_w"] == pytest.approx(chi2 / (3 * 2))


def test_resampled_kendall_w_pairs_distinct_wordings_only() -> None:
    rng = np.random.default_rng(4)
    means = rng.normal(size=(1, 6, 5))  # 6 proxies x 5 wordings, no ties
    ranks = block_ranks(means)[0]
    long = pd.DataFrame(
        [(c, p, means[0, c, p]) for c in range(6) for p in range(5)],
        columns=["proxy", "wording", "score"],
    )
    expected_w = pingouin.friedman(data=long, dv="score", within="proxy", subject="wording")["W"]
    identity = np.arange(5)[None, None, :]
    assert resampled_concordance(ranks, identity)[0, 0] == pytest.approx(expected_w.iloc[0])
    # a resample drawing wordings 0 and 3 twice: the 8 pairs of distinct wordings, by hand
    draws = np.array([0, 0, 2, 3, 3])
    pairs = [
        stats.spearmanr(means[0, :, draws[i]], means[0, :, draws[j]]).statistic
        for i, j in itertools.combinations(range(5), 2)
        if draws[i] != draws[j]
    ]
    assert len(pairs) == 8
    expected = (4 * np.mean(pairs) + 1) / 5
    assert resampled_concordance(ranks, draws[None, None, :])[0, 0] == pytest.approx(expected)
    assert np.isnan(resampled_concordance(ranks, np.zeros((1, 1, 5), dtype=int))[0, 0])


def test_resampled_kendall_w_is_centred_on_the_estimate_with_three_wordings() -> None:
    # Pairing a drawn-twice wording with itself used to lift the replicates 0.13 above the estimate.
    rng = np.random.default_rng(0)
    means = rng.normal(size=(150, 10, 1)) + rng.normal(size=(150, 10, 3))
    estimate = friedman(*block_ranks(means))["kendall_w"]
    draws = rng.integers(0, 3, size=(150, 400, 3))
    replicates = paraphrase_bootstrap(means, np.zeros_like(means), 1, draws)["kendall_w"]
    assert abs(np.nanmean(replicates) - estimate.mean()) < 0.01


@pytest.mark.parametrize("scale", ["ordinal", "nominal"])
def test_krippendorff_alpha_matches_the_package(scale: str) -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.15, wording=0.1, interaction=0.1),
        n_items=3,
        n_proxies=8,
        n_paraphrases=5,
        n_orders=3,
        n_options=5,
        scale=scale,
        seed=5,
    )
    tidy = tidy_responses(plan, responses)
    result = analyze(tidy, n_bootstrap=20, n_permutations=9)
    rows = _culture(tidy, "Q1")
    probs = np.stack(rows["probs"].to_numpy())
    frame = rows[["proxy", "wording", "order"]].assign(**{str(k): probs[:, k] for k in range(5)})
    by_wording = frame.groupby(["proxy", "wording"])[[str(k) for k in range(5)]].mean()
    modal = by_wording.to_numpy().argmax(axis=1)
    coders_by_units = pd.Series(modal, index=by_wording.index).unstack("proxy")
    expected = krippendorff.alpha(
        reliability_data=coders_by_units.to_numpy(dtype=float), level_of_measurement=scale
    )
    by_order = frame.groupby(["proxy", "wording", "order"])[[str(k) for k in range(5)]].mean()
    modal_order = pd.Series(by_order.to_numpy().argmax(axis=1), index=by_order.index)
    order_matrix = modal_order.unstack(["proxy", "wording"]).to_numpy(dtype=float)
    expected_order = krippendorff.alpha(reliability_data=order_matrix, level_of_measurement=scale)
    row = _item_row(result, "Q1")
    assert row["alpha_wording"] == pytest.approx(expected)
    assert row["alpha_order"] == pytest.approx(expected_order)


def test_benjamini_hochberg_matches_statsmodels(study: tuple[pd.DataFrame, AnalysisResult]) -> None:
    _, result = study
    table = result.tables["item_stats"]
    expected = multipletests(table["p_proxy"], method="fdr_bh")[1]
    np.testing.assert_allclose(table["p_proxy_bh"], expected)


def test_bootstrap_intervals_bracket_the_estimates(
    study: tuple[pd.DataFrame, AnalysisResult],
) -> None:
    _, result = study
    table = result.tables["item_stats"]
    for name in ("culture_share", "kendall_w", "rho2_1"):
        assert (table[f"{name}_low"] <= table[f"{name}_high"]).all()
        inside = (table[f"{name}_low"] <= table[name] + 1e-9) & (
            table[name] <= table[f"{name}_high"] + 1e-9
        )
        assert inside.mean() >= 0.8
    assert (table["cwi_low"] <= table["cwi_high"]).all()


def test_information_terms_add_up_and_permutation_p_matches_scipy() -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.05, wording=0.05, noise=0.02),
        n_items=1,
        n_proxies=3,
        n_paraphrases=2,
        n_orders=2,
        seed=2,
    )
    tidy = tidy_responses(plan, responses)
    result = analyze(tidy, n_bootstrap=20, n_permutations=4999, seed=1)
    info = result.tables["information"].iloc[0]
    total = info["info_culture"] + info["info_wording"] + info["info_order"] + info["noise"]
    assert total == pytest.approx(info["entropy"], abs=1e-5)
    rows = _culture(tidy, "Q0").sort_values(["wording", "order", "proxy"])
    distributions = np.stack(rows["probs"].to_numpy())
    # One sample per proxy; each holds ids of that proxy's (wording, order) cells in block order,
    # so permutation_type="samples" shuffles proxies within every wording x order block.
    cell_ids = np.arange(len(rows)).reshape(4, 3).T

    def culture_information(*samples: np.ndarray) -> float:
        pooled = [distributions[s].mean(axis=0) for s in samples]
        return float(
            stats.entropy(np.mean(pooled, axis=0), base=2)
            - np.mean([stats.entropy(p, base=2) for p in pooled])
        )

    exact = stats.permutation_test(
        list(cell_ids),
        culture_information,
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="greater",
        vectorized=False,
    )
    assert culture_information(*cell_ids) == pytest.approx(info["info_culture"], abs=1e-5)
    assert info["info_culture_p"] == pytest.approx(exact.pvalue, abs=0.02)
    assert info["info_culture_null"] == pytest.approx(exact.null_distribution.mean(), abs=2e-3)


def test_js_ratio_uses_base_two_distances() -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1, wording=0.05),
        n_items=1,
        n_proxies=3,
        n_paraphrases=3,
        n_orders=1,
        seed=4,
    )
    tidy = tidy_responses(plan, responses)
    info = analyze(tidy, n_bootstrap=10, n_permutations=9).tables["information"].iloc[0]
    rows = _culture(tidy, "Q0")
    dist = {(r.proxy, r.wording): np.asarray(r.probs) for r in rows.itertuples()}
    proxies, wordings = sorted({p for p, _ in dist}), sorted({w for _, w in dist})
    between_proxies = np.mean(
        [
            np.mean(
                [
                    jensenshannon(dist[a, w], dist[b, w], base=2)
                    for a, b in itertools.combinations(proxies, 2)
                ]
            )
            for w in wordings
        ]
    )
    between_wordings = np.mean(
        [
            np.mean(
                [
                    jensenshannon(dist[c, a], dist[c, b], base=2)
                    for a, b in itertools.combinations(wordings, 2)
                ]
            )
            for c in proxies
        ]
    )
    assert info["js_between_proxies"] == pytest.approx(between_proxies, abs=1e-5)
    assert info["js_ratio"] == pytest.approx(between_proxies / between_wordings, rel=1e-4)


def test_cell_flip_rates_and_spreads_by_hand() -> None:
    # Proxy C1 under three wordings, two orders each; two options, score = P(option 1).
    # Modal answers per wording (pooled over orders): W1 {0.2,0.4}->0, W2 {0.7,0.9}->1,
    # W3 {0.6,0.2}->0. Wording pairs disagreeing: (1,2),(2,3) of 3 -> 2/3; majority 2/3 -> 1/3.
    # Per wording the order modal answers: W1 (0,0), W2 (1,1), W3 (1,0) -> flip rate (0+0+1)/3.
    # Wording spread of means 0.3, 0.8, 0.4 -> 0.5; order spread mean(0.2, 0.2, 0.4).
    cells = {
        ("C1", "W1"): [0.2, 0.4],
        ("C1", "W2"): [0.7, 0.9],
        ("C1", "W3"): [0.6, 0.2],
        ("C2", "W1"): [0.5, 0.5],
        ("C2", "W2"): [0.5, 0.5],
        ("C2", "W3"): [0.5, 0.5],
    }
    cell = analyze(_two_option_tidy(cells), n_bootstrap=10, n_permutations=9).tables["cell_stats"]
    c1 = cell.loc[cell["proxy"] == "C1"].iloc[0]
    assert c1["wording_flip_rate"] == pytest.approx(2 / 3)
    assert c1["majority_disagreement"] == pytest.approx(1 / 3)
    assert c1["order_flip_rate"] == pytest.approx(1 / 3)
    assert c1["wording_spread"] == pytest.approx(0.5)
    assert c1["order_spread"] == pytest.approx((0.2 + 0.2 + 0.4) / 3)
    pooled = np.array([1 - 0.5, 0.5])
    assert c1["normalised_entropy"] == pytest.approx(stats.entropy(pooled, base=2))


def test_position_bias_by_hand() -> None:
    # Every response puts 0.7 on whatever option is shown first: position shares 0.7 / 0.3.
    cells = {
        ("C1", "W1"): [0.3, 0.7],
        ("C2", "W1"): [0.3, 0.7],
        ("C1", "W2"): [0.3, 0.7],
        ("C2", "W2"): [0.3, 0.7],
    }
    table = analyze(_two_option_tidy(cells), n_bootstrap=10, n_permutations=9)
    bias = table.tables["position_bias"].sort_values("position")
    np.testing.assert_allclose(bias["choice_share"], [0.7, 0.3])
    assert bias["rstd"].iloc[0] == pytest.approx(np.std([0.7, 0.3]))
    assert bias["kl_from_uniform"].iloc[0] == pytest.approx(
        stats.entropy([0.7, 0.3], [0.5, 0.5], base=2)
    )


def test_clustered_standard_error_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(12), 7)
    values = rng.normal(size=len(clusters)) + rng.normal(size=12)[clusters]
    ours = clustered_mean(values, clusters)
    fit = smf.ols("y ~ 1", data=pd.DataFrame({"y": values})).fit(
        cov_type="cluster", cov_kwds={"groups": clusters, "use_correction": False}
    )
    assert ours["mean"] == pytest.approx(fit.params["Intercept"])
    assert ours["se"] == pytest.approx(fit.bse["Intercept"])


def test_placebo_and_baseline_controls(study: tuple[pd.DataFrame, AnalysisResult]) -> None:
    tidy, result = study
    controls = result.tables["controls"]
    placebo_rows = tidy.loc[(tidy["item_id"] == "Q1") & (tidy["proxy_kind"] == "placebo")]
    fit = smf.ols("score ~ C(proxy) * C(wording)", data=placebo_rows).fit()
    ms = anova_lm(fit, typ=2)
    ms = ms["sum_sq"] / ms["df"]
    q1 = controls.loc[controls["item_id"] == "Q1"].iloc[0]
    assert q1["placebo_f_proxy"] == pytest.approx(ms["C(proxy)"] / ms["C(proxy):C(wording)"])
    baseline = tidy.loc[(tidy["item_id"] == "Q1") & (tidy["proxy_kind"] == "baseline"), "score"]
    assert q1["baseline_mean_score"] == pytest.approx(baseline.mean())
    culture_means = _culture(tidy, "Q1").groupby("proxy")["score"].mean()
    assert q1["culture_shift_from_baseline"] == pytest.approx(
        (culture_means - baseline.mean()).abs().mean()
    )
    assert controls["beats_placebo"].sum() >= 4  # planted culture sd 0.1, placebo sd 0


def test_summary_is_json_and_headline_is_short(study: tuple[pd.DataFrame, AnalysisResult]) -> None:
    import json

    _, result = study
    text = json.dumps(result.summary, allow_nan=False)
    assert "mean_culture_share" in text
    # one sentence per claim of the axis, the details (flips, position, rho2) left to the report
    assert 3 <= len(result.headline) <= 12
    aggregate = result.summary["axes"]["region"]["aggregates"]["mean_culture_share"]
    assert aggregate["ci_low"] <= aggregate["estimate"] <= aggregate["ci_high"]
    counts = result.summary["verdicts"]
    assert sum(counts.values()) == len(result.tables["item_stats"])


def test_bias_corrected_interval_equals_percentiles_when_unbiased_and_shifts_when_biased() -> None:
    from culture_probe.analysis._items import bias_corrected_interval

    replicates = np.linspace(-1, 1, 2001)[None, :]
    low, high = bias_corrected_interval(replicates, np.array([0.0]))
    np.testing.assert_allclose(
        [low[0], high[0]], np.quantile(replicates, [0.025, 0.975]), atol=2e-3
    )
    # Replicates centred below the estimate (z0 > 0) move both bounds up (Efron 1981).
    shifted_low, shifted_high = bias_corrected_interval(replicates, np.array([0.3]))
    assert shifted_low[0] > low[0] and shifted_high[0] > high[0]
    assert shifted_high[0] == pytest.approx(
        np.quantile(replicates, stats.norm.cdf(2 * stats.norm.ppf(0.65) + 1.959964)), abs=2e-3
    )
