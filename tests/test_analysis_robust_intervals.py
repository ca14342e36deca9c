"""Unequal cells, heavy-tailed errors, an unbounded CWI, pooled study shares, the nominal test
and the wording components' sentences (docs/statistics.md).

Each is checked against statsmodels or scipy, a hand-worked example or an exhaustive reference.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import special, stats
from statsmodels.stats.anova import anova_lm

from culture_probe.analysis import _anova as anova
from culture_probe.analysis._design import balanced_cubes
from culture_probe.analysis._factorial import UnitFit, pooled_shares
from culture_probe.analysis._headline import _wording_claims
from culture_probe.analysis._items import pooled_share_interval
from culture_probe.analysis._nominal import _between, light_margolin_c, permutation_test


def _unequal_rows(rng: np.random.Generator) -> pd.DataFrame:
    """3 proxies x 2 wordings with 2-4 responses a cell."""
    counts = {("A", "w1"): 2, ("A", "w2"): 3, ("B", "w1"): 4, ("B", "w2"): 2}
    counts |= {("C", "w1"): 3, ("C", "w2"): 3}
    records = [
        {"proxy": p, "wording": w, "order": f"o{r}", "seed": 0, "score": rng.normal()}
        for (p, w), n in counts.items()
        for r in range(n)
    ]
    return pd.DataFrame(records).assign(item_id="q", axis="region")


def test_unequal_cells_keep_every_response_in_an_unweighted_means_analysis() -> None:
    """No response is dropped; n is the harmonic mean of the counts; MS_E is the saturated
    model's residual mean square (statsmodels); MS_C and MS_CP are the unweighted-means ones,
    worked by hand from the cell means."""
    rows = _unequal_rows(np.random.default_rng(3))
    design = balanced_cubes(rows)
    assert design.rows_dropped == 0
    (cube,) = design.cubes
    counts = np.array([2, 3, 4, 2, 3, 3])
    harmonic = len(counts) / (1 / counts).sum()
    assert cube.n_replicates == pytest.approx(harmonic)
    parts = anova.decompose(cube.means, cube.within_ss, cube.n_replicates, cube.df_within)
    saturated = anova_lm(smf.ols("score ~ C(proxy) * C(wording)", rows).fit(), typ=1)
    assert parts["df_residual"][0] == saturated.loc["Residual", "df"] == 11
    assert parts["ms_residual"][0] == pytest.approx(saturated.loc["Residual", "mean_sq"])
    cells = rows.groupby(["proxy", "wording"])["score"].mean().unstack().to_numpy()
    proxy_means = cells.mean(axis=1)
    ms_c = harmonic * 2 * ((proxy_means - cells.mean()) ** 2).sum() / 2
    contrast = cells - proxy_means[:, None] - cells.mean(axis=0) + cells.mean()
    ms_cp = harmonic * (contrast**2).sum() / 2
    assert parts["ms_proxy"][0] == pytest.approx(ms_c)
    assert parts["ms_interaction"][0] == pytest.approx(ms_cp)


def test_error_kurtosis_recovers_the_errors_kurtosis_from_cell_residuals() -> None:
    """Laplace errors (excess kurtosis 3) in cells of 2 to 6: the estimate from the residuals
    around the cell means matches scipy's kurtosis of the errors themselves; normal errors
    give about 0."""
    rng = np.random.default_rng(0)
    for n in (2, 3, 6):
        for draw, truth in ((rng.laplace, 3.0), (rng.normal, 0.0)):
            errors = draw(size=(1, 600, 8, n))
            residuals = errors - errors.mean(axis=-1, keepdims=True)
            (gamma,) = _kurtosis(residuals, np.zeros(residuals.shape[:-1], dtype=int))
            reference = max(stats.kurtosis(errors.ravel()), 0.0)
            assert gamma == pytest.approx(reference, abs=0.35), (n, truth)
            if truth == 0.0:  # the sample kurtosis of Laplace errors itself varies by +-0.5
                assert gamma == pytest.approx(truth, abs=0.2), n


def test_effective_degrees_follow_the_kurtosis_formula() -> None:
    """df' = 2 / (2 / df + gamma / N): MS_E and the interaction's error term MS_E' over 6 x 4 x 6 =
    144 responses, MS_CP over its 24 cells with kurtosis (MS_E' / MS_CP)^2 gamma / n (MS_E', not
    the within-cell MS_E with the common context effects in it); gamma = 0 leaves them as they
    are."""
    parts = {
        "ms_proxy": np.array([4.0]),
        "ms_wording": np.array([1.0]),
        "ms_interaction": np.array([0.5]),
        "ms_residual": np.array([0.4]),
        "ms_error": np.array([0.25]),
        "df_proxy": np.array([5.0]),
        "df_wording": np.array([3.0]),
        "df_interaction": np.array([15.0]),
        "df_residual": np.array([120.0]),
        "df_error": np.array([115.0]),
    }
    out = anova.effective_degrees(parts, np.array([5.0]), np.array([6.0]))
    assert out["df_residual"][0] == pytest.approx(2 / (2 / 120 + 5 / 144))
    assert out["df_error"][0] == pytest.approx(2 / (2 / 115 + 5 / 144))
    cell_kurtosis = 0.5**2 * 5 / 6
    assert out["df_interaction"][0] == pytest.approx(2 / (2 / 15 + cell_kurtosis / 24))
    assert out["df_proxy"][0] == 5.0
    same = anova.effective_degrees(parts, np.array([0.0]), np.array([6.0]))
    assert same["df_residual"][0] == 120.0 and same["df_interaction"][0] == 15.0
    assert same["df_error"][0] == 115.0


def _parts(rng: np.random.Generator, units: int, sd_wording: float) -> dict[str, np.ndarray]:
    proxies, wordings, replicates = 6, 4, 6
    culture = rng.normal(size=(units, proxies, 1)) * 0.3
    wording = rng.normal(size=(units, 1, wordings)) * sd_wording
    answers = (culture + wording)[..., None] + rng.normal(
        size=(units, proxies, wordings, replicates)
    ) * 0.2
    means = answers.mean(axis=-1)
    within = ((answers - means[..., None]) ** 2).sum(axis=-1)
    return anova.item_statistics(means, within, replicates)


def test_cwi_upper_bound_is_unbounded_where_no_wording_variance_is_not_rejected() -> None:
    """The bound is infinite exactly where scipy's F test of (SS_P + SS_CP) / (df_P + df_CP)
    over MS_E does not reject at 2.5% (or the draws reach inf): with no wording variance at all
    that holds the infinite truth on at least 97% of 500 units (it was 78%)."""
    parts = _parts(np.random.default_rng(1), 500, 0.0)
    _, high = anova.cwi_interval(parts, 6, 0.95)
    assert np.isposinf(high).mean() >= 0.97
    ratio = (parts["ss_wording"] + parts["ss_interaction"]) / 18 / parts["ms_residual"]
    not_rejected = stats.f.sf(ratio, 18, parts["df_residual"]) >= 0.025
    assert np.all(np.isposinf(high[not_rejected]))
    _, bounded = anova.cwi_interval(_parts(np.random.default_rng(2), 200, 0.3), 6, 0.95)
    assert np.isfinite(bounded).mean() > 0.9


def _fit(variances: list[float], region_draws: list[float], totals: list[float]) -> UnitFit:
    """An item with a region factor and a residual, its components and their pivotal draws."""
    table = pd.DataFrame({"factor": ["region", "residual"], "var": variances})
    draws = np.column_stack([region_draws, np.zeros(len(region_draws))])
    return UnitFit(
        table,
        ["region", "residual"],
        ["proxy", "residual"],
        ["random", "random"],
        draws,
        draws,
        pd.DataFrame(),
        draws,
        np.array(totals),
    )


def test_pooled_share_sums_components_before_dividing_worked_by_hand() -> None:
    """Item 1: region 1 of a total 2 (share 0.5); item 2: 1.5 of 6 (0.25). Pooled: (1 + 1.5) /
    (2 + 6) = 0.3125, where the mean of the shares is 0.375. Draw b is (x_1b + x_2b) / (t_1b +
    t_2b): (1 + 1) / (2 + 4) = 1/3, (2 + 0.5) / (3 + 2) = 0.5, (0 + 3) / (1 + 6) = 3/7; the bounds
    are their percentiles, and the residual's draws what region leaves. With two items the ratio
    estimator's t interval (t(0.975, 1) = 12.7) spans [0, 1]."""
    fits = [
        _fit([1.0, 1.0], [1.0, 2.0, 0.0], [2, 3, 1]),
        _fit([1.5, 4.5], [1.0, 0.5, 3.0], [4, 2, 6]),
    ]
    point = np.array([[0.5, 0.5], [0.25, 0.75]])
    share, low, high, draws = pooled_shares(fits, {"region": 0, "residual": 1}, point)
    assert share[0] == pytest.approx(2.5 / 8)
    np.testing.assert_allclose(draws[:, 0], [1 / 3, 0.5, 3 / 7])
    np.testing.assert_allclose(draws[:, 1], [2 / 3, 0.5, 4 / 7])
    assert (low[0], high[0]) == (0.0, 1.0)


