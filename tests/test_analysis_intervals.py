"""Fixed factors, F-consistent reliability and culture-share intervals, study-level intervals.

Each estimator is checked against statsmodels' ``anova_lm`` mean squares through hand-worked
expected mean squares, or against scipy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import special, stats
from statsmodels.stats.anova import anova_lm

from culture_probe.analysis import _anova as anova
from culture_probe.analysis import analyze, tidy_responses
from culture_probe.analysis._anova import culture_share_interval, item_statistics
from culture_probe.analysis._factorial import (
    Term,
    factor_tables,
    fit_balanced,
    restricted_contributions,
    unit_decomposition,
    unit_terms,
    with_design_columns,
)
from culture_probe.analysis._items import item_mean_interval
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study


def _grid(levels: dict[str, int]) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([range(n) for n in levels.values()], names=list(levels))
    return index.to_frame(index=False)


def _one_item(score: np.ndarray, **columns: object) -> pd.DataFrame:
    """The tidy rows of one item on the region axis, seed 0: ``score`` and the design ``columns``
    (a constant or one value per row)."""
    base = {"item_id": "q", "axis": "region", "proxy_kind": "culture", "seed": 0}
    return pd.DataFrame({**base, **columns, "score": score})


def _mean_squares(formula: str, frame: pd.DataFrame) -> pd.Series:
    return anova_lm(smf.ols(formula, frame).fit(), typ=1)["mean_sq"]


def test_fixed_factor_share_is_hays_omega_squared() -> None:
    """One proxy, two option orders, 12 responses each: the order's share is Hays's omega^2,
    (SS_O - df_O MS_E) / (SS_T + MS_E), and its variance sum(alpha^2) / 2."""
    rng = np.random.default_rng(0)
    order = np.repeat([0, 1], 12)
    rows = pd.DataFrame(
        {
            "item_id": "q",
            "axis": "region",
            "proxy": "US",
            "order": np.array(["canonical", "reversed"])[order],
            "score": np.array([0.6, 0.4])[order] + 0.05 * rng.normal(size=24),
        }
    )
    fitted = unit_decomposition(with_design_columns(rows), "q", "region", 400, rng)
    assert fitted is not None
    table = fitted.table.set_index("factor")
    assert table.loc["order", "effect"] == "fixed"
    anova = anova_lm(smf.ols("score ~ C(order)", rows).fit(), typ=1)
    ss_order, ms_error = anova.loc["C(order)", "sum_sq"], anova.loc["Residual", "mean_sq"]
    omega2 = (ss_order - ms_error) / (anova["sum_sq"].sum() + ms_error)
    assert table.loc["order", "share"] == pytest.approx(omega2, rel=1e-9)
    assert table.loc["order", "var"] == pytest.approx((ss_order - ms_error) / 24, rel=1e-9)
    assert table.loc["order", "share_low"] <= omega2 <= table.loc["order", "share_high"]
    # a 0.1 shift against noise of 0.05 is well determined: no [2%, 99.8%] interval
    assert table.loc["order", "share_high"] - table.loc["order", "share_low"] < 0.3


def test_fixed_interaction_stays_out_of_its_margins() -> None:
    """paraphrase (random) x enumerator x order (fixed), one response per cell, the restricted
    mixed model: E[MS_E] = s2 + 2 s2_PE + 8 theta_E holds no enumerator x order part, E[MS_EO] =
    s2 + 4 theta_EO, and E[MS_P] = s2 + 6 s2_P holds no paraphrase x enumerator or x order part."""
    rng = np.random.default_rng(2)
    g = _grid({"p": 4, "e": 3, "o": 2})
    interaction = rng.normal(size=(3, 2))
    interaction -= interaction.mean(0) + interaction.mean(1)[:, None] - interaction.mean()
    score = 0.3 * interaction[g["e"], g["o"]] + 0.05 * rng.normal(size=len(g))
    frame = g.assign(score=score)
    sets = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    names = ["paraphrase", "enumerator", "order"]
    terms = [Term(" x ".join(names[i] for i in t), tuple(names[i] for i in t), "") for t in sets]
    fit = fit_balanced(score, g.to_numpy(), sets, restricted_contributions(terms))
    ms = _mean_squares("score ~ C(p) + C(e) + C(o) + C(p):C(e) + C(p):C(o) + C(e):C(o)", frame)
    assert fit.raw[1] == pytest.approx((ms["C(e)"] - ms["C(p):C(e)"]) / 8, rel=1e-9)
    assert fit.raw[2] == pytest.approx((ms["C(o)"] - ms["C(p):C(o)"]) / 12, rel=1e-9)
    assert fit.raw[5] == pytest.approx((ms["C(e):C(o)"] - ms["Residual"]) / 4, rel=1e-9)
    assert fit.raw[0] == pytest.approx((ms["C(p)"] - ms["Residual"]) / 6, rel=1e-9)
    # as a random effect the interaction would be subtracted from its margins as well
    random = fit_balanced(score, g.to_numpy(), sets)
    assert random.raw[1] == pytest.approx(fit.raw[1] - fit.raw[5] * 4 / 8, rel=1e-9)
    assert random.raw[1] < -0.01


def test_context_interactions_are_terms_and_a_large_residual_is_flagged() -> None:
    rng = np.random.default_rng(4)
    g = _grid({"c": 3, "p": 3, "e": 2, "o": 2, "r": 2})
    rows = pd.DataFrame(
        {
            "item_id": "q",
            "axis": "region",
            "proxy_kind": "culture",
            "proxy": "C" + g["c"].astype(str),
            "paraphrase": "p" + g["p"].astype(str),
            "enumerator": "e" + g["e"].astype(str),
            "order": "o" + g["o"].astype(str),
            "score": rng.normal(size=len(g)),  # noise only
        }
    )
    frame = with_design_columns(rows)
    terms = {t.name: t for t in unit_terms(frame, "region")}
    assert terms["enumerator x order"].kind == "context interaction"
    assert terms["enumerator x order"].effect == "fixed"
    assert terms["paraphrase x order"].effect == "random"
    assert terms["culture x order"].effect == "random"
    tidy = rows.assign(seed=0, score=rows["score"])
    _stats, verdicts, _summary, _levels = factor_tables(tidy, {"q": 0}, 200, 0)
    assert bool(verdicts["residual_largest"].iat[0])
    assert verdicts["residual_share_low"].iat[0] <= verdicts["residual_share"].iat[0]


def _two_way(order_shift: float, seed: int = 6) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """5 proxies x 4 wordings x 2 orders; the order moves every culture's answer alike."""
    rng = np.random.default_rng(seed)
    g = _grid({"c": 5, "w": 4, "o": 2})
    score = (
        0.1 * rng.normal(size=5)[g["c"]]
        + 0.05 * rng.normal(size=(5, 4))[g["c"], g["w"]]
        + np.array([order_shift, -order_shift])[g["o"]]
        + 0.03 * rng.normal(size=len(g))
    )
    frame = g.assign(score=score)
    cells = score.reshape(5, 4, 2)
    means = cells.mean(-1)
    within = ((cells - means[..., None]) ** 2).sum(-1)
    return item_statistics(means[None], within[None], 2), frame


