"""Verdicts per item and study-level aggregates with two-stage bootstrap CIs
(docs/statistics.md#study-level-intervals; docs/statistics.md#verdicts)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from culture_probe.analysis._items import (
    bias_corrected_interval,
    interval_extended,
    item_mean_interval,
    pooled_share_interval,
    quiet,
)

SIGNIFICANCE = 0.05
VERDICTS = (
    "culture-dominant",
    "wording-dominated",
    "order-dominated",
    "mixed",
    "no culture effect",
    "nominal",
)
#: what ``item_stats`` computes its statistics on, by the item's scale
ORDINAL_MEASURE = "expected ordinal position"
NOMINAL_ON_ORDINAL = "expected ordinal position (nominal item: not meaningful, see nominal_stats)"

#: statistic -> its untruncated form in ``item_stats``, which the study-level mean averages
UNBIASED_SHARES = {
    "culture_share": "raw_culture_share",
    "wording_share": "raw_wording_share",
    "wording_contrast_share": "raw_wording_contrast_share",
    "residual_share": "raw_residual_share",
    "rho2_1": "raw_rho2_1",
}

#: statistic -> the ``item_stats`` column whose mean over items, with its Student-t interval on
#: the log-odds scale (:func:`unbiased_mean`), the study-level aggregate is: the untruncated
#: shares (where ``item_stats`` lacks the components that pool them), and Kendall's W,
#: which is not truncated and unbiased for the W its wordings give on average. The items' spread
#: already holds each item's wording noise; the two-stage bootstrap of the W replicates this
#: replaced counted it twice, and covered no better in simulation (benchmarks/RESULTS.md;
#: docs/statistics.md, "Kendall's W").
MEANS_OVER_ITEMS = {**UNBIASED_SHARES, "kendall_w": "kendall_w"}

# Study-level aggregates: (name, per-item statistic, how the items are combined).
AGGREGATES = (
    ("mean_culture_share", "culture_share", "mean"),
    ("mean_wording_share", "wording_share", "mean"),
    ("mean_wording_contrast_share", "wording_contrast_share", "mean"),
    ("mean_residual_share", "residual_share", "mean"),
    ("mean_order_share", "order_share", "mean"),
    ("median_cwi", "cwi", "median"),
    ("mean_kendall_w", "kendall_w", "mean"),
    ("mean_rho2_1", "rho2_1", "mean"),
    ("share_culture_exceeds_contrast", "culture_exceeds_contrast", "mean"),
)


def verdicts(table: pd.DataFrame) -> pd.Series:
    """The decision rule of docs/statistics.md#verdicts, applied per item x axis, first match wins.

    1. "order-dominated": the option order moves the answer significantly (``p_order_bh`` < 0.05,
       the order main effect over the proxy x wording cells) and the order terms of the
       proxy x wording x order decomposition outweigh culture, wording and their interaction
       together (``order_share`` > ``non_order_share``): the answers follow the position of the
       options more than anything the prompt says.
    2. "culture-dominant": F_C = MS_C / MS_CP significant after Benjamini-Hochberg, CWI > 1, real
       proxies beat placebo proxies (not applied when the study has none) and, with a human
       reference, a noise-to-human-signal ratio below 1.
    3. "wording-dominated": s2_P + s2_CP > s2_C with a significant wording or interaction term, or
       NSR >= 1.
    4. "no culture effect": F_C not significant.
    5. "mixed": a significant culture effect that meets none of the above.

    A nominal item gets "nominal": its options have no order, so a verdict on the expected
    ordinal position would mean nothing; ``nominal_stats`` holds its measures.
    """
    culture_significant = table["p_proxy_bh"].lt(SIGNIFICANCE)
    wording_significant = table["p_wording_bh"].lt(SIGNIFICANCE) | table["p_interaction_bh"].lt(
        SIGNIFICANCE
    )
    wording_larger = (table["var_wording"] + table["var_interaction"]) > table["var_proxy"]
    beats_placebo = table["beats_placebo"].astype("float64").fillna(1.0).astype(bool)
    noisy = table["nsr"].ge(1) if "nsr" in table.columns else pd.Series(False, index=table.index)
    culture_dominant = culture_significant & table["cwi"].gt(1) & beats_placebo & ~noisy
    wording_dominated = (wording_larger & wording_significant) | noisy
    choice = np.select(
        [
            _order_dominated(table).to_numpy(),
            culture_dominant.to_numpy(),
            wording_dominated.to_numpy(),
            ~culture_significant.to_numpy(),
        ],
        ["order-dominated", "culture-dominant", "wording-dominated", "no culture effect"],
        default="mixed",
    )
    if "scale" in table.columns:
        choice = np.where(table["scale"].eq("nominal").to_numpy(), "nominal", choice)
    return pd.Series(choice, index=table.index, name="verdict")


def _order_dominated(table: pd.DataFrame) -> pd.Series:
    if "order_share" not in table.columns:
        return pd.Series(False, index=table.index)
    order_larger = table["order_share"].astype("float64") > table["non_order_share"].astype(
        "float64"
    )
    return order_larger & table["p_order_bh"].astype("float64").lt(SIGNIFICANCE)


def measure_names(scales: pd.Series) -> np.ndarray:
    """The ``measure`` column of ``item_stats``: what each row's statistics are computed on."""
    return np.where(scales.eq("nominal").to_numpy(), NOMINAL_ON_ORDINAL, ORDINAL_MEASURE)