def test_pooled_share_is_the_ratio_estimator_worked_by_hand() -> None:
    """Components (0.2, 0.5, 0.2) over totals (1, 1, 2): R = 0.9 / 4 = 0.225; residuals d =
    (-0.025, 0.275, -0.25), leverages t / sum(t) = (0.25, 0.25, 0.5), d / (1 - h) = (-0.033333,
    0.366667, -0.5), SE = sqrt(0.385556) / 4 = 0.155233, t(0.975, 2) = 4.302653: [0.225 -
    0.667912, 0.225 + 0.667913], clipped to [0, 1]. A term proportional to the totals has no
    spread."""
    components = np.array([[0.2, 1.0], [0.5, 1.0], [0.2, 2.0]])
    share, low, high = pooled_share_interval(components, np.array([1.0, 1.0, 2.0]))
    assert share[0] == pytest.approx(0.225)
    assert low[0] == 0.0
    assert high[0] == pytest.approx(0.225 + 4.302653 * 0.155233, abs=1e-5)
    assert (share[1], low[1], high[1]) == pytest.approx((1.0, 1.0, 1.0))


def test_pooled_share_standard_error_is_statsmodels_hc3_of_the_ratio_regression() -> None:
    """The ratio R = sum(x) / sum(t) is the weighted least-squares slope of x on t through the
    origin with weights 1 / t, and its standard error is that regression's HC3 one
    (statsmodels); R +- t(0.975, I - 1) SE lies inside (0, 1), so the interval is taken on the
    logit scale."""
    rng = np.random.default_rng(8)
    totals = rng.uniform(0.5, 2.0, 6)
    components = 0.1 * totals + rng.normal(0, 0.08, 6)
    fit = sm.WLS(components, totals[:, None], weights=1 / totals).fit(cov_type="HC3")
    share, low, high = pooled_share_interval(components[:, None], totals)
    assert share[0] == pytest.approx(fit.params[0])
    ratio = fit.params[0]
    half = stats.t.ppf(0.975, 5) * fit.bse[0]
    assert ratio - half > 0
    assert ratio + half < 1
    spread = half / (ratio * (1 - ratio))
    expected = special.expit(special.logit(ratio) + np.array([-spread, spread]))
    assert (low[0], high[0]) == pytest.approx(tuple(expected))