def test_reliability_reads_the_culture_f_test() -> None:
    parts, frame = _two_way(order_shift=0.0)
    ms = _mean_squares("score ~ C(c) * C(w)", frame)
    f = ms["C(c)"] / ms["C(c):C(w)"]
    assert parts["f_proxy"][0] == pytest.approx(f, rel=1e-9)
    assert parts["rho2_1"][0] == pytest.approx((f - 1) / (f - 1 + 4), rel=1e-9)
    theta = (f - 1) / 4
    assert parts["paraphrases_needed_for_0_8"][0] == np.ceil(4 / theta)
    assert parts["rho2_at_n_wordings"][0] == pytest.approx(4 * theta / (1 + 4 * theta))


def test_order_effects_shared_by_every_culture_are_not_error() -> None:
    """A large order shift, the same for every culture, fills the within-cell residual but leaves
    F = MS_C / MS_CP, rho2(1) and the wordings needed unchanged (it printed 0.00 where F = 20)."""
    plain, _ = _two_way(order_shift=0.0)
    shifted, _ = _two_way(order_shift=0.3)
    assert shifted["ms_residual"][0] > 50 * plain["ms_residual"][0]
    for name in ("f_proxy", "rho2_1", "paraphrases_needed_for_0_8"):
        assert shifted[name][0] == pytest.approx(plain[name][0], rel=1e-9), name
    assert shifted["rho2_1"][0] > 0.5


