"""The per item x axis table: decomposition, tests, agreement, bootstrap CIs, placebo comparison."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.agreement import krippendorff_alpha
from culture_probe.analysis._agreement import answer_counts, modal_answers
from culture_probe.analysis._anova import BOOTSTRAPPED, item_statistics, paraphrase_bootstrap
from culture_probe.analysis._design import UNIT_COLUMNS, Cube, balanced_cubes

CONFIDENCE = 0.95
#: units x resamples x (C x P cells, or wording pairs for Kendall's W, whichever is more) held at
#: once by the paraphrase bootstrap
CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Decomposition:
    """Per-unit statistics and the paraphrase-bootstrap replicates they came with.

    Attributes:
        table: one row per unit (item x axis) with the statistics of :func:`item_statistics`.
        replicates: per statistic in :data:`BOOTSTRAPPED`, shape (units, B), rows aligned with
            ``table``.
        rows_dropped: responses left out to balance the design.
    """

    table: pd.DataFrame
    replicates: dict[str, np.ndarray]
    rows_dropped: int


def decompose_units(
    rows: pd.DataFrame, item_codes: dict[str, int], n_bootstrap: int, seed: int
) -> Decomposition:
    """Decompose every unit of ``rows`` and bootstrap its wordings.

    The wording resamples of an item depend only on (seed, item, number of wordings), so the culture
    and the placebo decompositions of one item use the same resampled wordings: their difference is
    a paired bootstrap.
    """
    design = balanced_cubes(rows)
    tables, replicates = [], []
    for cube in design.cubes:
        codes = cube.units["item_id"].map(item_codes).to_numpy()
        draws = _wording_draws(codes, len(item_codes), n_bootstrap, cube.means.shape[-1], seed)
        tables.append(_cube_table(cube))
        replicates.append(_cube_bootstrap(cube, draws))
    if not tables:
        # No unit has two proxies under two wordings: an empty table with every column.
        empty = Cube(
            units=pd.DataFrame(columns=["unit", *UNIT_COLUMNS]),
            proxies=np.zeros((0, 2), dtype=object),
            wordings=np.zeros((0, 2), dtype=object),
            means=np.zeros((0, 2, 2)),
            within_ss=np.zeros((0, 2, 2)),
            n_replicates=1,
        )
        replicates_empty = {k: np.zeros((0, n_bootstrap)) for k in BOOTSTRAPPED}
        return Decomposition(_cube_table(empty), replicates_empty, design.rows_dropped)
    table = pd.concat(tables, ignore_index=True)
    merged = {k: np.concatenate([r[k] for r in replicates]) for k in BOOTSTRAPPED}
    return Decomposition(table, merged, design.rows_dropped)


def _wording_draws(
    item_codes: np.ndarray, n_items: int, n_bootstrap: int, n_wordings: int, seed: int
) -> np.ndarray:
    rng = np.random.default_rng([seed, n_wordings])
    bank = rng.integers(0, n_wordings, size=(n_items, n_bootstrap, n_wordings), dtype=np.int32)
    return np.asarray(bank[item_codes])


def _cube_table(cube: Cube) -> pd.DataFrame:
    table = cube.units.loc[:, list(UNIT_COLUMNS)].copy()
    table["n_proxies"], table["n_wordings"] = cube.means.shape[1], cube.means.shape[2]
    table["n_replicates"] = cube.n_replicates
    no_kurtosis = np.zeros(len(table))
    table["error_kurtosis"] = no_kurtosis if cube.error_kurtosis is None else cube.error_kurtosis
    statistics = item_statistics(
        cube.means, cube.within_ss, cube.n_replicates, cube.df_within, cube.replicate_deviations
    )
    for name, values in statistics.items():
        table[name] = values
    return table


def _cube_bootstrap(cube: Cube, draws: np.ndarray) -> dict[str, np.ndarray]:
    n_units, n_proxies, n_wordings = cube.means.shape
    n_bootstrap = draws.shape[1]
    n_contexts = 1 if cube.replicate_deviations is None else cube.replicate_deviations.shape[-1]
    cells = n_proxies * max(n_wordings, n_contexts)
    per_resample = max(cells, n_wordings * (n_wordings - 1) // 2, 1)
    step = max(1, CHUNK_ELEMENTS // (max(1, n_bootstrap) * per_resample))
    chunks = [
        paraphrase_bootstrap(
            cube.means[start : start + step],
            cube.within_ss[start : start + step],
            cube.n_replicates,
            draws[start : start + step],
            cube.df_within,
            None
            if cube.replicate_deviations is None
            else cube.replicate_deviations[start : start + step],
        )
        for start in range(0, n_units, step)
    ]
    return {k: np.concatenate([c[k] for c in chunks]) for k in BOOTSTRAPPED}


def bias_corrected_interval(
    replicates: np.ndarray, estimate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected percentile bootstrap interval along the last axis (Efron 1981).

    Resampling wordings with replacement repeats some wordings, which shrinks the wording and
    interaction components on average (Brennan 2001, "Generalizability Theory", ch. 6), so the plain
    percentile interval can miss its own estimate. The bias-corrected interval reads the quantiles
    Phi(2 z0 +- z) with z0 = Phi^-1(share of replicates below the estimate). NaN replicates are
    ignored; infinite ones (a CWI with a zero denominator) sort last.

    Args:
        replicates: bootstrap replicates, shape (..., B).
        estimate: the point estimates, shape (...).

    Returns:
        ``(low, high)``, each of shape (...), holding the estimate (:func:`contain_estimate`).
    """
    low, high = bias_corrected_bounds(replicates, estimate)
    return contain_estimate(low, high, estimate)