def test_pooled_share_clear_of_both_ends_takes_the_logit_scale_worked_by_hand() -> None:
    """Components (0.3, 0.5, 0.4) over totals (1, 1, 1): R = 0.4, d = (-0.1, 0.1, 0), leverages
    1 / 3, d / (1 - h) = (-0.15, 0.15, 0), SE = sqrt(0.045) / 3 = 0.070711, half = t(0.975, 2) SE
    = 0.304243: R +- half = [0.0958, 0.7042] lies inside (0, 1), so the interval is
    expit(logit(0.4) +- 0.304243 / (0.4 * 0.6)) = expit(-0.405465 +- 1.267681) = [0.158005,
    0.703123]; scipy's expit maps it back."""
    components = np.array([[0.3], [0.5], [0.4]])
    share, low, high = pooled_share_interval(components, np.ones(3))
    assert share[0] == pytest.approx(0.4)
    half = stats.t.ppf(0.975, 2) * np.sqrt(0.045) / 3
    centre, spread = special.logit(0.4), half / 0.24
    assert low[0] == pytest.approx(special.expit(centre - spread))
    assert high[0] == pytest.approx(special.expit(centre + spread))
    assert (low[0], high[0]) == pytest.approx((0.158005, 0.703123), abs=1e-6)


def test_light_margolin_c_is_pearson_chi_square_scaled_for_two_options() -> None:
    """With two options C = (n - 1) / n X^2, X^2 Pearson's chi-square of the groups x options
    table (scipy), and its df (I - 1)(K - 1)."""
    rng = np.random.default_rng(4)
    groups = rng.integers(0, 4, 200)
    answers = np.eye(2)[(rng.random(200) < 0.3 + 0.1 * groups).astype(int)]
    c_value, df, p_value = light_margolin_c(answers, groups)
    table = np.zeros((4, 2))
    np.add.at(table, (groups, answers.argmax(axis=1)), 1)
    pearson, _, pearson_df, _ = stats.chi2_contingency(table, correction=False)
    assert c_value == pytest.approx(199 / 200 * pearson)
    assert df == pearson_df == 3
    assert p_value == pytest.approx(stats.chi2.sf(c_value, 3))