def two_stage_aggregates(
    table: pd.DataFrame, replicates: dict[str, np.ndarray], seed: int
) -> dict[str, dict[str, float]]:
    """Aggregate per-item statistics with a two-stage bootstrap CI.

    Stage one resamples items with replacement; stage two gives every drawn item an independent
    resample of its wordings, taken from the item's paraphrase-bootstrap replicates (Field & Welsh
    2007; docs/statistics.md#study-level-intervals). Proxies and orders stay fixed.

    Args:
        table: rows of one axis of ``item_stats``.
        replicates: the matching paraphrase-bootstrap replicates, shape (items, B).
        seed: random seed.

    Returns:
        name -> {"estimate", "ci_low", "ci_high", "interval_extended"}; the interval always holds
        the estimate, ``interval_extended`` says where it had to be widened to
        (:func:`~culture_probe.analysis._items.contain_estimate`).
    """
    n_items = len(table)
    n_bootstrap = next(iter(replicates.values())).shape[1] if replicates else 0
    rng = np.random.default_rng([seed, 2])
    items = rng.integers(0, n_items, size=(n_bootstrap, n_items))
    draws = rng.integers(0, n_bootstrap, size=(n_bootstrap, n_items))
    point = table.assign(culture_exceeds_contrast=table["var_proxy"] > table["var_interaction"])
    replicates = {
        **replicates,
        "culture_exceeds_contrast": replicates["var_proxy"] > replicates["var_interaction"],
    }
    out: dict[str, dict[str, float]] = {}
    for name, column, how in AGGREGATES:
        if column == "rho2_1" and RELIABILITY_PARTS.issubset(point.columns):
            out[name] = pooled_reliability(point)
            continue
        if column in TWO_WAY_SHARES and TWO_WAY_PARTS.issubset(point.columns):
            out[name] = pooled_two_way_share(point, UNBIASED_SHARES[column])
            continue
        if column in MEANS_OVER_ITEMS and MEANS_OVER_ITEMS[column] in point.columns:
            out[name] = unbiased_mean(point[MEANS_OVER_ITEMS[column]])
            continue
        combine = np.nanmedian if how == "median" else np.nanmean
        values = point[column].to_numpy(dtype=np.float64)
        # A statistic without paraphrase replicates (the order share) gets the item stage only.
        if column in replicates:
            resampled = replicates[column].astype(np.float64)[items, draws]
        else:
            resampled = values[items]
        with quiet():
            estimate = float(combine(values)) if n_items else float("nan")
            combined = combine(resampled, axis=1)
            low, high = bias_corrected_interval(combined, np.asarray(estimate))
            extended = bool(interval_extended(combined, np.asarray(estimate)))
        out[name] = {
            "estimate": estimate,
            "ci_low": float(low),
            "ci_high": float(high),
            "interval_extended": extended,
        }
    out["within_cell_share"] = within_cell_share(out)
    return out