def test_culture_share_interval_excludes_zero_only_when_f_rejects() -> None:
    rng = np.random.default_rng(8)
    units, proxies, wordings, replicates = 400, 6, 4, 2
    effect = rng.choice([0.0, 0.02, 0.05], size=(units, 1, 1))
    cells = (
        effect * rng.normal(size=(units, proxies, 1))
        + 0.04 * rng.normal(size=(units, proxies, wordings))
        + 0.05
        * rng.normal(size=(units, proxies, wordings, replicates)).mean(-1, keepdims=True)[..., 0]
    )
    noise = 0.05 * rng.normal(size=(units, proxies, wordings, replicates))
    scores = cells[..., None] + noise
    means = scores.mean(-1)
    within = ((scores - means[..., None]) ** 2).sum(-1)
    parts = item_statistics(means, within, replicates)
    low, high = culture_share_interval(parts, wordings, replicates, 0.95)
    one_sided = stats.f.sf(parts["f_proxy"], parts["df_proxy"], parts["df_interaction"])
    np.testing.assert_array_equal(low > 0, one_sided < 0.025)
    assert (
        (low <= parts["culture_share"] + 1e-12) & (parts["culture_share"] <= high + 1e-12)
    ).all()


def test_study_mean_interval_reaching_a_bound_is_the_clipped_t_interval() -> None:
    """A mean whose t interval over items reaches 0 keeps it, clipped: a null share's 0 stays in."""
    sample = np.array([0.30, -0.02, 0.01, 0.03, -0.04])
    estimate, low, high = item_mean_interval(sample[:, None])
    expected = stats.t.interval(0.95, len(sample) - 1, loc=sample.mean(), scale=stats.sem(sample))
    assert expected[0] < 0
    assert estimate[0] == pytest.approx(sample.mean())
    assert low[0] == 0.0
    assert high[0] == pytest.approx(expected[1])


def test_study_mean_interval_inside_the_bounds_is_the_log_odds_interval() -> None:
    """Five items' Kendall's W, skewed below a mean near 1: the t half-width over items, moved to
    the log-odds scale by the delta method (logit(m) +- q SE / (m (1 - m))) and mapped back."""
    sample = np.array([0.91, 0.62, 0.88, 0.85, 0.93])
    estimate, low, high = item_mean_interval(sample[:, None])
    mean = sample.sum() / 5  # 0.838
    error = np.sqrt(((sample - mean) ** 2).sum() / 4 / 5)
    spread = stats.t.ppf(0.975, 4) * error / (mean * (1 - mean))
    assert estimate[0] == pytest.approx(0.838)
    assert low[0] == pytest.approx(special.expit(special.logit(mean) - spread))
    assert high[0] == pytest.approx(special.expit(special.logit(mean) + spread))
    # it leans towards the middle of [0, 1], where the items' tail is: below by more than above
    symmetric = stats.t.interval(0.95, 4, loc=mean, scale=stats.sem(sample))
    assert low[0] < symmetric[0] and high[0] < symmetric[1]
    assert mean - low[0] > 1.5 * (high[0] - mean)


def test_study_mean_interval_is_the_t_interval_to_first_order() -> None:
    """Symmetric items, spread shrinking: each end differs from the t interval's by the delta
    method's second-order term, (1 - 2m) h^2 / (2 m (1 - m)) for half-width h, the same at both
    ends (a shift towards 0.5; the width matches up to terms in h^3), and at m = 0.5 the interval
    is symmetric about the mean."""
    shape = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    for centre in (0.3, 0.5, 0.8):
        for scale in (0.01, 0.001):
            sample = centre + scale * shape
            _, low, high = item_mean_interval(sample[:, None])
            t_low, t_high = stats.t.interval(0.95, 4, loc=centre, scale=stats.sem(sample))
            half = (t_high - t_low) / 2
            shift = (1 - 2 * centre) * half**2 / (2 * centre * (1 - centre))
            assert low[0] - t_low == pytest.approx(shift, abs=2 * half**3)
            assert high[0] - t_high == pytest.approx(shift, abs=2 * half**3)
            assert high[0] - low[0] == pytest.approx(2 * half, abs=4 * half**3)
            if centre == 0.5:
                assert high[0] - 0.5 == pytest.approx(0.5 - low[0])