def test_permutation_p_matches_the_exhaustive_permutation_reference() -> None:
    """Three proxies in each of three wordings: all (3!)^3 = 216 relabellings within wordings
    give the exact p-value, which the 999 sampled permutations reach within 0.04."""
    rng = np.random.default_rng(5)
    strata = np.repeat(np.arange(3), 3)
    groups = np.tile(np.arange(3), 3)
    answers = rng.dirichlet(np.ones(3), size=9) + np.eye(3)[groups] * 0.4
    observed = _between(answers, groups[None, :], 3)[0]
    arrangements = []
    for perms in itertools.product(itertools.permutations(range(3)), repeat=3):
        arrangements.append(np.concatenate([np.array(p) for p in perms]))
    exact = np.mean(_between(answers, np.array(arrangements), 3) >= observed - 1e-12)
    sampled = permutation_test(answers, groups, strata, np.random.default_rng(6))
    assert sampled == pytest.approx(exact, abs=0.04)
    assert 0 < exact < 0.5


def test_permutation_test_holds_its_level_and_is_mute_where_it_cannot_reach_it() -> None:
    """400 null items of 6 proxies x 4 wordings: at most 7% reject at 0.05 (binomial sd 1.1
    points); two proxies in two wordings allow 4 arrangements, so no p-value."""
    rng = np.random.default_rng(7)
    strata, groups = np.repeat(np.arange(4), 6), np.tile(np.arange(6), 4)
    p_values = [
        permutation_test(rng.dirichlet(np.ones(4), 24), groups, strata, rng) for _ in range(400)
    ]
    assert np.mean(np.array(p_values) < 0.05) <= 0.07
    tiny = permutation_test(
        rng.dirichlet(np.ones(3), 4), np.tile([0, 1], 2), np.repeat([0, 1], 2), rng
    )
    assert np.isnan(tiny)