#: the two-way model's components that the residual is the rest of
TWO_WAY_COMPONENTS = ("mean_culture_share", "mean_wording_share", "mean_wording_contrast_share")


def within_cell_share(aggregates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the two-way components leave, as the sentences print them.

    The study-level means of the untruncated shares sum to 1; a component whose mean is negative
    is printed as not distinguishable from zero, so the residual's own mean (then above 1, and
    clipped to 100% [100%, 100%]) would no longer add up with what is printed beside it. Its
    interval is given only where it is the residual's own and lies inside what the others leave;
    otherwise the rest is stated as a complement, without an interval of its own (the intervals of
    the components carry the uncertainty).
    """
    shown = np.array(
        [aggregates.get(name, {}).get("estimate", np.nan) for name in TWO_WAY_COMPONENTS],
        dtype=np.float64,
    )
    if not np.isfinite(shown).all():
        return {"estimate": float("nan"), "ci_low": None, "ci_high": None, "complement": True}
    rest = float(np.clip(1.0 - np.clip(shown, 0.0, 1.0).sum(), 0.0, 1.0))
    residual = aggregates.get("mean_residual_share", {})
    own = residual.get("estimate")
    if own is not None and abs(own - rest) <= 1e-12 and residual.get("ci_high", 2.0) <= 1.0:
        return {**residual, "complement": False}
    return {"estimate": rest, "ci_low": None, "ci_high": None, "complement": True}


#: the two-way shares whose study-level value pools the components over items
TWO_WAY_SHARES = ("culture_share", "wording_share", "wording_contrast_share", "residual_share")
#: the ``item_stats`` columns whose sum is an item's two-way total
TWO_WAY_PARTS = frozenset({"var_proxy", "var_wording", "var_interaction", "var_residual"})


def pooled_two_way_share(table: pd.DataFrame, raw_column: str, prefix: str = "") -> dict[str, Any]:
    """A two-way share of the whole study: the sum over items of the component over the sum of
    the items' totals, with the ratio estimator's interval
    (:func:`~culture_probe.analysis._items.pooled_share_interval`; docs/statistics.md,
    "Study-level intervals"), as the N-way model's study-level shares are.

    The component is the untruncated one (``raw_*`` share times the item's total), so that a null
    study's interval reaches 0, and the four shares still add up to 1. The mean of the items'
    shares put each item's truncated total under its own component: where wording-by-culture
    effects were small against effects common to every cell it sat below the population's share
    and its Student-t interval over 5 items covered 87.5-89.5% (benchmarks/interval_coverage.py).

    Args:
        table: rows of one axis of ``item_stats``.
        raw_column: the untruncated share (``raw_culture_share``, ...).
        prefix: the prefix of another decomposition's columns in ``item_stats``: ``"placebo_"``
            pools the placebo personas' own proxy x wording model.
    """
    parts = table.loc[:, [prefix + part for part in sorted(TWO_WAY_PARTS)]]
    totals = np.nansum(np.clip(parts.to_numpy(dtype=np.float64), 0, None), axis=1)
    components = table[prefix + raw_column].to_numpy(dtype=np.float64) * totals
    estimate, low, high = pooled_share_interval(components[:, None], totals)
    return study_entry(estimate, low, high)


#: the ``item_stats`` columns the study's pooled rho2(1) reads
RELIABILITY_PARTS = frozenset({"ms_proxy", "ms_interaction", "n_wordings"})


def pooled_reliability(table: pd.DataFrame) -> dict[str, Any]:
    """The study's single-wording reliability: rho2(1) of the variance components pooled over
    items, sum(x_i) / sum(t_i), with the ratio estimator's interval
    (:func:`~culture_probe.analysis._items.pooled_share_interval`; docs/statistics.md,
    "Study-level intervals").

    Per item, x_i = (MS_C - MS_CP) / P estimates P n s2_C / P and t_i = x_i + MS_CP its sum with
    the error of one wording's culture contrast, n (s2_CP + s2_E / n): x_i / t_i is the item's
    untruncated rho2(1) = (F - 1) / (F - 1 + P). Pooling the components is how generalizability
    theory takes a coefficient over a facet (Brennan 2001), and it keeps the interval
    honest with few items: the mean of the items' rho2(1), skewed towards 0 below a bound of 1,
    had a Student-t interval over 5 items that covered the population's mean 88.5-90.5% of the
    time (benchmarks/interval_coverage.py).
    """
    wordings = table["n_wordings"].to_numpy(dtype=np.float64)
    error = table["ms_interaction"].to_numpy(dtype=np.float64)
    signal = (table["ms_proxy"].to_numpy(dtype=np.float64) - error) / wordings
    estimate, low, high = pooled_share_interval(signal[:, None], signal + error)
    return study_entry(estimate, low, high)


def study_entry(estimate: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict[str, Any]:
    """A study-level aggregate as ``summary.json`` holds it, from one-element arrays; its
    interval is never widened to reach the estimate."""
    return {
        "estimate": float(estimate[0]),
        "ci_low": float(low[0]),
        "ci_high": float(high[0]),
        "interval_extended": False,
    }


def unbiased_mean(values: pd.Series) -> dict[str, Any]:
    """The mean of the items' untruncated estimates with its interval over items
    (:func:`~culture_probe.analysis._items.item_mean_interval`)."""
    estimate, low, high = item_mean_interval(values.to_numpy(dtype=np.float64)[:, None])
    return study_entry(estimate, low, high)


def clustered_mean(values: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """Mean and its cluster-robust standard error, clusters = items (Miller 2024).

    SE = sqrt(sum_g (sum_{j in g} (x_j - mean))^2) / N.
    """
    present = ~np.isnan(values)
    values, clusters = values[present], clusters[present]
    if len(values) == 0:
        return {"mean": float("nan"), "se": float("nan"), "n_items": 0}
    deviations = pd.Series(values - values.mean()).groupby(clusters).sum()
    se = float(np.sqrt((deviations.to_numpy() ** 2).sum()) / len(values))
    return {"mean": float(values.mean()), "se": se, "n_items": len(np.unique(clusters))}


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many item x axis units got each verdict."""
    counts = table["verdict"].value_counts()
    return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}