def bias_corrected_bounds(
    replicates: np.ndarray, estimate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The bias-corrected bounds as the quantiles give them, before :func:`contain_estimate`."""
    values = np.sort(np.asarray(replicates, dtype=np.float64), axis=-1)  # NaN sort last
    valid = (~np.isnan(values)).sum(axis=-1)
    below = (values < np.asarray(estimate)[..., None]).sum(axis=-1)
    ties = (values == np.asarray(estimate)[..., None]).sum(axis=-1)
    share = (below + ties / 2) / np.maximum(valid, 1)
    share = np.clip(share, 1 / (valid + 1), valid / (valid + 1))
    bias = stats.norm.ppf(share)
    z = stats.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    bounds = []
    for sign in (-1, 1):
        level = stats.norm.cdf(2 * bias + sign * z)
        position = np.clip(np.floor(level * valid).astype(np.int64), 0, np.maximum(valid - 1, 0))
        bound = np.take_along_axis(values, position[..., None], axis=-1)[..., 0]
        bounds.append(np.where(valid > 0, bound, np.nan))
    return bounds[0], bounds[1]


def contain_estimate(
    low: np.ndarray, high: np.ndarray, estimate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Widen an interval that misses its own estimate to reach it.

    A statistic truncated at 0 (a variance component, a reliability, a share) can sit at 0 while
    every resample of its wordings is positive: a resample that repeats wordings cannot reproduce
    a culture effect cancelled exactly by the wording noise, and the bias correction cannot reach
    past the last replicate. The interval "[0.37, 0.78]" beside an estimate of 0.00 says nothing
    true, so the bound on the estimate's side moves to the estimate: the interval then holds
    every value the data and the resamples support. :func:`interval_extended` tells where this
    happened.
    """
    point = np.asarray(estimate, dtype=np.float64)
    return np.fmin(low, point), np.fmax(high, point)


def interval_extended(replicates: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Where :func:`bias_corrected_interval` had to widen the interval to hold the estimate."""
    low, high = bias_corrected_bounds(replicates, estimate)
    point = np.asarray(estimate, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray((point < low) | (point > high))


@contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy's all-NaN and division warnings, expected for units without variation."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def item_mean_interval(
    values: np.ndarray, clip: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over items (axis 0) of untruncated estimates with its Student-t 95% interval; with
    ``clip``, a mean of statistics whose truth lies in [0, 1], taken on the log-odds scale where it
    is clear of both ends, and clipped to [0, 1] (docs/statistics.md, "Study-level intervals").

    A mean of shares truncated at 0 is above 0 as soon as one item's estimate is, so with no
    effect at all it excludes the true 0 ("culture explains 1% [1%, 1%]" in 12 of 12 null
    studies); the untruncated estimates are centred on their truth, and only the mean and its
    bounds are clipped. Each item's share carries the
    noise of its own wordings and residual, so the spread over items estimates the variance of
    the mean from both stages (the first-stage variance estimator of two-stage sampling; Cochran
    1977, section 10.2; Davison & Hinkley 1997, section 3.8); adding the items' own draws would
    count the within-item noise twice.

    A statistic bounded in [0, 1] is skewed away from the bound its mean is near: items' Kendall's
    W of 0.82 on average had a skewness of -1.5 over items (a few items far below, none far
    above), and the symmetric interval over 5 items missed a truth below it on 8.5% of 2,000
    simulated studies and above it on 0.4%, covering 91%. The bounded mean's interval is
    therefore the delta-method interval of its log-odds (:func:`log_odds_interval`), which is the
    Student-t interval to first order in its half-width and leans towards the middle of [0, 1] as
    the items do: 93.3-95.8% in every scenario of benchmarks/interval_coverage.py. Hall's
    transformation of the studentized mean (Hall 1992, "On the removal of skewness by
    transformation", JRSS B 54), g(T) = T + a T^2 + a^2 T^3 / 3 + a / 2 with a = gamma / (3
    sqrt(I)) and gamma the items' own skewness, covered 92.7-92.8% over 5 items (with the moment
    ratio or its k-statistic form for gamma) at 1.5 times the width: 5 items that hold none of
    the tail show no skewness either (benchmarks/RESULTS.md, "Interval coverage over wordings").
    """
    present = np.isfinite(values)
    count = present.sum(axis=0)
    with quiet():
        mean = np.nanmean(values, axis=0)
        error = np.nanstd(values, axis=0, ddof=1) / np.sqrt(count)
        half = stats.t.ppf(1 - (1 - CONFIDENCE) / 2, np.maximum(count - 1, 1)) * error
    half = np.where(count > 1, half, np.nan)
    if not clip:  # a difference between levels, which may be negative
        return mean, mean - half, mean + half
    low, high = log_odds_interval(mean, half)
    return np.clip(mean, 0, 1), np.clip(low, 0, 1), np.clip(high, 0, 1)


def log_odds_interval(estimate: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``estimate +- half`` for a quantity in [0, 1], taken on the log-odds scale where it lies
    inside (0, 1) and left as it is elsewhere (docs/statistics.md, "Study-level intervals").

    The delta method gives log-odds(estimate) +- half / (estimate (1 - estimate)), mapped back
    (the logit interval of a binomial proportion; Agresti 2013, Categorical Data Analysis): to
    first order in ``half`` it is ``estimate +- half``, and it reaches further towards the middle of
    [0, 1] than towards the bound the estimate is near, as a quantity piled up against a bound
    spreads. Where ``estimate +- half`` reaches 0 or 1 it is kept, so that a clipped interval still
    holds a truth on the boundary (a null study's share of 0).

    Args:
        estimate: the point estimates.
        half: the half-widths of their symmetric intervals; NaN where there is none.

    Returns:
        ``(low, high)``, not clipped.
    """
    low, high = estimate - half, estimate + half
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inside = (low > 0) & (high < 1)
        centre = np.log(estimate / (1 - estimate))
        spread = half / (estimate * (1 - estimate))
        low = np.where(inside, 1 / (1 + np.exp(spread - centre)), low)
        high = np.where(inside, 1 / (1 + np.exp(-centre - spread)), high)
    return low, high


def pooled_share_interval(
    components: np.ndarray, totals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The study's pooled share, sum over items of a term's untruncated component over the sum of
    the items' totals, with its ratio-estimator 95% interval, clipped to [0, 1]
    (docs/statistics.md, "Study-level intervals").

    A mean of per-item shares is biased towards the middle when a component is estimated from few
    levels (6 random proxies: df 5): an item's share is a ratio whose numerator and denominator move
    together, and E[X / (X + c)] < E[X] / (E[X] + c). The mean of item shares then sat 0.06-0.08
    below a random factor's population share and its Student-t interval over items covered it
    85-90% of the time (benchmarks/interval_coverage.py). Summing before dividing averages the
    component's noise first. The interval linearises the ratio R = sum(x) / sum(t) (Cochran 1977,
    section 6.4), the weighted least-squares slope of x on t through the origin with weights 1 / t,
    with that regression's HC3 standard error (MacKinnon & White 1985): residuals d_i = x_i - R t_i
    over one minus the item's leverage h_i = t_i / sum(t), SE = sqrt(sum (d_i / (1 - h_i))^2) /
    sum(t), and q = t(0.975, I - 1). The plain linearisation, SE = sqrt(sum d_i^2 / (I (I - 1))) /
    mean(t), left a random factor's share at 90-92.5% over 5 items whose components are skewed
    and heavy-tailed (few levels each); the leverage correction widens it by about
    sqrt(I / (I - 1)) with equal totals. Where R +- q SE lies inside (0, 1), the share is clear of
    both ends and the interval is taken on the logit scale, logit(R) +- q SE / (R (1 - R)) (the
    delta method), mapped back: a component estimated from few levels is skewed, its estimate low
    when its spread is, and the symmetric interval's upper end fell below a true share of 0.5 in
    6% of 200 studies of 5 items with 6 random proxies, the logit interval's in 5%. Elsewhere it
    stays R +- q SE, clipped, so that it reaches a boundary truth (a null study's 0).

    Args:
        components: per item (axis 0) and term (axis 1), the untruncated components; NaN where an
            item lacks the term.
        totals: per item, the sum of its non-negative components, shape (I,).

    Returns:
        ``(share, low, high)``, each of shape (terms,).
    """
    present = np.isfinite(components) & np.isfinite(totals)[:, None]
    count = present.sum(axis=0)
    weights = np.where(present, totals[:, None], 0.0)
    values = np.where(present, components, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = values.sum(axis=0) / weights.sum(axis=0)
        leverage = weights / weights.sum(axis=0)
        residuals = np.where(present, (values - ratio * weights) / (1 - leverage), 0.0)
        error = np.sqrt((residuals**2).sum(axis=0)) / weights.sum(axis=0)
        half = stats.t.ppf(1 - (1 - CONFIDENCE) / 2, np.maximum(count - 1, 1)) * error
        half = np.where(count > 1, half, np.nan)
    low, high = log_odds_interval(ratio, half)
    return np.clip(ratio, 0, 1), np.clip(low, 0, 1), np.clip(high, 0, 1)


def benjamini_hochberg(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (Benjamini & Hochberg 1995); NaN stays NaN."""
    adjusted = np.full(len(pvalues), np.nan)
    present = ~np.isnan(pvalues)
    if present.any():
        adjusted[present] = stats.false_discovery_control(pvalues[present], method="bh")
    return adjusted


def agreement_alphas(tidy: pd.DataFrame, probs: np.ndarray, units: pd.DataFrame) -> pd.DataFrame:
    """Krippendorff's alpha of the modal answers across wordings and across option orders.

    Across wordings the units are the proxies and the coders the wordings; across orders the units
    are proxy x wording cells and the coders the orders. The metric is ordinal for ordinal items and
    nominal for nominal ones (Krippendorff 2011).
    """
    unit_keys = list(UNIT_COLUMNS)
    codes = units.loc[:, unit_keys].reset_index(drop=True)
    codes["group"] = np.arange(len(codes))
    ordinal = (units["scale"] == "ordinal").to_numpy()
    out = codes.loc[:, unit_keys].copy()
    width = probs.shape[1]
    for name, extra in (("alpha_wording", ["proxy"]), ("alpha_order", ["proxy", "wording"])):
        coder = "wording" if name == "alpha_wording" else "order"
        modal = modal_answers(tidy, probs, [*unit_keys, *extra, coder])
        counts = answer_counts(modal, [*unit_keys, *extra], width).reset_index()
        counts = counts.merge(codes, on=unit_keys, how="inner")
        matrix = counts.loc[:, list(range(width))].to_numpy(dtype=np.float64)
        out[name] = krippendorff_alpha(matrix, counts["group"].to_numpy(), ordinal)
    return out