def _facts(estimate: float, high: float, significant: int) -> dict[str, object]:
    zero = {"estimate": 0.02, "ci_low": 0.01, "ci_high": 0.03}
    return {
        "n_items": 5,
        "n_wording_significant": 3,
        "n_contrast_significant": significant,
        "aggregates": {
            "mean_wording_share": zero,
            "mean_wording_contrast_share": {"estimate": estimate, "ci_low": 0.0, "ci_high": high},
        },
    }


def test_a_wording_component_at_zero_is_said_in_words_with_its_test() -> None:
    """Never "0% [0%, 0%]": a component at 0 is not distinguishable from zero, with its upper
    bound where that is above 0 and its F test's count; a tiny one keeps its digits."""
    sentences = {c.key: c.sentence for c in _wording_claims("region", _facts(0.0, 0.0, 2))}
    contrast = sentences["region:wording_contrast_share"]
    assert "0%" not in contrast
    assert "not distinguishable from zero" in contrast
    assert "significant after Benjamini-Hochberg in 2 of 5 items" in contrast
    assert sentences["region:wording_share"].startswith(
        "In the same model the wording level explains 2% [1%, 3%]; its F test"
    )
    (_, bounded) = _wording_claims("region", _facts(0.0, 0.04, 0))
    assert "not distinguishable from zero (upper bound 4%)" in bounded.sentence
    assert "none of the 5 items" in bounded.sentence
    (_, tiny) = _wording_claims("region", _facts(0.00008, 0.0002, 2))
    assert "explain 0.0080% [0%, 0.020%]" in tiny.sentence


def _kurtosis(residuals: np.ndarray, units: np.ndarray) -> np.ndarray:
    """error_kurtosis of cells whose responses lie along the last axis."""
    counts = np.full(residuals.shape[:-1], residuals.shape[-1])
    return anova.error_kurtosis(
        (residuals**2).sum(-1).ravel(),
        (residuals**4).sum(-1).ravel(),
        counts.ravel(),
        units.ravel(),
    )


def test_error_kurtosis_is_at_least_the_study_pool_weighing_responses_not_noise() -> None:
    """Two items with Laplace errors (excess kurtosis 3), one 100 times noisier, and one with
    normal errors: the pool does not depend on the scales; the normal item takes the pool, a
    Laplace item its own estimate where that is larger; an item without variation adds nothing."""
    rng = np.random.default_rng(1)
    errors = np.concatenate([rng.laplace(size=(2, 300, 4)), rng.normal(size=(1, 300, 4))])
    residuals = errors - errors.mean(axis=-1, keepdims=True)
    units = np.repeat([[0], [1], [2]], 300, axis=1)
    gamma = _kurtosis(residuals, units)
    alone = [_kurtosis(residuals[k : k + 1], np.zeros((1, 300), dtype=int))[0] for k in range(3)]
    scaled = residuals * np.array([1.0, 100.0, 0.01])[:, None, None]
    assert _kurtosis(scaled, units) == pytest.approx(gamma, rel=1e-12)
    # the pool by hand: each unit's fourth-power sum over its own s2 squared, less 3 sum c2, over
    # the sum of c4; cells of n = 4 give c2 = 4 (3/4)^2 and c4 = 4 ((3/4)^4 + 3/4^4)
    s2 = (residuals**2).sum(axis=(1, 2)) / (300 * 3)
    excess = (residuals**4).sum(axis=(1, 2)) / s2**2 - 3 * 300 * 4 * 0.75**2
    pool = excess.sum() / (3 * 300 * 4 * (0.75**4 + 3 / 4**4))
    assert gamma[2] == pytest.approx(pool, rel=1e-12) and alone[2] < pool
    assert gamma[:2] == pytest.approx(np.maximum(alone[:2], pool), rel=1e-12)
    assert 1.5 < pool < 2.5  # two of three items with kurtosis 3
    silent = np.concatenate([residuals, np.zeros((1, 300, 4))])
    with_silent = _kurtosis(silent, np.repeat([[0], [1], [2], [3]], 300, axis=1))
    assert with_silent[:3] == pytest.approx(gamma, rel=1e-12) and with_silent[3] == pytest.approx(
        pool
    )