def test_level_effect_means_keep_the_t_interval() -> None:
    """Without clipping (a difference between levels) the interval is the symmetric t interval."""
    values = np.array([[0.12, 0.30], [0.05, -0.02], [0.20, 0.01], [0.08, 0.03], [0.15, -0.04]])
    estimate, low, high = item_mean_interval(values, clip=False)
    for column in range(2):
        sample = values[:, column]
        expected = stats.t.interval(0.95, 4, loc=sample.mean(), scale=stats.sem(sample))
        assert estimate[column] == pytest.approx(sample.mean())
        assert (low[column], high[column]) == pytest.approx(expected)


def test_null_study_intervals_contain_zero() -> None:
    """Pure noise: every study-level culture interval holds the true 0 (it printed 1% [1%, 1%])."""
    plan, responses = simulate_study(
        PlantedEffects(noise=0.05), n_items=10, n_proxies=6, n_paraphrases=4, seed=11
    )
    result = analyze(tidy_responses(plan, responses), n_bootstrap=100, n_permutations=19)
    aggregates = result.summary["axes"]["region"]["aggregates"]
    assert aggregates["mean_culture_share"]["ci_low"] == 0.0
    assert aggregates["mean_wording_contrast_share"]["ci_low"] == 0.0
    summary = result.tables["factor_summary"].set_index("factor")
    for factor in ("region", "paraphrase", "order", "culture x paraphrase"):
        assert summary.loc[factor, "share_low"] == 0.0, factor
    assert summary.loc["residual", "share_high"] == pytest.approx(1.0, abs=0.02)
    assert (summary["effect"] == "fixed").sum() >= 1


def test_level_effects_of_a_fixed_factor_equal_ols_with_sum_contrasts() -> None:
    """paraphrase (random, 5) x order (fixed, 2), one response per cell: the order effect's error
    is MS_(paraphrase x order) on 4 df, the residual of ``score ~ p + o``, whose sum-coded
    coefficient and 95% interval statsmodels gives."""
    rng = np.random.default_rng(12)
    g = _grid({"p": 5, "o": 2})
    score = 0.1 * rng.normal(size=5)[g["p"]] + np.array([0.08, -0.08])[g["o"]]
    rows = _one_item(
        score + 0.04 * rng.normal(size=len(g)),
        proxy="US",
        paraphrase="p" + g["p"].astype(str),
        order=np.array(["canonical", "reversed"])[g["o"]],
    )
    _stats, _verdicts, _summary, levels = factor_tables(rows, {"q": 0}, 100, 0)
    canonical = levels.loc[(levels["scope"] == "item") & (levels["level"] == "canonical")].iloc[0]
    model = smf.ols("score ~ C(paraphrase, Sum) + C(order, Sum)", rows).fit()
    name = "C(order, Sum)[S.canonical]"
    assert canonical["effect"] == pytest.approx(model.params[name], rel=1e-9)
    low, high = model.conf_int().loc[name]
    assert canonical["effect_low"] == pytest.approx(low, rel=1e-9)
    assert canonical["effect_high"] == pytest.approx(high, rel=1e-9)
    assert canonical["df_error"] == pytest.approx(4.0)
    study = levels.loc[levels["scope"] == "study"]
    assert set(study["level"]) == {"canonical", "reversed"} and (study["n_items"] == 1).all()


def test_each_level_effect_takes_its_own_spread_over_wordings() -> None:
    """3 proxies x 5 paraphrases x 3 elicitation levels, the third level 10 times noisier: each
    level's interval is the one-sample t interval (scipy) of its effect within each wording, the
    level mean minus the mean of the levels there, averaged over proxies; the noisy level's is the
    widest, where one pooled error gave every level the same width."""
    rng = np.random.default_rng(4)
    g = _grid({"c": 3, "p": 5, "e": 3})
    noise = np.array([0.01, 0.01, 0.1])[g["e"]] * rng.normal(size=len(g))
    levels = np.array(["constrained", "first_token", "written"])
    rows = _one_item(
        0.5 + 0.05 * rng.normal(size=5)[g["p"]] + noise,
        proxy=np.array(["IN", "JP", "US"])[g["c"]],
        paraphrase="p" + g["p"].astype(str),
        elicitation=levels[g["e"]],
        order="canonical",
    )
    _stats, _verdicts, _summary, table = factor_tables(rows, {"q": 0}, 100, 0)
    item = table.loc[(table["scope"] == "item") & (table["factor"] == "elicitation")]
    by_wording = rows.pivot_table("score", "paraphrase", "elicitation", aggfunc="mean")
    within = by_wording.sub(by_wording.mean(axis=1), axis=0)
    for level in levels:
        row = item.loc[item["level"] == level].iloc[0]
        expected = stats.ttest_1samp(within[level], 0.0).confidence_interval(0.95)
        assert row["effect"] == pytest.approx(within[level].mean(), abs=1e-12)
        assert row["effect_low"] == pytest.approx(expected.low, rel=1e-9)
        assert row["effect_high"] == pytest.approx(expected.high, rel=1e-9)
        assert row["df_error"] == 4.0
    widths = (item["effect_high"] - item["effect_low"]).to_numpy()
    assert widths[2] > 1.5 * widths[:2].max()


