"""The interaction's error term in the proxy x wording split: effects of the context combinations
(option order, enumerator, seed) that the proxy x wording contrasts do not hold (the same in
every cell, in every wording of a proxy or for every proxy of a wording) are not its error
(docs/statistics.md, "Culture against wording").

Checked against statsmodels (the residual of cell + proxy x combination + wording x
combination), a hand-worked example and simulations whose true components are known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from culture_probe.analysis import _anova as anova
from culture_probe.analysis._design import balanced_cubes
from culture_probe.analysis._items import decompose_units


def _rows(
    rng: np.random.Generator,
    n_items: int,
    *,
    contrast: float,
    enumerator_order: float,
    culture_order: float = 0.0,
    noise: float = 0.05,
) -> pd.DataFrame:
    """Items of 6 proxies x 4 wordings x 3 enumerators x 2 orders, one response a combination:
    culture x wording effects, enumerator x order effects shared by every cell and culture x
    order effects shared by every wording of a proxy."""
    shape = (6, 4, 3, 2)
    c, p, e, o = (a.ravel() for a in np.indices(shape))
    frames = []
    for item in range(n_items):
        cells = rng.normal(0, contrast, shape[:2]) + rng.normal(0, 0.03, (6, 1))
        common = rng.normal(0, enumerator_order, shape[2:])
        by_proxy = rng.normal(0, culture_order, (6, 2))
        score = 0.5 + cells[c, p] + common[e, o] + by_proxy[c, o] + rng.normal(0, noise, len(c))
        frames.append(
            pd.DataFrame(
                {
                    "item_id": f"Q{item}",
                    "axis": "region",
                    "proxy": np.char.add("C", c.astype(str)),
                    "wording": np.char.add(np.char.add("p", p.astype(str)), "/imagine"),
                    "enumerator": np.char.add("e", e.astype(str)),
                    "order": np.where(o == 0, "canonical", "reversed"),
                    "seed": 0,
                    "language": "en",
                    "score": score,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _decompose(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    (cube,) = balanced_cubes(rows).cubes
    assert cube.replicate_deviations is not None
    context_ss = anova.context_sum_of_squares(cube.replicate_deviations)
    return anova.decompose(cube.means, cube.within_ss, cube.n_replicates, None, context_ss)


def test_error_term_is_the_residual_of_cell_plus_context_by_proxy_and_by_wording() -> None:
    """SS_E', df_E' and MS_E' are statsmodels' residual of C(cell) + C(proxy):C(context) +
    C(wording):C(context), context = enumerator x order; the within-cell SS_E stays the saturated
    model's."""
    rows = _rows(np.random.default_rng(0), 1, contrast=0.04, enumerator_order=0.08)
    rows = rows.assign(context=rows["enumerator"] + rows["order"])
    parts = _decompose(rows)
    formula = "score ~ C(proxy):C(wording) + C(proxy):C(context) + C(wording):C(context)"
    additive = smf.ols(formula, rows).fit()
    saturated = smf.ols("score ~ C(proxy) * C(wording)", rows).fit()
    assert parts["ss_error"][0] == pytest.approx(additive.ssr)
    assert parts["df_error"][0] == additive.df_resid == 5 * 3 * 5
    assert parts["ms_error"][0] == pytest.approx(additive.mse_resid)
    assert parts["ss_residual"][0] == pytest.approx(saturated.ssr)
    assert parts["df_residual"][0] == saturated.df_resid == 120
    ms_cp = parts["ms_interaction"][0]
    assert parts["raw_var_interaction"][0] == pytest.approx((ms_cp - additive.mse_resid) / 6)
    assert parts["var_residual"][0] == pytest.approx(saturated.mse_resid)


