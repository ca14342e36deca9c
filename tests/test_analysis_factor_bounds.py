"""Variance components on a small format-factor design: 2 proxies x 4 paraphrases x 3 enumerators x
2 orders, one item, one seed (the shape of a tiny values run on the embedded model).

The N-way split's components are checked against hand-worked ANOVA estimates from statsmodels'
``anova_lm``; the two-way split and the order decomposition against the same tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from culture_probe.analysis._anova import decompose
from culture_probe.analysis._factorial import (
    MAX_SCORE_VARIANCE,
    fit_balanced,
    unit_decomposition,
    with_design_columns,
)
from culture_probe.analysis._three_way import order_columns

ENUMERATORS = ("A.", "1.", "(a)")
FULL = "score ~ C(proxy) + C(paraphrase) + C(enumerator) + C(order) + C(proxy):C(paraphrase)"
FULL += " + C(proxy):C(enumerator) + C(proxy):C(order)"


def _rows(seed: int, culture: float, noise: float) -> pd.DataFrame:
    """Planted paraphrase, enumerator and order effects, a culture effect of +-culture, noise."""
    rng = np.random.default_rng(seed)
    levels = {"c": 2, "p": 4, "e": 3, "o": 2}
    index = pd.MultiIndex.from_product([range(n) for n in levels.values()], names=list(levels))
    g = index.to_frame(index=False)
    score = (
        0.5
        + np.array([culture, -culture])[g["c"]]
        + np.array([0.08, -0.04, 0.02, -0.06])[g["p"]]
        + np.array([0.06, -0.04, -0.02])[g["e"]]
        + np.array([0.15, -0.15])[g["o"]]
        + noise * rng.normal(size=len(g))
    )
    paraphrase = "p" + (g["p"] + 1).astype(str)
    return pd.DataFrame(
        {
            "item_id": "family_importance",
            "axis": "region",
            "proxy": np.array(["US", "JP"])[g["c"]],
            "proxy_kind": "culture",
            "paraphrase": paraphrase,
            "framing": "imagine",
            "wording": paraphrase + "/imagine",
            "enumerator": np.array(ENUMERATORS)[g["e"]],
            "order": np.array(["canonical", "reversed"])[g["o"]],
            "seed": 0,
            "score": np.clip(score, 0.0, 1.0),
        }
    )


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    fitted = unit_decomposition(
        with_design_columns(rows), "family_importance", "region", 200, np.random.default_rng(0)
    )
    assert fitted is not None
    return fitted.table.set_index("factor")


def _mean_squares(formula: str, rows: pd.DataFrame) -> pd.Series:
    return anova_lm(smf.ols(formula, rows).fit(), typ=1)["mean_sq"]


def _plain_region_component(rows: pd.DataFrame) -> float:
    """What solving E[MS] = MS alone gives: s2_C = (MS_C - MS_CP - MS_CE - MS_CO + 2 MS_E) / 24."""
    ms = _mean_squares(FULL, rows)
    interactions = ["C(proxy):C(paraphrase)", "C(proxy):C(enumerator)", "C(proxy):C(order)"]
    return float((ms["C(proxy)"] - ms[interactions].sum() + 2 * ms["Residual"]) / 24)


#: the terms that stay above 0 in both tests, as ``anova_lm`` names them
KEPT = "C(paraphrase) + C(enumerator) + C(order) + C(paraphrase):C(enumerator) + C(paraphrase):C(order)"


def _pooled_estimates(rows: pd.DataFrame, with_culture: bool) -> dict[str, float]:
    """Hand-worked components when every term at 0 pools into the residual (Thompson 1962).

    Expected mean squares of the restricted mixed model (effects sum to 0 over each fixed factor:
    enumerator and order), 48 responses: E[MS_PE] = s2 + 4 s2_PE, E[MS_PO] = s2 + 6 s2_PO,
    E[MS_P] = s2 + 12 s2_P, E[MS_E] = s2 + 4 s2_PE + 16 theta_E, E[MS_O] = s2 + 6 s2_PO +
    24 theta_O, E[MS_C] = s2 + 24 s2_C; a fixed factor's variance is theta (L - 1) / L (Hays
    1963).
    """
    formula = "score ~ " + ("C(proxy) + " if with_culture else "") + KEPT
    ms = _mean_squares(formula, rows)
    error = ms["Residual"]
    pe, po = ms["C(paraphrase):C(enumerator)"], ms["C(paraphrase):C(order)"]
    out = {
        "paraphrase x enumerator": (pe - error) / 4,
        "paraphrase x order": (po - error) / 6,
        "paraphrase": (ms["C(paraphrase)"] - error) / 12,
        "enumerator": (ms["C(enumerator)"] - pe) / 16 * 2 / 3,
        "order": (ms["C(order)"] - po) / 24 / 2,
        "residual": error,
    }
    if with_culture:
        out["region"] = (ms["C(proxy)"] - error) / 24
    return out


def test_no_culture_gets_no_component_larger_than_its_mean_square() -> None:
    """No culture effect and noisy answers: every culture mean square lies below the pooled
    residual, so culture and its interactions are 0 and pool into the residual; the other
    components are the ANOVA estimates of the model without them."""
    rows = _rows(seed=3, culture=0.0, noise=0.08)
    table = _table(rows)
    ms_full = _mean_squares(FULL, rows)
    # the plain solution gives culture ten times what its own mean square allows (the bug)
    assert _plain_region_component(rows) > 10 * ms_full["C(proxy)"] / 24
    zero = ["region", "culture x paraphrase", "culture x enumerator", "culture x order"]
    assert (table.loc[[*zero, "enumerator x order"], "var"] == 0).all()
    for factor, value in _pooled_estimates(rows, with_culture=False).items():
        assert table.loc[factor, "var"] == pytest.approx(value, rel=1e-9, abs=1e-15), factor
    _assert_bounded(table)


def test_culture_effect_equals_the_pooled_anova_estimate() -> None:
    """A culture effect with culture interactions below the residual: s2_C = (MS_C - MS_E') / 24
    with MS_E' the residual of the model without the terms at 0."""
    rows = _rows(seed=14, culture=0.06, noise=0.05)
    table = _table(rows)
    ms_full = _mean_squares(FULL, rows)
    interactions = ["C(proxy):C(paraphrase)", "C(proxy):C(enumerator)", "C(proxy):C(order)"]
    assert ms_full[interactions].max() < ms_full["Residual"]
    assert _plain_region_component(rows) > ms_full["C(proxy)"] / 24  # the plain solution's excess
    zero = ["culture x paraphrase", "culture x enumerator", "culture x order", "enumerator x order"]
    assert (table.loc[zero, "var"] == 0).all()
    for factor, value in _pooled_estimates(rows, with_culture=True).items():
        assert table.loc[factor, "var"] == pytest.approx(value, rel=1e-9), factor
    assert table.loc["region", "var"] <= table.loc["region", "ms"] / 24
    _assert_bounded(table)


def _assert_bounded(table: pd.DataFrame) -> None:
    terms = table.drop(index="residual")
    assert (terms["var"] <= terms["ms"] + 1e-15).all()
    assert (table["var_low"] <= table["var"]).all() and (table["var"] <= table["var_high"]).all()
    assert (table["var_high"] <= MAX_SCORE_VARIANCE).all()
    assert table["share_low"].ge(0).all() and table["share_high"].le(1 + 1e-12).all()
    assert table["raw_share"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(table["share"], table["raw_share"].clip(0, 1))


def test_two_way_split_averages_over_enumerators_and_orders() -> None:
    """The two-way split treats the 6 enumerator x order responses of a cell as replicates: its
    culture component is (MS_C - MS_CP) / 24, the N-way split of the cell means (enumerators and
    orders averaged first) gives the same number; the N-way split of the responses also takes out
    culture x enumerator and culture x order, which the two-way one leaves in."""
    rows = _rows(seed=14, culture=0.06, noise=0.05)
    ms = _mean_squares(FULL, rows)
    ordered = rows.sort_values(["proxy", "paraphrase", "enumerator", "order"], kind="stable")
    cells = ordered["score"].to_numpy().reshape(2, 4, 6)
    means = cells.mean(axis=-1)
    within = ((cells - means[..., None]) ** 2).sum(axis=-1)
    two_way = decompose(means[None], within[None], 6)
    expected = (ms["C(proxy)"] - ms["C(proxy):C(paraphrase)"]) / 24
    assert two_way["var_proxy"][0] == pytest.approx(expected, rel=1e-9)
    averaged = rows.groupby(["proxy", "paraphrase"], as_index=False)["score"].mean()
    averaged = averaged.assign(item_id="family_importance", axis="region")
    table = _table(averaged)
    # on cell means MS_C and MS_CP are a sixth of the responses', and s2_C = (MS_C - MS_CP) / 4
    assert table.loc["region", "var"] == pytest.approx(two_way["var_proxy"][0], rel=1e-9)
    assert _table(rows).loc["region", "var"] < two_way["var_proxy"][0]


def test_balanced_shortcut_keeps_the_bound() -> None:
    rows = with_design_columns(_rows(seed=3, culture=0.0, noise=0.08))
    columns = ["axis_region", "paraphrase", "enumerator", "order"]
    codes = np.column_stack([pd.factorize(rows[c], sort=True)[0] for c in columns])
    fit = fit_balanced(
        rows["score"].to_numpy(), codes, [(0,), (1,), (2,), (3,), (0, 1), (0, 2), (0, 3)]
    )
    diagonal = np.diag(fit.expected)
    assert fit.raw[0] * diagonal[0] > fit.ms[0]  # the plain solution breaks the bound
    assert (fit.var[:-1] * diagonal[:-1] <= fit.ms[:-1] + 1e-15).all()


def test_order_decomposition_counts_replicates_and_seeds_apart() -> None:
    """Three enumerators and one seed: 3 replicates per proxy x wording x order cell, 1 seed; the
    within-cell term is the residual of the full proxy x wording x order model."""
    rows = _rows(seed=3, culture=0.0, noise=0.08)
    table = order_columns(rows).iloc[0]
    assert (table["n_orders"], table["n_cell_replicates"], table["n_seeds"]) == (2, 3, 1)
    ms = _mean_squares("score ~ C(proxy) * C(wording) * C(order)", rows)
    assert table["var_seed"] == pytest.approx(ms["Residual"], rel=1e-9)


def _three_way_context_rows(seed: int) -> pd.DataFrame:
    """No culture effect at all, and a large paraphrase x enumerator x order interaction that the
    model leaves in the residual: culture x paraphrase's mean square lies far under the residual's."""
    rows = _rows(seed, culture=0.0, noise=0.002)
    rng = np.random.default_rng(seed + 100)
    cell = rows["paraphrase"] + rows["enumerator"] + rows["order"]
    codes = pd.factorize(cell)[0]
    rows["score"] = rows["score"] + rng.normal(0, 0.1, codes.max() + 1)[codes]
    return rows


def test_a_term_under_its_error_takes_its_upper_end_from_its_own_mean_square() -> None:
    from scipy import stats

    rows = _three_way_context_rows(seed=3)
    table = _table(rows)
    term = table.loc["culture x paraphrase"]
    assert term["raw_share"] < 0 and term["share"] == 0 and term["share_low"] == 0
    assert bool(term["below_error"])
    ms = _mean_squares(FULL, rows)["C(proxy):C(paraphrase)"]
    cell = 3 * 2  # rows per proxy x paraphrase cell: 3 enumerators x 2 orders
    bound = ms * 3 / stats.chi2.ppf(0.025, 3) / cell
    assert term["var_high"] == pytest.approx(bound, rel=1e-9)
    assert term["share_high"] == pytest.approx(bound / table["var"].sum(), rel=1e-9)
    assert 0 < term["share_high"] < 0.05
    # terms whose draws reach above 0 keep their pivotal interval
    assert not table.loc[["residual", "paraphrase"], "below_error"].any()


def test_pooled_share_under_its_error_sums_the_items_bounds() -> None:
    from culture_probe.analysis._factorial import factor_tables

    items = [f"item{k}" for k in range(6)]
    rows = pd.concat(
        [_three_way_context_rows(k).assign(item_id=item) for k, item in enumerate(items)]
    )
    codes = {item: k for k, item in enumerate(items)}
    stats_table, _, summary, _ = factor_tables(rows, codes, 200, 0)
    term = stats_table.loc[stats_table["factor"] == "culture x paraphrase"]
    assert term["below_error"].all()
    totals = stats_table.groupby("item_id")["var"].sum()
    expected = term["var_high"].sum() / totals.loc[term["item_id"]].sum()
    pooled = summary.set_index("factor").loc["culture x paraphrase"]
    assert bool(pooled["below_error"]) and pooled["share"] == 0
    assert pooled["share_high"] == pytest.approx(expected, rel=1e-9)