def test_level_effects_where_paraphrases_cross_framings_leave_culture_x_order_out() -> None:
    """3 proxies x 3 paraphrases x 2 framings x 2 orders, one response per cell, every effect
    planted (no component is fitted at 0): the order effect's error is E[MS_order] without the
    order's own part and without culture x order, MS_PO + MS_FO - MS_E (the mean squares from
    statsmodels), on its Satterthwaite degrees of freedom; the effect's variance is error / N."""
    rng = np.random.default_rng(5)
    g = _grid({"c": 3, "p": 3, "f": 2, "o": 2})
    score = 0.5 + np.array([0.1, -0.1])[g["o"]] + 0.01 * rng.normal(size=len(g))
    for pair in ("c", "p", "f", "cp", "cf", "co", "pf", "po", "fo"):
        shape = [int(g[k].max()) + 1 for k in pair]
        score += 0.05 * rng.normal(size=shape)[tuple(g[k] for k in pair)]
    rows = _one_item(
        score,
        proxy=np.array(["IN", "JP", "US"])[g["c"]],
        paraphrase="p" + g["p"].astype(str),
        framing="f" + g["f"].astype(str),
        order=np.array(["canonical", "reversed"])[g["o"]],
    )
    factors, _verdicts, _summary, levels = factor_tables(rows, {"q": 0}, 100, 0)
    assert (factors.loc[factors["factor"] != "residual", "var"] > 0).all()
    frame = rows.assign(c=g["c"], p=g["p"], f=g["f"], o=g["o"])
    anova = anova_lm(smf.ols("score ~ (C(c) + C(p) + C(f) + C(o)) ** 2", frame).fit(), typ=1)
    parts = {
        k: (anova.at[k, "mean_sq"], anova.at[k, "df"])
        for k in ("C(p):C(o)", "C(f):C(o)", "Residual")
    }
    error = parts["C(p):C(o)"][0] + parts["C(f):C(o)"][0] - parts["Residual"][0]
    spread = sum(m**2 / d for m, d in parts.values())
    df_error = error**2 / spread
    canonical = levels.loc[(levels["scope"] == "item") & (levels["level"] == "canonical")].iloc[0]
    assert canonical["df_error"] == pytest.approx(df_error, rel=1e-9)
    half = stats.t.ppf(0.975, df_error) * np.sqrt(error / len(rows))
    assert canonical["effect_high"] - canonical["effect"] == pytest.approx(half, rel=1e-9)


def _cwi_parts(ms: dict[str, float], df: dict[str, float]) -> dict[str, np.ndarray]:
    """Mean squares and degrees of freedom; the interaction's error term is the within-cell one
    where none is given (no context effect common to every cell)."""
    ms, df = {"error": ms["residual"], **ms}, {"error": df["residual"], **df}
    parts = {f"ms_{k}": np.array([v]) for k, v in ms.items()}
    parts.update({f"df_{k}": np.array([v]) for k, v in df.items()})
    return parts