def test_hand_worked_order_shift_common_to_every_cell() -> None:
    """2 x 2 cells, canonical then reversed: {1, 3}, {3, 5}, {5, 7}, {10, 14}. Within cells the
    deviations d are -1, +1 three times and -2, +2 once: SS_E = 14, MS_E = 14 / 4 = 3.5. The
    canonical order's mean deviation is -1 for C1 and for W1, -1.5 for C2 and for W2, -1.25
    overall, so the proxy x wording x order residuals d - dbar_c - dbar_p + dbar are +-0.25:
    SS_E' = 8 * 0.0625 = 0.5 on 1 x 1 x 1 df, MS_E' = 0.5. Cell means 2, 4, 6, 12: MS_CP = 2 * 4
    * 1 = 8, s2_CP = (8 - 0.5) / 2 = 3.75 (with MS_E it was (8 - 3.5) / 2 = 2.25), s2_E = MS_E =
    3.5 still, s2_C = 16, s2_P = 6: the shares are 16, 6, 3.75 and 3.5 over 29.25 and add up to
    1."""
    cells = {("C1", "W1"): [1, 3], ("C1", "W2"): [3, 5], ("C2", "W1"): [5, 7]}
    cells[("C2", "W2")] = [10, 14]
    rows = pd.DataFrame(
        [
            {"item_id": "q", "axis": "region", "proxy": proxy, "wording": wording}
            | {"order": order, "seed": 0, "score": score}
            for (proxy, wording), scores in cells.items()
            for order, score in zip(("canonical", "reversed"), scores, strict=True)
        ]
    )
    (cube,) = balanced_cubes(rows).cubes
    statistics = anova.item_statistics(
        cube.means, cube.within_ss, cube.n_replicates, cube.df_within, cube.replicate_deviations
    )
    assert statistics["ss_residual"][0] == pytest.approx(14)
    assert statistics["ss_error"][0] == pytest.approx(0.5)
    assert statistics["df_error"][0] == 1
    assert statistics["f_interaction"][0] == pytest.approx(8 / 0.5)
    expected = {"proxy": 16, "wording": 6, "interaction": 3.75, "residual": 3.5}
    for source, value in expected.items():
        assert statistics[f"var_{source}"][0] == pytest.approx(value), source
    assert statistics["wording_contrast_share"][0] == pytest.approx(3.75 / 29.25)
    assert statistics["cwi"][0] == pytest.approx(16 / 9.75)
    shares = ("culture_share", "wording_share", "wording_contrast_share", "residual_share")
    assert sum(statistics[name][0] for name in shares) == pytest.approx(1.0)


def test_common_context_effects_no_longer_bias_the_contrast_low() -> None:
    """300 items with culture x wording sd 0.04, enumerator x order sd 0.08 (the same in every
    cell) and culture x order sd 0.05 (the same in every wording of a proxy): the mean untruncated
    s2_CP is within 10% of 0.04^2 (0.99 of it). Against the whole within-cell MS_E it was 0.14 of
    it, against the residual of cell + combination alone 0.86; the residual keeps those
    effects."""
    rows = _rows(
        np.random.default_rng(1), 300, contrast=0.04, enumerator_order=0.08, culture_order=0.05
    )
    parts = _decompose(rows)
    assert parts["raw_var_interaction"].mean() == pytest.approx(0.04**2, rel=0.1)
    within_error = (parts["ms_interaction"] - parts["ms_residual"]) / 6
    assert within_error.mean() < 0.3 * 0.04**2
    assert parts["var_residual"].mean() > 2 * parts["ms_error"].mean()
    assert parts["ms_error"].mean() == pytest.approx(0.05**2, rel=0.05)


def test_null_contrast_keeps_the_interaction_test_at_its_level() -> None:
    """No culture x wording effect at all, large common enumerator x order effects: the F test of
    the interaction against MS_E' rejects on about 5% of 400 items (binomial sd 1.1 points)."""
    rows = _rows(np.random.default_rng(2), 400, contrast=0.0, enumerator_order=0.1)
    (cube,) = balanced_cubes(rows).cubes
    statistics = anova.item_statistics(
        cube.means, cube.within_ss, cube.n_replicates, cube.df_within, cube.replicate_deviations
    )
    assert 0.025 <= (statistics["p_interaction"] < 0.05).mean() <= 0.08


