"""The N-way decomposition against statsmodels and the two-way split it generalises."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from culture_probe.analysis import analyze, tidy_responses
from culture_probe.analysis._anova import decompose
from culture_probe.analysis._factorial import (
    Term,
    bootstrap_draws,
    fit_balanced,
    fit_components,
    interval,
    kurtosis_degrees,
    pivotal_draws,
    restricted_contributions,
    term_codes,
    unit_decomposition,
    unit_terms,
    with_design_columns,
)
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.budget import balanced_fraction


def _grid(levels: dict[str, int]) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([range(n) for n in levels.values()], names=list(levels))
    return index.to_frame(index=False)


def _crossed_rows(seed: int = 1) -> pd.DataFrame:
    """region (4) x religion (3) x paraphrase (3) x order (2), planted effects on every term."""
    rng = np.random.default_rng(seed)
    g = _grid({"a": 4, "b": 3, "p": 3, "o": 2})
    cell = g["a"] * 3 + g["b"]
    score = (
        0.5 * rng.normal(size=4)[g["a"]]
        + 1.0 * rng.normal(size=3)[g["b"]]
        + 0.3 * rng.normal(size=12)[cell]
        + 0.4 * rng.normal(size=3)[g["p"]]
        + 0.2 * rng.normal(size=2)[g["o"]]
        + 0.3 * rng.normal(size=(12, 3))[cell, g["p"]]
        + 0.1 * rng.normal(size=len(g))
    )
    return pd.DataFrame(
        {
            "item_id": "q1",
            "axis": "region x religion",
            "proxy": "R" + g["a"].astype(str) + "+" + "G" + g["b"].astype(str),
            "proxy_kind": "culture",
            "paraphrase": "p" + g["p"].astype(str),
            "framing": "imagine",
            "order": "o" + g["o"].astype(str),
            "seed": 0,
            "language": "en",
            "score": score,
        }
    )


def _fit(rows: pd.DataFrame, axis: str, kinds: tuple[str, ...] | None = None):  # type: ignore[no-untyped-def]
    frame = with_design_columns(rows)
    terms = unit_terms(frame, axis)
    if kinds is not None:
        terms = [t for t in terms if t.kind in kinds]
    return terms, fit_components(frame["score"].to_numpy(), term_codes(frame, terms)), frame


FORMULA = (
    "score ~ C(axis_region) + C(axis_religion) + C(axis_region):C(axis_religion) + C(paraphrase)"
    " + C(order) + C(paraphrase):C(order) + C(axis_region):C(paraphrase) + C(axis_religion):C(paraphrase)"
    " + C(axis_region):C(axis_religion):C(paraphrase) + C(axis_region):C(order)"
    " + C(axis_religion):C(order) + C(axis_region):C(axis_religion):C(order)"
)


def test_balanced_sums_of_squares_equal_anova_lm() -> None:
    terms, fit, frame = _fit(_crossed_rows(), "region x religion")
    table = anova_lm(smf.ols(FORMULA, frame).fit(), typ=1)
    names = [t.name for t in terms]
    expected = {
        "region": ["C(axis_region)"],
        "religion": ["C(axis_religion)"],
        "region x religion": ["C(axis_region):C(axis_religion)"],
        "paraphrase": ["C(paraphrase)"],
        "order": ["C(order)"],
        "paraphrase x order": ["C(paraphrase):C(order)"],
        "culture x paraphrase": [
            "C(axis_region):C(paraphrase)",
            "C(axis_religion):C(paraphrase)",
            "C(axis_region):C(axis_religion):C(paraphrase)",
        ],
        "culture x order": [
            "C(axis_region):C(order)",
            "C(axis_religion):C(order)",
            "C(axis_region):C(axis_religion):C(order)",
        ],
    }
    assert names == list(expected)
    for index, name in enumerate(names):
        rows = table.loc[expected[name]]
        assert fit.ss[index] == pytest.approx(rows["sum_sq"].sum(), rel=1e-9, abs=1e-12)
        assert fit.df[index] == rows["df"].sum()
    assert fit.ss[-1] == pytest.approx(table.loc["Residual", "sum_sq"], rel=1e-9)
    assert fit.df[-1] == table.loc["Residual", "df"]


def test_balanced_components_equal_mixedlm_reml() -> None:
    """On balanced cells with positive estimates, REML and the ANOVA method of moments agree."""
    rng = np.random.default_rng(3)
    g = _grid({"a": 5, "p": 4, "o": 3})
    score = (
        rng.normal(size=5)[g["a"]]
        + 0.7 * rng.normal(size=4)[g["p"]]
        + 0.5 * rng.normal(size=3)[g["o"]]
        + 0.3 * rng.normal(size=len(g))
    )
    rows = pd.DataFrame(
        {
            "axis": "region",
            "proxy": "R" + g["a"].astype(str),
            "paraphrase": "p" + g["p"].astype(str),
            "order": "o" + g["o"].astype(str),
            "score": score,
            "group": 1,
        }
    )
    terms, fit, frame = _fit(rows, "region", ("proxy", "context"))
    assert [t.name for t in terms] == ["region", "paraphrase", "order"]
    assert (fit.raw > 0).all()
    model = sm.MixedLM.from_formula(
        "score ~ 1",
        groups="group",
        vc_formula={"a": "0 + C(axis_region)", "o": "0 + C(order)", "p": "0 + C(paraphrase)"},
        data=frame,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(reml=True, method="bfgs", gtol=1e-12, maxiter=5000)
    reml = dict(zip(["region", "order", "paraphrase"], result.vcomp, strict=True))
    for index, term in enumerate(terms):
        assert fit.var[index] == pytest.approx(reml[term.name], rel=1e-6)
    assert fit.var[-1] == pytest.approx(result.scale, rel=1e-6)


def test_two_way_split_is_a_special_case() -> None:
    """Proxy x paraphrase, one order and seed: the saturated model gives the two-way components."""
    rng = np.random.default_rng(5)
    g = _grid({"a": 5, "p": 4})
    score = rng.normal(size=5)[g["a"]] + 0.5 * rng.normal(size=(5, 4))[g["a"], g["p"]]
    rows = pd.DataFrame(
        {
            "item_id": "q",
            "axis": "region",
            "proxy": "R" + g["a"].astype(str),
            "paraphrase": "p" + g["p"].astype(str),
            "score": score + 0.3 * rng.normal(size=4)[g["p"]],
        }
    )
    fitted = unit_decomposition(with_design_columns(rows), "q", "region", 200, rng)
    assert fitted is not None
    table = fitted.table.set_index("factor")
    means = rows["score"].to_numpy().reshape(1, 5, 4)
    parts = decompose(means, np.zeros_like(means), 1)
    assert table.loc["region", "var"] == pytest.approx(parts["var_proxy"][0], rel=1e-9)
    assert table.loc["paraphrase", "var"] == pytest.approx(parts["var_wording"][0], rel=1e-9)
    interaction = table.loc["culture x paraphrase", "var"]
    assert interaction == pytest.approx(parts["var_interaction"][0], rel=1e-9)
    assert np.isnan(table.loc["residual", "var"])  # confounded with the interaction, as before


def test_unbalanced_fraction_sums_of_squares_equal_sequential_anova_lm() -> None:
    rows = _crossed_rows(seed=7)
    kept = balanced_fraction(rows, ["proxy", "paraphrase", "order"], 40, seed=2)
    _terms, fit, frame = _fit(kept, "region x religion", ("proxy", "context"))
    formula = "score ~ C(axis_region) + C(axis_religion) + C(paraphrase) + C(order)"
    table = anova_lm(smf.ols(formula, frame).fit(), typ=1)
    assert fit.ss[:4] == pytest.approx(table["sum_sq"].to_numpy()[:4], rel=1e-9)
    assert fit.ss[-1] == pytest.approx(table.loc["Residual", "sum_sq"], rel=1e-9)


def test_confounded_term_is_not_estimable() -> None:
    rows = _crossed_rows().query("order == 'o0' and paraphrase == 'p0'")
    rows = pd.concat([rows, rows.assign(order="o1", paraphrase="p1")], ignore_index=True)
    fitted = unit_decomposition(with_design_columns(rows), "q1", "region x religion", 100,
                                np.random.default_rng(0))  # fmt: skip
    assert fitted is not None
    table = fitted.table.set_index("factor")
    assert table.loc["order", "df"] == 0  # order always moves with the paraphrase
    assert np.isnan(table.loc["order", "var"]) and np.isnan(table.loc["order", "share"])


def test_old_plans_get_design_columns() -> None:
    plan = pd.DataFrame({"axis": ["region", "region x religion"], "proxy": ["JP", "IN+muslim"]})
    frame = with_design_columns(plan)
    assert frame["axis_region"].tolist() == ["JP", "IN"]
    assert frame["axis_religion"].iloc[1] == "muslim" and pd.isna(frame["axis_religion"].iloc[0])
    assert (frame[["enumerator", "separator", "instruction", "shots"]] == "default").all().all()
    kept = with_design_columns(plan.assign(axis_region=["x", "y"], shots="3"))
    assert kept["axis_region"].tolist() == ["x", "y"] and kept["shots"].eq("3").all()


def test_interval_holds_its_estimate_and_says_when_widened() -> None:
    draws = np.array([[0.4, 0.1], [0.5, 0.2], [0.6, 0.3]])
    low, high, extended = interval(draws, np.array([0.0, 0.2]))
    assert low[0] == 0.0 and extended.tolist() == [True, False]
    assert (low <= [0.0, 0.2]).all() and (high >= [0.0, 0.2]).all()


def test_intervals_contain_estimates_and_shares_are_the_clipped_untruncated_ones() -> None:
    """The printed share is the untruncated share clipped to [0, 1], the map its interval applies
    to every pivotal draw; the shares sum to 1 unless a component estimate is negative."""
    fitted = unit_decomposition(with_design_columns(_crossed_rows()), "q1", "region x religion",
                                500, np.random.default_rng(1))  # fmt: skip
    assert fitted is not None
    table = fitted.table
    np.testing.assert_allclose(table["share"], table["raw_share"].clip(0, 1))
    assert table["raw_share"].sum() == pytest.approx(1.0)
    assert not table["interval_extended"].any()
    assert (table["share_low"] <= table["share"]).all()
    assert (table["share"] <= table["share_high"]).all()
    assert (table["var_low"] <= table["var"]).all() and (table["var"] <= table["var_high"]).all()
    assert table["balanced"].all() and (table["method"] == "anova").all()
    assert table.set_index("factor").loc["religion", "p_largest"] > 0.5


def test_analyze_writes_factor_tables_for_an_old_plan() -> None:
    effects = PlantedEffects(culture=0.15, wording=0.02, interaction=0.02, noise=0.01)
    plan, responses = simulate_study(effects, n_items=3, n_proxies=5, n_paraphrases=4, seed=4)
    result = analyze(tidy_responses(plan, responses), n_bootstrap=200, n_permutations=19)
    stats = result.tables["factor_stats"]
    assert set(stats["factor"]) == {
        "region", "paraphrase", "order", "paraphrase x order", "culture x paraphrase",
        "culture x order", "residual"
    }  # fmt: skip
    verdicts = result.tables["factor_verdicts"]
    assert (verdicts["dominant_factor"] == "region").all()
    summary = result.tables["factor_summary"].set_index("factor")
    assert summary.loc["region", "share"] > 0.5
    facts = result.summary["factors"]["region"]
    assert facts["dominant_factor"] == "region"
    assert any("declared factors, region" in s for s in result.headline)


def test_balanced_shortcut_equals_the_orthogonalisation() -> None:
    frame = with_design_columns(_crossed_rows(seed=9))
    terms = unit_terms(frame, "region x religion")
    general = fit_components(frame["score"].to_numpy(), term_codes(frame, terms))
    columns = sorted({c for t in terms for c in t.columns})
    codes = np.column_stack([frame.groupby(c).ngroup().to_numpy() for c in columns])
    sets = [tuple(columns.index(c) for c in t.columns) for t in terms]
    shortcut = fit_balanced(frame["score"].to_numpy(), codes, sets)
    np.testing.assert_allclose(shortcut.df, general.df)
    np.testing.assert_allclose(shortcut.ss, general.ss, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(shortcut.expected, general.expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(shortcut.raw, general.raw, rtol=1e-8, atol=1e-12)


def test_large_incomplete_design_pools_culture_interactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import culture_probe.analysis._factorial as factorial

    monkeypatch.setattr(factorial, "MAX_DENSE_WORK", 1000.0)
    rows = with_design_columns(_crossed_rows()).iloc[:-3]  # incomplete: three cells missing
    fitted = unit_decomposition(rows, "q1", "region x religion", 100, np.random.default_rng(0))
    assert fitted is not None
    assert not fitted.table["factor"].str.startswith("culture x").any()
    assert fitted.table["method"].str.contains("pooled into the residual").all()


def test_crossed_proxy_components_equal_mixedlm_reml() -> None:
    """region, religion, region x religion (the joint proxy) and paraphrase as crossed components."""
    rng = np.random.default_rng(5)
    g = _grid({"a": 4, "b": 3, "p": 3, "o": 2})
    score = (
        rng.normal(size=4)[g["a"]]
        + 0.8 * rng.normal(size=3)[g["b"]]
        + 0.5 * rng.normal(size=12)[g["a"] * 3 + g["b"]]
        + 0.6 * rng.normal(size=3)[g["p"]]
        + 0.3 * rng.normal(size=len(g))
    )
    rows = pd.DataFrame(
        {
            "axis": "region x religion",
            "proxy": "R" + g["a"].astype(str) + "+G" + g["b"].astype(str),
            "paraphrase": "p" + g["p"].astype(str),
            "score": score,
            "group": 1,
        }
    )
    terms, fit, frame = _fit(rows, "region x religion", ("proxy", "proxy interaction", "context"))
    assert [t.name for t in terms] == ["region", "religion", "region x religion", "paraphrase"]
    assert (fit.raw > 0).all()
    vc = {
        "a": "0 + C(axis_region)",
        "b": "0 + C(axis_religion)",
        "c": "0 + C(proxy)",
        "p": "0 + C(paraphrase)",
    }
    model = sm.MixedLM.from_formula("score ~ 1", groups="group", vc_formula=vc, data=frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(reml=True, method="bfgs", gtol=1e-12, maxiter=5000)
    np.testing.assert_allclose(fit.var[:-1], result.vcomp, rtol=1e-6)
    assert fit.var[-1] == pytest.approx(result.scale, rel=1e-6)


def test_pivot_degrees_are_cut_by_the_levels_kurtosis_worked_by_hand() -> None:
    """Six proxies whose mean scores are (0, 0, 0, 0, 0, 3) (one far out: pandas' bias-corrected
    excess kurtosis G2 = 6) and a fixed order: the proxy pivot's df 5 becomes 2 / (2 / 5 + 6 / 6)
    = 1.4286; the fixed term and the residual keep theirs."""
    proxy = np.repeat(np.arange(6), 4)
    order = np.tile([0, 1], 12)
    scores = np.array([0, 0, 0, 0, 0, 3], dtype=float)[proxy] + np.tile([0.1, -0.1, 0.2, -0.2], 6)
    terms = [Term("region", ("axis:region",), "proxy"), Term("order", ("order",), "context")]
    codes = [proxy, order]
    fit = fit_components(scores, codes)
    gamma = pd.Series([0.0, 0, 0, 0, 0, 3]).kurt()
    assert gamma == pytest.approx(6.0)
    degrees = kurtosis_degrees(scores, codes, terms, fit)
    assert degrees[0] == pytest.approx(2 / (2 / 5 + gamma / 6))
    assert degrees[1] == fit.df[1] == 1
    assert degrees[2] == fit.df[2]


def _order_rows(seed: int = 3) -> pd.DataFrame:
    """3 proxies x 4 paraphrases x 2 option orders x 2 seeds, a planted order effect."""
    rng = np.random.default_rng(seed)
    g = _grid({"c": 3, "p": 4, "o": 2, "s": 2})
    score = (
        0.3 * rng.normal(size=3)[g["c"]]
        + 0.2 * rng.normal(size=4)[g["p"]]
        + np.array([0.4, -0.4])[g["o"]]
        + 0.3 * rng.normal(size=len(g))
    )
    return pd.DataFrame(
        {
            "item_id": "q1",
            "axis": "region",
            "proxy": "C" + g["c"].astype(str),
            "proxy_kind": "culture",
            "paraphrase": "p" + g["p"].astype(str),
            "framing": "imagine",
            "order": np.where(g["o"] == 0, "canonical", "reversed"),
            "seed": g["s"],
            "language": "en",
            "score": score,
        }
    )


def test_fixed_terms_are_bootstrapped_from_the_noncentral_chi_square_at_the_fit() -> None:
    """A fixed term's bootstrapped mean square is s2_err chi2'(r, lambda) / r with lambda =
    r (MS - s2_err) / s2_err, s2_err its E[MS] without its own part at the fitted components; a
    random term's is E[MS] chi2(r) / r. Both are checked against scipy's distributions, with
    lambda and E[MS] worked out here from the fit."""
    from scipy import stats

    terms, fit, _ = _fit(_order_rows(), "region")
    fixed = np.array([t.effect == "fixed" for t in terms] + [False])
    assert fixed.any()
    draws = bootstrap_draws(fit, 20000, np.random.default_rng(5), fixed)
    mean_squares = draws.raw @ fit.expected.T  # E[MS] = expected @ components, per draw
    expected = fit.expected @ fit.var
    for index in np.flatnonzero(fit.df > 0):
        df = fit.df[index]
        if fixed[index]:
            error = expected[index] - fit.expected[index, index] * fit.var[index]
            lam = df * (fit.ms[index] - error) / error
            assert lam > 10  # the planted order effect is far from zero
            scaled = mean_squares[:, index] * df / error
            assert stats.kstest(scaled, stats.ncx2(df, lam).cdf).pvalue > 0.001
            assert mean_squares[:, index].mean() == pytest.approx(fit.ms[index], rel=0.02)
        else:
            scaled = mean_squares[:, index] * df / expected[index]
            assert stats.kstest(scaled, stats.chi2(df).cdf).pvalue > 0.001


def test_a_fixed_share_interval_is_the_bootstrap_percentile_interval() -> None:
    """The order share's printed interval is the 2.5-97.5% percentiles of the bootstrap's
    untruncated order shares (its component scaled by df / L over the total of the non-negative
    ones), rebuilt here from the same random stream."""
    rows = with_design_columns(_order_rows())
    fitted = unit_decomposition(rows, "q1", "region", 400, np.random.default_rng(2))
    assert fitted is not None
    table = fitted.table.set_index("factor")
    assert table.loc["order", "effect"] == "fixed"
    frame = with_design_columns(_order_rows())
    terms = unit_terms(frame, "region")
    codes = term_codes(frame, terms)
    fit = fit_components(frame["score"].to_numpy(), codes, restricted_contributions(terms))
    fixed = np.array([t.effect == "fixed" for t in terms] + [False])
    pivot_df = kurtosis_degrees(frame["score"].to_numpy(), codes, terms, fit)
    rng = np.random.default_rng(2)
    pivotal_draws(fit, 400, rng, fixed, pivot_df)  # the stream the item's pivots used first
    draws = bootstrap_draws(fit, 400, rng, fixed, pivot_df)
    levels = [int(code.max()) + 1 for code in codes]
    scale = np.ones(len(terms) + 1)
    for column in np.flatnonzero(fixed):  # a fixed term's variance: sum(alpha^2) / L
        scale[column] = fit.df[column] / levels[column]
    index = [t.name for t in terms].index("order")
    shares = draws.raw[:, index] * scale[index] / np.nansum(draws.var * scale, axis=1)
    low, high = np.percentile(shares, [2.5, 97.5])
    assert table.loc["order", "share_low"] == pytest.approx(max(low, 0.0), rel=1e-9)
    assert table.loc["order", "share_high"] == pytest.approx(min(high, 1.0), rel=1e-9)
    assert low < table.loc["order", "share"] < high