def finite(value: Any) -> Any:
    """A JSON-safe scalar: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def within_cell_factors(culture: pd.DataFrame) -> list[str]:
    """The design factors that vary within a proxy x wording cell of one axis's culture rows.

    These hold the remainder of the proxy x wording model: the option order, the enumerator and
    the other format factors, the language, the seed; named so that a sentence about the
    remainder names only what actually varies.
    """
    from culture_probe.columns import CONTEXT_FACTORS

    cells = ["item_id", "proxy", "wording"]
    within = [c for c in CONTEXT_FACTORS if c not in ("paraphrase", "framing")]
    present = [c for c in within if c in culture.columns]
    if culture.empty or not present:
        return []
    counts = culture.groupby(cells, observed=True)[present].nunique()
    return [column for column in present if bool((counts[column] > 1).any())]


def placebo_summary(rows: pd.DataFrame) -> dict[str, Any] | None:
    """Real proxies against placebo personas over the items that have both.

    ``culture_share`` and ``placebo_share`` are shares of the answer variance pooled over those
    items (:func:`pooled_two_way_share`, the placebo's from the same proxy x wording model over its
    own personas), each ``{estimate, ci_low, ci_high, interval_extended}``; where every item has
    placebos, ``culture_share`` is the axis's ``mean_culture_share``. ``n_above`` counts the items
    whose culture component exceeds the placebo's, ``n_beating`` those whose paired bootstrap
    interval of the difference lies above 0, and ``sign_p`` is the two-sided sign test of
    ``n_above`` out of ``n_items`` (scipy's exact binomial test).
    """
    from scipy import stats

    if "placebo_culture_share" not in rows.columns:
        return None
    both = rows.loc[rows["placebo_culture_share"].notna()]
    if both.empty:
        return None
    above = int(both["culture_minus_placebo"].astype("float64").gt(0).sum())
    return {
        "n_items": len(both),
        "culture_share": pooled_two_way_share(both, "raw_culture_share"),
        "placebo_share": pooled_two_way_share(both, "raw_culture_share", prefix="placebo_"),
        "n_above": above,
        "n_beating": int(both["beats_placebo"].astype("boolean").fillna(False).sum()),
        "sign_p": float(stats.binomtest(above, len(both)).pvalue),
    }