def test_cwi_interval_matches_the_noncentral_chi_square_quantiles_where_only_ms_c_varies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 10^9 degrees of freedom on MS_CP and MS_E' their pivots are constants, MS_P = 0 puts no
    variance on the wording, and CWI = max(MS_C* - MS_CP, 0) / (P n) over (MS_CP - MS_E') / n
    with MS_C* = MS_CP chi2'(df_C, df_C (MS_C - MS_CP) / MS_CP) / df_C: its bounds are scipy's
    noncentral chi-square quantiles mapped. The contrast is measured against the interaction's
    error term MS_E' = 0.1, not the within-cell MS_E = 0.3 that holds common context effects."""
    monkeypatch.setattr(anova, "CWI_DRAWS", 200_000)
    huge = 1e9
    ms = {"proxy": 2.0, "wording": 0.0, "interaction": 0.5, "residual": 0.3, "error": 0.1}
    df = {"proxy": 5.0, "wording": 3.0, "interaction": huge, "residual": huge, "error": huge}
    low, high = anova.cwi_interval(_cwi_parts(ms, df), 2, 0.95)
    noncentrality = 5 * (2.0 - 0.5) / 0.5
    expected = [
        max(0.5 * stats.ncx2.ppf(q, 5, noncentrality) / 5 - 0.5, 0) / (4 * 2) / ((0.5 - 0.1) / 2)
        for q in (0.025, 0.975)
    ]
    np.testing.assert_allclose([low[0], high[0]], expected, rtol=0.02)


def test_cwi_interval_is_unbounded_above_only_when_the_wording_can_be_zero() -> None:
    """MS_P and MS_CP no larger than MS_E: most pivots put no variance on the wording, and the
    upper bound is infinite, never a huge finite number; a clear wording effect bounds it."""
    ms = {"proxy": 5.0, "wording": 0.1, "interaction": 0.1, "residual": 0.1}
    df = {"proxy": 5.0, "wording": 3.0, "interaction": 15.0, "residual": 24.0}
    low, high = anova.cwi_interval(_cwi_parts(ms, df), 2, 0.95)
    assert low[0] > 0 and np.isposinf(high[0])
    ms.update(wording=3.0, interaction=0.6)
    low, high = anova.cwi_interval(_cwi_parts(ms, df), 2, 0.95)
    assert 0 < low[0] < high[0] < 100


def test_cwi_interval_covers_in_simulation() -> None:
    """800 simulated 6 x 4 x 6 units with culture, wording and contrast components: the 95%
    interval holds the CWI of the study's own (fixed) proxies 93-97% of the time (binomial sd
    0.8 points)."""
    rng = np.random.default_rng(7)
    units, proxies, wordings, replicates = 800, 6, 4, 6
    sd_c, sd_p, sd_cp, sd_e = 0.3, 0.2, 0.15, 0.2
    culture = rng.normal(size=(units, proxies, 1)) * sd_c
    cells = (
        culture
        + rng.normal(size=(units, 1, wordings)) * sd_p
        + rng.normal(size=(units, proxies, wordings)) * sd_cp
    )
    answers = cells[..., None] + rng.normal(size=(units, proxies, wordings, replicates)) * sd_e
    means = answers.mean(axis=-1)
    within = ((answers - means[..., None]) ** 2).sum(axis=-1)
    parts = item_statistics(means, within, replicates)
    low, high = anova.cwi_interval(parts, replicates, 0.95)
    realised = culture[..., 0].var(axis=1, ddof=1) / (sd_p**2 + sd_cp**2)
    assert 0.93 <= ((low <= realised) & (realised <= high)).mean() <= 0.97


@pytest.mark.parametrize(("sd_culture", "sd_wording"), [(0.05, 0.1), (0.03, 0.15), (0.05, 0.0)])
def test_culture_share_interval_covers_when_the_wording_is_large(
    sd_culture: float, sd_wording: float
) -> None:
    """600 units of 6 fixed proxies x 4 wordings x 6 replicates: the interval holds the share of
    the proxies' realised variance 93-97% of the time (binomial sd 0.9 points), where holding
    the wording component at its estimate covered 82-86% (wording sd 0.1-0.15) and 99% (none)."""
    rng = np.random.default_rng(5)
    units, proxies, wordings, replicates, sd_e = 600, 6, 4, 6, 0.05
    culture = rng.normal(size=(units, proxies, 1)) * sd_culture
    cells = culture + rng.normal(size=(units, 1, wordings)) * sd_wording
    answers = cells[..., None] + rng.normal(size=(units, proxies, wordings, replicates)) * sd_e
    means = answers.mean(axis=-1)
    parts = item_statistics(means, ((answers - means[..., None]) ** 2).sum(axis=-1), replicates)
    low, high = culture_share_interval(parts, wordings, replicates, 0.95)
    realised = culture[..., 0].var(axis=1, ddof=1)
    truth = realised / (realised + sd_wording**2 + sd_e**2)
    assert 0.93 <= ((low <= truth) & (truth <= high)).mean() <= 0.97
    share = parts["culture_share"]
    assert ((low <= share + 1e-12) & (share <= high + 1e-12)).all()