def test_unbalanced_or_unidentified_replicates_fall_back_to_the_within_cell_error() -> None:
    """A missing response, or replicates that no context column tells apart, leave no context
    sums: MS_E' is the within-cell MS_E, as before."""
    rows = _rows(np.random.default_rng(3), 1, contrast=0.04, enumerator_order=0.08)
    for variant in (rows.iloc[1:], rows.drop(columns=["enumerator"])):
        (cube,) = balanced_cubes(variant).cubes
        assert cube.replicate_deviations is None
        parts = anova.item_statistics(
            cube.means, cube.within_ss, cube.n_replicates, cube.df_within, None
        )
        assert parts["ms_error"][0] == parts["ms_residual"][0]
        assert parts["df_error"][0] == parts["df_residual"][0]


def test_a_factor_constant_within_each_cell_is_not_a_replicate() -> None:
    """The language of a wording varies between cells only: it belongs to the cell, and the
    replicates are still told apart by their enumerator and order."""
    rows = _rows(np.random.default_rng(4), 1, contrast=0.04, enumerator_order=0.08)
    rows["language"] = np.where(rows["wording"].isin(["p0/imagine", "p1/imagine"]), "en", "ja")
    (cube,) = balanced_cubes(rows).cubes
    assert cube.replicate_deviations is not None
    assert cube.replicate_deviations.shape == (1, 6, 4, 6)


def test_resampled_context_sum_of_squares_equals_that_of_the_resampled_deviations() -> None:
    """From the draw counts alone, the same sum of squares as resampling the deviations
    (G, B, C, P, K) and taking each resample's."""
    rng = np.random.default_rng(8)
    deviations = rng.normal(size=(3, 5, 4, 6))
    draws = rng.integers(0, 4, size=(3, 7, 4))
    resampled = np.take_along_axis(deviations[:, None], draws[:, :, None, :, None], axis=-2)
    np.testing.assert_allclose(
        anova.resampled_context_ss(deviations, draws), anova.context_sum_of_squares(resampled)
    )


def test_wording_bootstrap_resamples_the_error_term_with_the_wordings() -> None:
    """The replicates of s2_CP, each with the error term of its own resampled wordings, centre on
    the estimates; without the replicate deviations they sat far below them."""
    rows = _rows(np.random.default_rng(5), 40, contrast=0.04, enumerator_order=0.08)
    codes = {f"Q{item}": item for item in range(40)}
    core = decompose_units(rows, codes, 200, seed=0)
    estimate = core.table["var_interaction"].mean()
    assert np.nanmean(core.replicates["var_interaction"]) == pytest.approx(estimate, rel=0.2)
    (cube,) = balanced_cubes(rows).cubes
    draws = np.random.default_rng(0).integers(0, 4, size=(40, 200, 4))
    unadjusted = anova.paraphrase_bootstrap(cube.means, cube.within_ss, 6, draws)
    assert np.nanmean(unadjusted["var_interaction"]) < 0.7 * estimate


def test_cwi_interval_covers_with_common_context_effects() -> None:
    """600 items with small culture effects (sd 0.03), culture x wording (0.04) and common
    enumerator x order effects (0.08): CWI's interval holds s2_C / s2_CP, s2_C the realised
    variance of each item's proxies, on 93-98% of them (binomial sd 0.9 points; 94.5%). Where
    the culture estimate is 0 (74 items) the redraw around a zero signal alone covered 78%; with
    theta's exact upper bound times the draws' upper R' it covers 91%."""
    rng = np.random.default_rng(6)
    shape, n_items = (6, 4, 3, 2), 600
    culture = rng.normal(0, 0.03, (n_items, 6, 1, 1, 1))
    contrast = rng.normal(0, 0.04, (n_items, 6, 4, 1, 1))
    common = rng.normal(0, 0.08, (n_items, 1, 1, 3, 2))
    scores = culture + contrast + common + rng.normal(0, 0.05, (n_items, *shape))
    means = scores.mean(axis=(-2, -1))
    deviations = (scores - means[..., None, None]).reshape(n_items, 6, 4, 6)
    statistics = anova.item_statistics(means, (deviations**2).sum(-1), 6, None, deviations)
    low, high = anova.cwi_interval(statistics, 6, 0.95)
    truth = culture[:, :, 0, 0, 0].var(axis=1, ddof=1) / 0.04**2
    covered = (low <= truth) & (truth <= high)
    assert 0.93 <= covered.mean() <= 0.98
    assert covered[statistics["var_proxy"] == 0].mean() >= 0.85
