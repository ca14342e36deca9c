"""N-way variance decomposition over every declared factor of a study
(docs/statistics.md#culture-against-wording-the-variance-decomposition generalised).

A study crosses proxy axes (region x religion, ...) with context factors: paraphrase, framing, the
format factors (enumerator, separator, instruction, shots), option order, language and seed. Per
item x axis, the culture rows' scores follow the random-effects model

    score = mu + sum_t u_t[level of term t] + e,   u_t ~ N(0, s2_t),   e ~ N(0, s2_e),

with one term per proxy axis, per interaction of proxy axes, per context factor with more than one
level, and per "culture x <factor>" interaction (the joint culture cell, all proxy axes together,
crossed with that factor: the wording contrast of the two-way split generalised). Interactions left
out of the model (paraphrase x order, ...) pool into the residual ``e``.

Estimation (:func:`fit_components`): sequential (Type I) sums of squares in the order above and
their expected mean squares from traces, E[SS_t] = sum_j tr(A_t Z_j Z_j') s2_j + r_t s2_e with A_t
the projection on what term t adds to the terms before it; solving E[MS] = MS gives the components
(Henderson's Method III with Type I reductions, as SAS ``PROC VARCOMP METHOD=TYPE1``; Searle, Casella
& McCulloch 1992, §5.5), kept >= 0 by a non-negative least-squares solve that pools the mean
square of a component set to 0 with those its expectation then equals (Thompson 1962), so that no
component exceeds what its own mean square allows. On balanced cells the sums of squares are those of
``anova_lm`` and the components the ANOVA method of moments (Brennan 2001); on incomplete designs,
such as a budgeted fraction (:mod:`culture_probe.budget`), the estimates stay unbiased where REML
would need an iterative fit per bootstrap draw; a term the fraction confounds with earlier ones gets
no degrees of freedom and a NaN component ("not estimable") instead of a wrong one.

Intervals: generalised pivotal quantities (Weerahandi 1993; Burdick, Borror & Montgomery 2005,
"Design and Analysis of Gauge R&R Studies", ch. 5): each mean square is replaced by
MS_t r_t / W_t with W_t ~ chi2(r_t) drawn independently, the same non-negative solve gives a
draw of every component and share, and :func:`interval` reads the 95% interval off the draws.
The pivots are exact for single components of balanced normal designs; shares mix components, and
on unbalanced designs the Type I mean squares are only approximately scaled chi-squares
(Satterthwaite), so the simulation in ``benchmarks/factorial_budget.py`` checks the coverage.
The same draws give ``p_largest``, the share of draws in which a factor explains the most
variance, which grades the verdict.

Study level: a factor's share is the mean of its item shares (items weigh equally, as
``two_stage_aggregates`` does for the two-way split); its interval resamples items with replacement
and gives each drawn item one of its pivotal draws (a two-stage bootstrap, Field & Welsh 2007).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._items import (
    bias_corrected_bounds,
    item_mean_interval,
    pooled_share_interval,
    quiet,
)
from culture_probe.columns import AXIS_PREFIX, CONTEXT_FACTORS, FACTOR, FIXED_FACTORS
from culture_probe.columns import FORMAT_FACTORS as FORMAT_COLUMNS

FIXED = "fixed"
RANDOM = "random"

AXIS_SEPARATOR = " x "
PROXY_SEPARATOR = "+"
RESIDUAL = "residual"
CONSTANT_FORMAT = "default"
CONFIDENCE = 0.95
#: p_largest at or above which a leading factor "dominates" rather than merely "leads"
DOMINANCE = 0.95
#: relative singular value below which a direction of a term's dummy columns counts as already
#: spanned by the terms before it
RANK_TOLERANCE = 1e-9
#: n p^2 above which an incomplete design leaves its "culture x" interactions in the residual
MAX_DENSE_WORK = 2e10
#: the largest variance of a score in [0, 1] (Popoviciu's inequality), which every component is
#: a part of: the upper end of a component's interval stops there (a one-df pivot, two option
#: orders, reaches 1 / chi2(1) and would report variances of 10 or more)
MAX_SCORE_VARIANCE = 0.25

FACTOR_COLUMNS = (
    *UNIT_COLUMNS,
    "factor",
    "kind",
    "effect",
    "columns",
    "n_levels",
    "df",
    "estimable",
    "ss",
    "ms",
    "var",
    "var_low",
    "var_high",
    "share",
    "share_low",
    "share_high",
    "raw_share",
    "interval_extended",
    "below_error",
    "p_largest",
    "n_rows",
    "balanced",
    "method",
)
VERDICT_COLUMNS = (
    *UNIT_COLUMNS,
    "dominant_factor",
    "dominant_share",
    "dominant_share_low",
    "dominant_share_high",
    "p_largest",
    "runner_up",
    "residual_share",
    "residual_share_low",
    "residual_share_high",
    "residual_largest",
    "verdict",
)
LEVEL_COLUMNS = (
    "scope",
    *UNIT_COLUMNS,
    "factor",
    "level",
    "n_rows",
    "n_items",
    "mean",
    "effect",
    "effect_low",
    "effect_high",
    "df_error",
)
SUMMARY_COLUMNS = (
    "axis",
    "factor",
    "kind",
    "effect",
    "n_items",
    "share",
    "share_low",
    "share_high",
    "interval_extended",
    "below_error",
    "p_largest",
    "n_items_leading",
)


@dataclass(frozen=True)
class Term:
    """One term of the model: its name in tables, the columns whose levels it crosses, its kind.

    ``effect`` is :data:`FIXED` when every column is one of :data:`FIXED_FACTORS`, else
    :data:`RANDOM`.
    """

    name: str
    columns: tuple[str, ...]
    kind: str

    @property
    def effect(self) -> str:
        return FIXED if all(c in FIXED_FACTORS for c in self.columns) else RANDOM


@dataclass(frozen=True)
class Components:
    """What :func:`fit_components` estimates; arrays over the terms, then the residual last.

    Attributes:
        df: degrees of freedom r_t each term adds (0: confounded, not estimable) and df_e.
        ss: sequential sums of squares.
        expected: E[MS] = expected @ s2, the expected-mean-square matrix (rows: mean squares).
        var: the non-negative components (:func:`nonnegative_components`); NaN where not
            estimable.
        raw: the untruncated solution of E[MS] = MS (NaN where not estimable).
    """

    df: np.ndarray
    ss: np.ndarray
    expected: np.ndarray
    var: np.ndarray
    raw: np.ndarray

    @property
    def ms(self) -> np.ndarray:
        """Mean squares, NaN where a term adds no degrees of freedom."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.df > 0, self.ss / self.df, np.nan)


def with_design_columns(tidy: pd.DataFrame) -> pd.DataFrame:
    """Add the columns a plan made before crossed studies and format factors lacks.

    ``axis_<axis>`` for each proxy axis: the proxy itself for a single-axis unit, the matching part
    of a combined id (``IN+muslim`` under ``region x religion``) for a crossed one; the format
    columns constant (``"default"``). Columns already present are kept as they are.

    Example:
        >>> frame = pd.DataFrame({"axis": ["region x religion"], "proxy": ["IN+muslim"]})
        >>> with_design_columns(frame)[["axis_region", "axis_religion", "separator"]].iloc[0].tolist()
        ['IN', 'muslim', 'default']
    """
    out = tidy.copy()
    for column in FORMAT_COLUMNS:
        if column not in out.columns:
            out[column] = CONSTANT_FORMAT
    axes = out["axis"].astype(str)
    for axis in axes.unique():
        names = axis.split(AXIS_SEPARATOR)
        rows = (axes == axis).to_numpy()
        proxies = out.loc[rows, "proxy"].astype(str)
        parts = proxies.str.split(PROXY_SEPARATOR, regex=False) if len(names) > 1 else None
        split = parts is not None and bool(parts.map(len).eq(len(names)).all())
        for position, name in enumerate(names):
            column = AXIS_PREFIX + name
            if column in tidy.columns:
                continue
            if column not in out.columns:
                out[column] = pd.Series(pd.NA, index=out.index, dtype=object)
            values = parts.str[position] if split and parts is not None else proxies
            out.loc[rows, column] = values.to_numpy()
    return out


def unit_terms(rows: pd.DataFrame, axis: str) -> list[Term]:
    """The model's terms for one item x axis, in the order of the sequential sums of squares.

    Proxy axes first, then their interactions (all orders), then each context factor with more
    than one level, then every pair of those context factors (``enumerator x order``), then each
    context factor crossed with the joint culture cell. Factors with a single level are left out:
    they cannot vary the answer. What no term holds (three-way and higher interactions of context
    factors, culture x context x context, noise) is the residual.
    """
    axis_columns = [AXIS_PREFIX + name for name in str(axis).split(AXIS_SEPARATOR)]
    varied = [c for c in axis_columns if c in rows.columns and rows[c].nunique(dropna=True) > 1]
    terms = [Term(_axis_name(c), (c,), "proxy") for c in varied]
    for size in range(2, len(varied) + 1):
        for group in combinations(varied, size):
            name = AXIS_SEPARATOR.join(_axis_name(c) for c in group)
            terms.append(Term(name, group, "proxy interaction"))
    context = [c for c in CONTEXT_FACTORS if c in rows.columns and rows[c].nunique() > 1]
    terms += [Term(c, (c,), "context") for c in context]
    terms += [
        Term(AXIS_SEPARATOR.join(pair), pair, "context interaction")
        for pair in combinations(context, 2)
    ]
    if varied:
        terms += [Term(f"culture x {c}", (*varied, c), "culture interaction") for c in context]
    return terms


def _axis_name(column: str) -> str:
    return column[len(AXIS_PREFIX) :]


def term_codes(rows: pd.DataFrame, terms: list[Term]) -> list[np.ndarray]:
    """Integer level codes of every term: one code per observed combination of its columns, in
    sorted order of the combinations (as ``groupby(...).ngroup()``)."""
    codes = column_codes(rows, sorted({c for t in terms for c in t.columns}))
    return [combined_code(codes, term.columns) for term in terms]


def column_codes(rows: pd.DataFrame, columns: list[str]) -> dict[str, np.ndarray]:
    """Each column's values as integer codes in sorted order of the values (missing last)."""
    return {c: pd.factorize(rows[c], sort=True, use_na_sentinel=False)[0] for c in columns}


def combined_code(codes: dict[str, np.ndarray], columns: tuple[str, ...]) -> np.ndarray:
    """One code per observed combination of the columns' codes, in sorted order."""
    stacked = np.column_stack([codes[c] for c in columns])
    return np.asarray(np.unique(stacked, axis=0, return_inverse=True)[1]).ravel()


def fit_components(
    scores: np.ndarray, codes: list[np.ndarray], restricted: np.ndarray | None = None
) -> Components:
    """Type I sums of squares, their expected mean squares and the variance components.

    Each term's dummy columns are orthogonalised against the intercept and the terms before it
    (twice, for numerical stability); the orthonormal directions left, r_t of them, carry the
    term's sequential sum of squares ||Q_t' y||^2 and the coefficients tr(Q_t Q_t' Z_j Z_j') =
    ||Q_t' Z_j||^2 of every component in its expectation. The residual takes the rest.

    Args:
        scores: the responses, shape (n,).
        codes: per term, the level code of every response, shape (n,).
        restricted: which term's component may enter which mean square
            (:func:`restricted_contributions`); all, when None.

    Returns:
        The :class:`Components`; the residual's component is NaN when the model saturates the
        data (no residual degrees of freedom: the last term then holds the residual, as with one
        replicate in the two-way split).
    """
    y = np.asarray(scores, dtype=np.float64)
    n = len(y)
    dummies = [_dummy(code) for code in codes]
    basis = np.full((n, 1), 1.0 / np.sqrt(n))
    n_terms = len(codes)
    df = np.zeros(n_terms + 1)
    ss = np.zeros(n_terms + 1)
    coefficients = np.zeros((n_terms + 1, n_terms + 1))
    for index, dummy in enumerate(dummies):
        directions = _new_directions(dummy, basis)
        df[index] = directions.shape[1]
        ss[index] = float(((directions.T @ y) ** 2).sum())
        for other, z in enumerate(dummies):
            coefficients[index, other] = float(((directions.T @ z) ** 2).sum())
        coefficients[index, n_terms] = df[index]
        basis = np.hstack([basis, directions])
    df[n_terms] = n - basis.shape[1]
    ss[n_terms] = max(float(((y - y.mean()) ** 2).sum()) - ss[:n_terms].sum(), 0.0)
    coefficients[n_terms, n_terms] = df[n_terms]
    return _solve(df, ss, _restrict(coefficients, restricted))


def restricted_contributions(terms: list[Term]) -> np.ndarray:
    """Which component may enter which expected mean square: allowed[t, j] (the mixed model with
    effects that sum to 0 over every fixed factor).

    A term's effects sum to 0 over each fixed factor it contains (the restricted mixed model;
    Scheffe 1959, ch. 8; Searle, Casella & McCulloch 1992, section 4.6): ``culture x order`` sums
    to 0 over the two orders, ``enumerator x order`` over the enumerators and over the orders. So
    term j's effects lie in the pure-effect spaces that contain all of its fixed factors, and they
    enter the mean square of term t only where t holds every fixed factor of j: culture x order
    enters the order's mean square, not the culture's. (The unrestricted model subtracted the
    culture x order component from culture's and, on the default values study, put culture at
    exactly 0 on every item while the culture F test was significant on all 14.) Random terms
    without a fixed factor enter every margin, as before. Exact on balanced cells, where each
    term adds only its own pure-effect space; on incomplete ones a sum-to-zero effect projects a
    little on the margins this leaves out.
    """
    allowed = np.ones((len(terms), len(terms)), dtype=bool)
    for j, source in enumerate(terms):
        fixed = {c for c in source.columns if c in FIXED_FACTORS}
        for t, target in enumerate(terms):
            allowed[t, j] = t == j or fixed <= set(target.columns)
    return allowed


def _restrict(coefficients: np.ndarray, restricted: np.ndarray | None) -> np.ndarray:
    if restricted is None:
        return coefficients
    out = coefficients.copy()
    size = len(restricted)
    out[:size, :size] = np.where(restricted, out[:size, :size], 0.0)
    return out


def fit_balanced(
    scores: np.ndarray,
    factor_codes: np.ndarray,
    term_sets: list[tuple[int, ...]],
    restricted: np.ndarray | None = None,
) -> Components:
    """:func:`fit_components` for a complete grid with equal counts per cell, from marginal means.

    In a balanced factorial the projections on cell means commute, P_S P_T = P_(S & T), so the
    data space splits into orthogonal pure-effect spaces E_U, one per set U of factors, of
    dimension prod_(u in U)(L_u - 1), with ||E_U y||^2 = sum over rows of the inclusion-exclusion
    effect sum_(W <= U) (-1)^(|U| - |W|) mean_W (Scheffe 1959, ch. 4). A term with factor set A
    adds the spaces E_U of the subsets U of A that no earlier term contains; Z_j Z_j' is
    (N / L_j) P_(A_j), so the coefficient of s2_j in E[SS_t] is (N / L_j) times the dimensions of
    the added U that lie inside A_j. The same numbers as the orthogonalisation, without an
    n x p matrix: a 1,000,000-response study stays within seconds.

    Args:
        scores: the responses, shape (n,).
        factor_codes: integer level codes, shape (n, k), one column per factor.
        term_sets: per term, the indices of the factors it crosses.
        restricted: which term's component may enter which mean square
            (:func:`restricted_contributions`); all, when None.
    """
    y = np.asarray(scores, dtype=np.float64)
    n = len(y)
    levels = factor_codes.max(axis=0) + 1 if n else np.zeros(0, dtype=np.int64)
    means: dict[tuple[int, ...], np.ndarray] = {(): np.full(n, y.mean())}
    seen: set[tuple[int, ...]] = {()}
    n_terms = len(term_sets)
    df = np.zeros(n_terms + 1)
    ss = np.zeros(n_terms + 1)
    coefficients = np.zeros((n_terms + 1, n_terms + 1))
    sizes = [float(np.prod([levels[f] for f in term])) for term in term_sets]
    for index, term in enumerate(term_sets):
        added = [u for u in _subsets(tuple(sorted(term))) if u not in seen]
        seen.update(added)
        for subset in added:
            dimension = float(np.prod([levels[f] - 1 for f in subset]))
            df[index] += dimension
            ss[index] += float((_pure_effect(y, factor_codes, levels, subset, means) ** 2).sum())
            for other, other_term in enumerate(term_sets):
                if set(subset) <= set(other_term):
                    coefficients[index, other] += n / sizes[other] * dimension
        coefficients[index, n_terms] = df[index]
    df[n_terms] = n - 1 - df[:n_terms].sum()
    ss[n_terms] = max(float(((y - y.mean()) ** 2).sum()) - ss[:n_terms].sum(), 0.0)
    coefficients[n_terms, n_terms] = df[n_terms]
    return _solve(df, ss, _restrict(coefficients, restricted))


def _subsets(factors: tuple[int, ...]) -> list[tuple[int, ...]]:
    found: list[tuple[int, ...]] = [()]
    for factor in factors:
        found += [(*subset, factor) for subset in found]
    return sorted(found, key=len)


def _pure_effect(
    y: np.ndarray,
    codes: np.ndarray,
    levels: np.ndarray,
    subset: tuple[int, ...],
    means: dict[tuple[int, ...], np.ndarray],
) -> np.ndarray:
    effect = np.zeros(len(y))
    for part in _subsets(subset):
        if part not in means:
            cell = np.ravel_multi_index(tuple(codes[:, f] for f in part), [levels[f] for f in part])
            totals = np.bincount(cell, weights=y)
            counts = np.bincount(cell)
            means[part] = (totals / np.maximum(counts, 1))[cell]
        effect += (-1) ** (len(subset) - len(part)) * means[part]
    return effect


def _dummy(code: np.ndarray) -> np.ndarray:
    matrix = np.zeros((len(code), int(code.max()) + 1 if len(code) else 0))
    matrix[np.arange(len(code)), code] = 1.0
    return matrix


def _new_directions(dummy: np.ndarray, basis: np.ndarray) -> np.ndarray:
    remainder = dummy - basis @ (basis.T @ dummy)
    remainder = remainder - basis @ (basis.T @ remainder)
    if remainder.size == 0:
        return np.zeros((len(dummy), 0))
    left, singular, _ = np.linalg.svd(remainder, full_matrices=False)
    scale = max(float(np.linalg.norm(dummy, 2)), 1.0)
    return np.asarray(left[:, singular > RANK_TOLERANCE * scale * np.sqrt(len(dummy))])


def _solve(df: np.ndarray, ss: np.ndarray, coefficients: np.ndarray) -> Components:
    """Solve E[MS] = MS for the estimable components (terms with df > 0; the residual if df_e > 0).

    ``raw`` is the plain solution; ``var`` the non-negative one (:func:`nonnegative_components`).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = coefficients / df[:, None]
    estimable = df > 0
    ms = np.where(estimable, ss / np.where(estimable, df, 1.0), np.nan)
    raw = np.full(len(df), np.nan)
    var = np.full(len(df), np.nan)
    keep = np.flatnonzero(estimable)
    if len(keep):
        system = expected[np.ix_(keep, keep)]
        raw[keep] = np.linalg.solve(system, ms[keep])
        solved = nonnegative_components(system, df[keep], ms[keep][None, :], raw[keep][None, :])
        var[keep] = solved[0]
    return Components(df=df, ss=ss, expected=expected, var=var, raw=raw)


def nonnegative_components(
    expected: np.ndarray, df: np.ndarray, ms: np.ndarray, raw: np.ndarray
) -> np.ndarray:
    """Components >= 0 that fit E[MS] = MS best, by least squares weighted by degrees of freedom.

    Setting a negative solution to 0 and keeping the others is not enough: the others were solved
    with it, and a main effect whose equation subtracts several interactions' mean squares
    (s2_C = (MS_C - MS_CP - MS_CE - MS_CO + 2 MS_E) / 24 on a 2 x 4 x 3 x 2 grid) gains what the
    negative interactions were given, up to a component larger than its own mean square. Here a
    component set to 0 leaves its equation to be fitted by the others: a mean square whose
    expectation then equals another's is pooled with it, df-weighted (Thompson 1962's pooling of
    a negative interaction into the residual), so a component never exceeds MS_t over its
    coefficient in E[MS_t]. Rows whose plain solution ``raw`` is already >= 0 keep it.

    Args:
        expected: the E[MS] matrix of the estimable terms, (k, k).
        df: their degrees of freedom, (k,).
        ms: mean squares, one row per draw, (d, k).
        raw: the plain solutions, (d, k).
    """
    out = np.maximum(raw, 0.0)
    weight = np.sqrt(df)[:, None]
    design = expected * weight
    for row in np.flatnonzero((raw < 0).any(axis=1) & np.isfinite(ms).all(axis=1)):
        out[row] = optimize.nnls(design, ms[row] * weight[:, 0])[0]
    return np.asarray(out)


@dataclass(frozen=True)
class Draws:
    """Draws of every component (columns as in :class:`Components`), shape (n_draws, terms + 1).

    Attributes:
        var: the non-negative components.
        raw: the untruncated solutions of E[MS] = MS.
    """

    var: np.ndarray
    raw: np.ndarray


def pivotal_draws(
    fit: Components,
    n_draws: int,
    rng: np.random.Generator,
    fixed: np.ndarray | None = None,
    pivot_df: np.ndarray | None = None,
) -> Draws:
    """Draws of the components: generalised pivots for random terms, a parametric bootstrap for
    fixed ones.

    A random term's MS_t is replaced by MS_t r_t / W_t, W_t ~ chi2(r_t) (Weerahandi 1993). A fixed
    term's levels are not a sample, so its mean square is not a scaled central chi-square but
    MS_t = ||z||^2 / r_t with z ~ N(mu, s2_err I), s2_err being E[MS_t] without the term's own
    part: MS_t ~ s2_err chi2'(r_t, ||mu||^2 / s2_err) / r_t. Its draw is s2_err* chi2'(r_t,
    S / s2_err*) / r_t, with S = r_t max(MS_t - s2_err_hat, 0) the unbiased estimate of ||mu||^2
    and s2_err* read off the random terms' pivotal draw (a parametric bootstrap of z = mu_hat +
    noise): centred on MS_t, its signal fixed, and wide only as far as the random facets
    (wordings, residual) make it. The chi2(1) pivot gave a two-order factor intervals 0.82-0.92
    wide. Then E[MS] = MS is solved again; components that are not estimable stay NaN.

    Args:
        fit: the fitted components.
        n_draws: draws.
        rng: random generator.
        fixed: per column of ``fit`` (terms, then the residual), whether the term is fixed.
    """
    keep, spread = _estimable(fit, pivot_df)
    if not len(keep):
        return _draws(fit, keep, n_draws)
    df, ms = fit.df[keep], fit.ms[keep]
    chi2 = rng.chisquare(spread, size=(n_draws, len(keep)))
    with np.errstate(divide="ignore"):
        pivots = ms * spread / chi2
    components, raw = _solved(fit, keep, pivots)
    is_fixed = np.zeros(len(fit.df), dtype=bool) if fixed is None else np.asarray(fixed, bool)
    chosen = is_fixed[keep]
    if chosen.any():
        system = fit.expected[np.ix_(keep, keep)]
        own = np.diag(system)
        error = components @ system.T - components * own
        point = np.nan_to_num(fit.var[keep])
        point_error = point @ system.T - point * own
        signal = df * np.maximum(np.nan_to_num(ms - point_error), 0.0)  # ||mu||^2, unbiased
        drawn_error = np.maximum(error[:, chosen], np.finfo(float).tiny)
        with np.errstate(over="ignore"):  # an error at rounding noise: lambda is capped
            noncentrality = np.minimum(signal[chosen] / drawn_error, 1e12)
        spread = rng.noncentral_chisquare(df[chosen], noncentrality)
        pivots[:, chosen] = drawn_error * spread / df[chosen]
        components, raw = _solved(fit, keep, pivots)
    return _draws(fit, keep, n_draws, components, raw)


def bootstrap_draws(
    fit: Components,
    n_draws: int,
    rng: np.random.Generator,
    fixed: np.ndarray,
    pivot_df: np.ndarray | None = None,
) -> Draws:
    """A parametric bootstrap of the components at their fitted values: what a fixed term's share
    interval is read from.

    Every mean square is drawn from the distribution the fitted model gives it: a random term's
    as E[MS_t] chi2(r_t) / r_t at the non-negative components, a fixed term's as s2_err
    chi2'(r_t, lambda) / r_t with lambda = r_t max(MS_t - s2_err, 0) / s2_err (s2_err: E[MS_t]
    without the term's own part), and E[MS] = MS is solved again per draw. The generalised pivots
    of :func:`pivotal_draws` suit a random term's own share, but a fixed share's uncertainty is
    that of the other terms in its denominator, and their pivots MS r / chi2(r) lean upward (for
    r = 3 the median is 1.27 MS): the percentile interval of a fixed order share of 0.80 then sat
    too low and covered 83%, the span with the bias-corrected interval 99%. The bootstrap draws are
    centred on the fitted model and its percentile interval covers 96%
    (benchmarks/interval_coverage.py; docs/factorial-analysis.md).

    Args:
        fit: the fitted components.
        n_draws: draws.
        rng: random generator.
        fixed: per column of ``fit`` (terms, then the residual), whether the term is fixed.
        pivot_df: per column, the chi-square degrees of freedom of a random term's mean square
            (:func:`kurtosis_degrees`); its df where None.
    """
    keep, spread = _estimable(fit, pivot_df)
    if not len(keep):
        return _draws(fit, keep, n_draws)
    df, ms = fit.df[keep], fit.ms[keep]
    system = fit.expected[np.ix_(keep, keep)]
    fitted = np.nan_to_num(fit.var[keep])
    expected = system @ fitted
    resampled = expected * rng.chisquare(spread, size=(n_draws, len(keep))) / spread
    chosen = np.asarray(fixed, dtype=bool)[keep]
    if chosen.any():
        error = np.maximum((expected - fitted * np.diag(system))[chosen], np.finfo(float).tiny)
        with np.errstate(over="ignore"):
            noncentrality = np.minimum(df[chosen] * np.maximum(ms[chosen] - error, 0) / error, 1e12)
        spread_fixed = rng.noncentral_chisquare(
            df[chosen], noncentrality, size=(n_draws, int(chosen.sum()))
        )
        resampled[:, chosen] = error * spread_fixed / df[chosen]
    return _draws(fit, keep, n_draws, *_solved(fit, keep, resampled))


def _estimable(fit: Components, pivot_df: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The columns with degrees of freedom, and the chi-square degrees of freedom of their mean
    squares (``pivot_df`` where given, :func:`kurtosis_degrees`)."""
    keep = np.flatnonzero(fit.df > 0)
    spread = fit.df[keep] if pivot_df is None else np.asarray(pivot_df, dtype=np.float64)[keep]
    return keep, spread.astype(np.float64)


def _solved(
    fit: Components, keep: np.ndarray, mean_squares: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """E[MS] = MS solved for each draw of the mean squares (rows): the non-negative components
    and the untruncated ones."""
    system = fit.expected[np.ix_(keep, keep)]
    raw = mean_squares @ np.linalg.inv(system).T
    return nonnegative_components(system, fit.df[keep], mean_squares, raw), raw


def _draws(
    fit: Components,
    keep: np.ndarray,
    n_draws: int,
    components: np.ndarray | None = None,
    raw: np.ndarray | None = None,
) -> Draws:
    """Draws over every column of ``fit``: the solved ones at ``keep``, NaN elsewhere."""
    draws = Draws(np.full((n_draws, len(fit.df)), np.nan), np.full((n_draws, len(fit.df)), np.nan))
    if components is not None and raw is not None:
        draws.var[:, keep], draws.raw[:, keep] = components, raw
    return draws


def kurtosis_degrees(
    scores: np.ndarray, codes: list[np.ndarray], terms: list[Term], fit: Components
) -> np.ndarray:
    """Per column (terms, then the residual): the degrees of freedom of each mean square's pivot,
    cut for a random main effect whose levels are drawn from a heavy-tailed or skewed population.

    The mean square of L levels drawn with excess kurtosis gamma has Var[MS] / E[MS]^2 = 2 / df +
    gamma / L (Box 1953; as :func:`~culture_probe.analysis._anova.effective_degrees` does for the
    two-way split's error terms), a chi-square with df' = 2 / (2 / df + gamma / L) degrees of
    freedom. gamma is the levels' sample excess kurtosis (G2, bias-corrected; Joanes & Gill 1998)
    of their mean scores, kept >= 0. With 6 proxies drawn from a skewed population the chi-square(5)
    pivot left the region share's interval at 89% (benchmarks/interval_coverage.py).
    """
    pivot_df = fit.df.astype(np.float64).copy()
    for index, (term, code) in enumerate(zip(terms, codes, strict=True)):
        if term.effect == FIXED or len(term.columns) != 1 or fit.df[index] < 3:
            continue
        sums = np.bincount(code, weights=scores)
        counts = np.bincount(code)
        means = sums[counts > 0] / counts[counts > 0]
        if len(means) < 4 or np.ptp(means) == 0:
            continue
        gamma = max(float(stats.kurtosis(means, bias=False)), 0.0)
        pivot_df[index] = 2 / (2 / fit.df[index] + gamma / len(means))
    return pivot_df


def fixed_effect_scale(terms: list[Term], levels: list[int], df: np.ndarray) -> np.ndarray:
    """Per column (terms, then the residual): what turns the solved component into a variance.

    For a random term the component is the variance. For a fixed term with L cells (L_a L_b for
    an interaction), the expected mean squares hold sum(alpha^2) / df in the place of a random
    component, and the variance of its effects is sum(alpha^2) / L (Hays 1963; the fixed-effect
    variance of Olejnik & Algina 2003's generalized omega squared): the factor df / L, 1/2 for two
    option orders.
    """
    scale = np.ones(len(terms) + 1)
    for index, term in enumerate(terms):
        if term.effect == FIXED and df[index] > 0:
            scale[index] = df[index] / levels[index]
    return scale


def raw_shares(raw: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Untruncated shares along the last axis (the residual last): each term's untruncated
    component over the sum of the non-negative ones, the residual taking what the terms leave.

    Where no component was truncated this is :func:`shares_of`; where one was, its raw share is
    negative and the residual's larger, so that a mean over items is centred on the mean of the
    true shares (:func:`~culture_probe.analysis._items.item_mean_interval`).
    """
    total = np.nansum(var, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(total > 0, raw / total, np.nan)
    terms = out[..., :-1]
    out[..., -1] = np.where(np.isfinite(out[..., -1]), 1 - np.nansum(terms, axis=-1), np.nan)
    return np.asarray(out)


def shares_of(components: np.ndarray) -> np.ndarray:
    """Each component over the sum of the estimable ones, along the last axis."""
    total = np.nansum(components, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, components / total, np.nan)


def interval(
    draws: np.ndarray, estimate: np.ndarray, widen: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """95% interval from pivotal draws along axis 0: the span of the percentile interval and the
    bias-corrected one, holding the estimate.

    The pivotal draws of a share are skewed away from its estimate: a factor with one or two
    degrees of freedom (two option orders, two separators) has a chi-square pivot with a long upper
    tail, which inflates the total in many draws and pulls the other shares down. On a balanced
    grid (benchmarks/factorial_budget.py) the plain percentile interval then covered the planted
    shares of the interactions and the residual 78-86% of the time (its upper end too low), while
    the bias-corrected interval (quantiles Phi(2 z0 +- z), z0 = Phi^-1(share of draws below the
    estimate); Efron 1981) overcorrected them (its lower end too high) and still covered the main
    effects well. Each fails on one side only, so the interval spans both; the coverage this gives
    is in benchmarks/RESULTS.md. An interval that still misses its estimate is widened to reach it
    (unless ``widen`` is False) and flagged.

    Returns:
        ``(low, high, extended)``.
    """
    values = np.asarray(draws, dtype=np.float64)
    point = np.asarray(estimate, dtype=np.float64)
    low, high = percentiles(values)
    replicates = np.moveaxis(values, 0, -1)
    corrected_low, corrected_high = bias_corrected_bounds(replicates, point)
    low, high = np.fmin(low, corrected_low), np.fmax(high, corrected_high)
    with np.errstate(invalid="ignore"):
        extended = np.isfinite(point) & ((point < low) | (point > high))
    if not widen:
        return low, high, np.asarray(extended)
    return np.fmin(low, point), np.fmax(high, point), np.asarray(extended)


def share_interval(
    raw_draws: np.ndarray, raw_share: np.ndarray, share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """95% interval of each share from the draws of the untruncated shares (:func:`raw_shares`),
    clipped to [0, 1]; never widened.

    The draws of the non-negative shares cannot reach a boundary: with ten terms, a residual
    whose true share is 1 (no effect at all) would need every other draw at 0 at once, and its
    interval covered 1 on 22% of null items. The untruncated draws fall on both sides of a
    boundary truth, and the clipped interval reaches it. The bounds span the percentile and the
    bias-corrected interval of the draws (:func:`interval`). ``extended`` flags a printed share
    outside its interval, which is left as it is.

    Returns:
        ``(low, high, outside)``.
    """
    low, high, _ = interval(raw_draws, raw_share, widen=False)
    return _clipped(low, high, share)


def percentile_share_interval(
    raw_draws: np.ndarray, share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """95% percentile interval of each share from bootstrap draws of the untruncated shares,
    clipped to [0, 1]; a fixed term's (:func:`bootstrap_draws`).

    Returns:
        ``(low, high, outside)`` as :func:`share_interval`.
    """
    return _clipped(*percentiles(raw_draws), share)


def percentiles(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile bounds of draws along axis 0 (NaN where a column has none)."""
    values = np.asarray(draws, dtype=np.float64)
    tail = (1 - CONFIDENCE) / 2 * 100
    low = np.full(values.shape[1:], np.nan)
    high = np.full(values.shape[1:], np.nan)
    present = np.isfinite(values).any(axis=0)
    if present.any():
        with quiet():
            low[present] = np.nanpercentile(values[:, present], tail, axis=0)
            high[present] = np.nanpercentile(values[:, present], 100 - tail, axis=0)
    return low, high


def _clipped(
    low: np.ndarray, high: np.ndarray, share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds clipped to [0, 1], and whether the printed share lies outside them."""
    low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
    with np.errstate(invalid="ignore"):
        outside = np.isfinite(share) & ((share < low - 1e-12) | (share > high + 1e-12))
    return low, high, np.asarray(outside)


def largest_share(shares: np.ndarray, names: list[str]) -> np.ndarray:
    """Share of draws in which each factor has the largest share (the residual takes no part)."""
    contenders = shares.copy()
    contenders[:, [i for i, name in enumerate(names) if name == RESIDUAL]] = np.nan
    usable = np.isfinite(contenders).any(axis=1)
    counts = np.zeros(shares.shape[1])
    if usable.any():
        winners = np.nanargmax(np.where(np.isfinite(contenders[usable]), contenders[usable], -1), 1)
        counts += np.bincount(winners, minlength=shares.shape[1])
    return counts / max(len(shares), 1)


@dataclass(frozen=True)
class UnitFit:
    """One item x axis: its factor rows and its share draws (columns = ``factors``): of the
    non-negative shares, and of the untruncated ones (:func:`raw_shares`)."""

    table: pd.DataFrame
    factors: list[str]
    kinds: list[str]
    effects: list[str]
    share_draws: np.ndarray
    raw_share_draws: np.ndarray
    levels: pd.DataFrame
    component_draws: np.ndarray | None = None
    total_draws: np.ndarray | None = None
    own_bounds: np.ndarray | None = None


def unit_decomposition(
    rows: pd.DataFrame, item_id: str, axis: str, n_draws: int, rng: np.random.Generator
) -> UnitFit | None:
    """The factor rows of one item x axis (culture rows with a score); None without any factor."""
    terms = unit_terms(rows, axis)
    if not terms:
        return None
    columns = sorted({c for t in terms for c in t.columns})
    by_column = column_codes(rows, columns)
    codes = [combined_code(by_column, t.columns) for t in terms]
    balanced = _is_balanced(by_column, columns)
    pooled = False
    scores = rows["score"].to_numpy(dtype=np.float64)
    if balanced:
        grid = np.column_stack([by_column[c] for c in columns])
        sets = [tuple(columns.index(c) for c in t.columns) for t in terms]
        fit = fit_balanced(scores, grid, sets, restricted_contributions(terms))
    else:
        affordable = _affordable(terms, codes, len(rows))
        pooled = len(affordable) < len(terms)
        codes = [code for term, code in zip(terms, codes, strict=True) if term in affordable]
        terms = affordable
        fit = fit_components(scores, codes, restricted_contributions(terms))
    levels = [int(code.max()) + 1 if len(code) else 0 for code in codes]
    if not np.isfinite(fit.raw[-1]):
        fit = _saturated(fit)
    names = [*(t.name for t in terms), RESIDUAL]
    kinds = [*(t.kind for t in terms), RESIDUAL]
    effects = [*(t.effect for t in terms), RANDOM]
    scale = fixed_effect_scale(terms, levels, fit.df)
    pivot_df = kurtosis_degrees(scores, codes, terms, fit)
    fixed = np.array([e == FIXED for e in effects])
    draws = pivotal_draws(fit, n_draws, rng, fixed, pivot_df)
    var, var_draws = fit.var * scale, draws.var * scale
    raw_share = raw_shares(fit.raw * scale, var)
    raw_draws = raw_shares(draws.raw * scale, var_draws)
    # the printed share and its interval come from one map, applied to the estimate and to each
    # pivotal draw: the untruncated share clipped to [0, 1] (docs/statistics.md, "Factor shares")
    share = np.clip(raw_share, 0.0, 1.0)
    share_draws = shares_of(var_draws)
    var_low, var_high, _ = interval(var_draws, var)
    share_low, share_high, extended = share_interval(raw_draws, raw_share, share)
    if fixed.any():
        resampled = bootstrap_draws(fit, n_draws, rng, fixed, pivot_df)
        bounds = fixed_intervals(resampled, scale, fixed, var, share)
        var_low[fixed], var_high[fixed], share_low[fixed], share_high[fixed] = bounds[:4]
        extended[fixed] = bounds[4]
    own_bounds = own_mean_square_bounds(fit) * scale
    below = below_error(
        np.isfinite(raw_share) & np.isfinite(own_bounds), share_high, len(share_high) - 1
    )
    share_high[below] = np.minimum(own_bounds[below] / np.nansum(var), 1.0)
    var_high[below] = np.fmax(var_high[below], own_bounds[below])
    var_high = np.fmax(np.fmin(var_high, MAX_SCORE_VARIANCE), var)
    table = pd.DataFrame(
        {
            "item_id": item_id,
            "axis": axis,
            "factor": names,
            "kind": kinds,
            "effect": effects,
            "columns": [*(":".join(t.columns) for t in terms), ""],
            "n_levels": [*levels, len(rows)],
            "df": fit.df,
            # a term the design leaves no degrees of freedom (or a residual it uses up) has no
            # component, so no share: the flag says so rather than a share of 0
            "estimable": np.isfinite(fit.var),
            "ss": fit.ss,
            "ms": fit.ms,
            "var": var,
            "var_low": var_low,
            "var_high": var_high,
            "share": share,
            "share_low": share_low,
            "share_high": share_high,
            "raw_share": raw_share,
            "interval_extended": extended,
            "below_error": below,
            "p_largest": largest_share(share_draws, names),
            "n_rows": len(rows),
            "balanced": balanced,
            "method": _method(balanced, pooled),
        }
    )
    levels = level_effects(rows, terms, codes, fit, (item_id, axis))
    return UnitFit(
        table,
        names,
        kinds,
        effects,
        share_draws,
        raw_draws,
        levels,
        draws.raw * scale,
        np.nansum(var_draws, axis=-1),
        own_bounds,
    )


def own_mean_square_bounds(fit: Components) -> np.ndarray:
    """Per column (terms, then the residual): the 97.5% upper bound of each component read from
    its own mean square alone, MS_t r_t / chi2_0.025(r_t) over the component's coefficient in
    E[MS_t]; NaN where the term has no degrees of freedom.

    E[MS_t] is the term's own part plus the non-negative parts of the terms below it, so whatever
    those are, P(component <= bound) >= P(E[MS_t] <= MS_t r_t / chi2_0.025(r_t)) = 97.5%. It is
    the interval's upper end where the generalised pivots put the whole untruncated interval below
    0 (:func:`below_error`): a term whose mean square lies far under its error's (culture x
    paraphrase at 1/150 of the residual mean square in a study whose residual holds large
    three-way context interactions) would otherwise be printed "0% [0%, 0%]", a certainty the data
    do not give.
    """
    estimable = (fit.df > 0) & np.isfinite(fit.ms)
    df = np.where(estimable, fit.df, 1.0)
    own = np.diag(fit.expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = fit.ms * df / stats.chi2.ppf((1 - CONFIDENCE) / 2, df) / own
    return np.where(estimable & (own > 0), bound, np.nan)


def below_error(present: np.ndarray, share_high: np.ndarray, residual: int) -> np.ndarray:
    """The terms present (never the residual, at column ``residual``) whose interval, clipped to
    [0, 1], is the single point 0: every draw of their untruncated share was at or below 0, their
    mean square under its error's."""
    with np.errstate(invalid="ignore"):
        below = np.asarray(present, dtype=bool) & (share_high <= 0)
    below[residual] = False
    return np.asarray(below)


def fixed_intervals(
    resampled: Draws, scale: np.ndarray, fixed: np.ndarray, var: np.ndarray, share: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed terms' component and share intervals: the percentile intervals of the parametric
    bootstrap (:func:`bootstrap_draws`), the component's holding its estimate.

    Returns:
        For the columns ``fixed`` selects: ``(var_low, var_high, share_low, share_high,
        outside)``, ``outside`` flagging a printed share outside its interval.
    """
    var_draws = resampled.var * scale
    low, high = percentiles(var_draws[:, fixed])
    share_low, share_high, outside = percentile_share_interval(
        raw_shares(resampled.raw * scale, var_draws)[:, fixed], share[fixed]
    )
    return np.fmin(low, var[fixed]), np.fmax(high, var[fixed]), share_low, share_high, outside


def level_effects(
    rows: pd.DataFrame,
    terms: list[Term],
    codes: list[np.ndarray],
    fit: Components,
    unit: tuple[str, str],
) -> pd.DataFrame:
    """Each level of each fixed factor: its mean and its effect (level mean minus the mean of the
    level means) with a 95% t interval whose error is what the random facets add.

    A level effect is the effect over the unit's own proxies, for wordings like these: the
    wordings are a sample, the proxies are the ones the study chose. Where one wording factor
    varies, the interval is the t interval over wordings of the level's effect within each
    wording (:func:`_contrasts_by_wording`). Otherwise (paraphrases crossed with framings, or no
    wording varied) its error is E[MS_t] without the term's own part and without the parts of
    terms that hold a proxy axis (culture x order averages out over the unit's proxies), read
    off the expected-mean-square solve as s2_err = sum_j a_j MS_j (:func:`_error_mean_square`);
    a level effect then has variance s2_err ((1 - 1/L)^2 / n_l + sum_(k != l) 1 / (L^2 n_k)),
    (L - 1) s2_err / N on balanced cells, on the Satterthwaite (1946) degrees of freedom (sum a_j
    MS_j)^2 / sum (a_j MS_j)^2 / df_j; docs/statistics.md, "Fixed factors". Counting culture x
    order as error as well (the proxies random) made a quasi-F error of MS_PO + MS_CO - MS_E on
    2-3 degrees of freedom where no interaction was planted, and the interval covered 99-100%.
    """
    records: list[dict[str, Any]] = []
    scores = rows["score"].to_numpy(dtype=np.float64)
    for index, term in enumerate(terms):
        if term.effect != FIXED or len(term.columns) != 1 or fit.df[index] <= 0:
            continue
        code = codes[index]
        counts = np.bincount(code).astype(np.float64)
        means = np.bincount(code, weights=scores) / counts
        n_levels = len(counts)
        by_wording = _contrasts_by_wording(rows, code, n_levels)
        if by_wording is not None:
            variance, df_error = by_wording
        else:
            error, df_error = _error_mean_square(fit, index, proxy_terms(terms))
            spread = (1 - 1 / n_levels) ** 2 / counts
            spread = spread + ((1 / counts).sum() - 1 / counts) / n_levels**2
            variance = error * spread
        with np.errstate(invalid="ignore"):
            half = stats.t.ppf(1 - (1 - CONFIDENCE) / 2, df_error) * np.sqrt(variance)
        labels = pd.factorize(rows[term.columns[0]], sort=True, use_na_sentinel=False)[1]
        effect = means - means.mean()
        for level in range(n_levels):
            records.append(
                {
                    "scope": "item",
                    "item_id": unit[0],
                    "axis": unit[1],
                    "factor": term.name,
                    "level": str(labels[level]),
                    "n_rows": int(counts[level]),
                    "n_items": 1,
                    "mean": means[level],
                    "effect": effect[level],
                    "effect_low": effect[level] - half[level],
                    "effect_high": effect[level] + half[level],
                    "df_error": df_error,
                }
            )
    return pd.DataFrame(records, columns=list(LEVEL_COLUMNS))


#: the random facets a level effect is computed within: the wordings (seeds are noise within one)
WORDING_FACTORS = tuple(name for name in CONTEXT_FACTORS if FACTOR[name].kind == "wording")


def _contrasts_by_wording(
    rows: pd.DataFrame, code: np.ndarray, n_levels: int
) -> tuple[np.ndarray, float] | None:
    """Each level's effect within every wording that shows all the levels, and the variance of
    their mean over the W wordings (Student-t on W - 1 degrees of freedom); None where not one
    wording factor alone varies, or fewer than 2 wordings show every level.

    The wording is the random facet: a level's effect is computed where the wording is held
    fixed, averaged over the unit's proxies and the other fixed factors, and its spread over
    wordings is its error, the level's own (a written answer varies more than a first-token one,
    and a pooled error would give the noisy level the quiet levels' interval). With two levels
    this is the exact interval on MS_(paraphrase x order); with more, each level keeps W - 1
    degrees of freedom of its own (Boik 1981's separate error term per contrast).
    """
    varied = [c for c in WORDING_FACTORS if c in rows.columns and rows[c].nunique() > 1]
    if len(varied) != 1:
        return None
    wording = pd.factorize(rows[varied[0]], sort=True, use_na_sentinel=False)[0]
    cell = wording * n_levels + code
    n_wordings = int(wording.max()) + 1
    sums = np.bincount(
        cell, weights=rows["score"].to_numpy(np.float64), minlength=n_wordings * n_levels
    )
    counts = np.bincount(cell, minlength=n_wordings * n_levels)
    shown = counts.reshape(n_wordings, n_levels)
    complete = (shown > 0).all(axis=1)
    if complete.sum() < 2:
        return None
    means = sums.reshape(n_wordings, n_levels)[complete] / shown[complete]
    effects = means - means.mean(axis=1, keepdims=True)
    kept = len(effects)
    return effects.var(axis=0, ddof=1) / kept, float(kept - 1)


def proxy_terms(terms: list[Term]) -> np.ndarray:
    """Which of ``terms`` hold a proxy axis (the proxies' main effects and interactions, and
    culture x context), as a mask over the terms."""
    return np.array([any(c.startswith(AXIS_PREFIX) for c in t.columns) for t in terms], bool)


def _error_mean_square(
    fit: Components, index: int, proxies: np.ndarray | None = None
) -> tuple[float, float]:
    """E[MS_t] without term t's own part and without the terms in ``proxies`` (a mask over the
    terms; those average out over the unit's own proxies), and its Satterthwaite degrees of
    freedom from the same quantity written as sum_j a_j MS_j; NaN where it is 0.

    The error is read at the non-negative components, and its degrees of freedom are those of the
    combination of mean squares it then is: a component fitted at 0 pools its mean square with the
    ones whose expectation then equals it (Thompson 1962), so the pooled error keeps their degrees
    of freedom. (The plain solution of a combination that subtracts mean squares, a_j < 0, can
    fall to a small fraction of the residual's mean square on 1 degree of freedom.) On balanced
    cells with no component at 0 it is the plain combination. The degrees of freedom are kept
    between 1 and the residual's.
    """
    keep = np.flatnonzero(fit.df > 0)
    position = int(np.flatnonzero(keep == index)[0])
    system = fit.expected[np.ix_(keep, keep)]
    row = system[position].copy()
    row[position] = 0.0
    if proxies is not None:
        mask = np.append(np.asarray(proxies, bool), False)
        row[mask[keep]] = 0.0
    df, ms = fit.df[keep], fit.ms[keep]
    weights = _pooled_weights(system, df, row, np.nan_to_num(fit.var[keep]) > 0, position)
    error = float(weights @ ms)
    if not error > 0:
        return float("nan"), float("nan")
    spread = float(np.sum((weights * ms) ** 2 / df))
    ceiling = float(df.max())
    df_error = error**2 / spread if spread > 0 else ceiling
    return error, float(np.clip(df_error, 1.0, ceiling))


def _pooled_weights(
    system: np.ndarray, df: np.ndarray, row: np.ndarray, active: np.ndarray, position: int
) -> np.ndarray:
    """The mean squares' weights in row @ s2 at the non-negative components: with the components
    fitted at 0 left out, the others are the df-weighted least-squares solution
    (:func:`nonnegative_components`), a linear function of the mean squares."""
    active = active.copy()
    active[position] = True
    design = system[:, active]
    weighted = design.T * df
    return np.asarray(row[active] @ np.linalg.solve(weighted @ design, weighted))


def _affordable(terms: list[Term], codes: list[np.ndarray], n_rows: int) -> list[Term]:
    """The terms an incomplete design can afford: the orthogonalisation costs about n p^2 for n
    responses and p dummy columns, so past :data:`MAX_DENSE_WORK` the "culture x" interactions,
    which hold most of the columns, pool into the residual (the table's ``method`` says so)."""
    width = sum(int(code.max()) + 1 for code in codes if len(code))
    if n_rows * width * width <= MAX_DENSE_WORK:
        return terms
    return [term for term in terms if term.kind != "culture interaction"]


def _saturated(fit: Components) -> Components:
    """No residual degrees of freedom: the last estimable term holds the residual as well."""
    var = fit.var.copy()
    var[-1] = np.nan
    return Components(df=fit.df, ss=fit.ss, expected=fit.expected, var=var, raw=fit.raw)


def _method(balanced: bool, pooled: bool) -> str:
    if balanced:
        return "anova"
    if pooled:
        return "type I (Henderson III); culture interactions pooled into the residual"
    return "type I (Henderson III)"


def _is_balanced(codes: dict[str, np.ndarray], columns: list[str]) -> bool:
    """Every combination of the factors' levels present, each as often."""
    cells = combined_code(codes, tuple(columns))
    counts = np.bincount(cells)
    full = int(np.prod([int(codes[c].max()) + 1 for c in columns]))
    return len(counts) == full and bool((counts == counts[0]).all())


def factor_tables(
    tidy: pd.DataFrame, item_codes: dict[str, int], n_draws: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``factor_stats``, ``factor_verdicts``, ``factor_summary`` and ``factor_levels`` of the
    culture rows.

    Args:
        tidy: the tidy responses table (design columns are derived when absent).
        item_codes: item id -> integer, so every item's draws depend on the seed and the item only.
        n_draws: pivotal draws per item, and two-stage resamples per axis.
        seed: random seed.
    """
    culture = tidy.loc[(tidy["proxy_kind"] == "culture") & tidy["score"].notna()]
    culture = with_design_columns(culture)
    fits: list[UnitFit] = []
    for (item, axis), rows in culture.groupby(list(UNIT_COLUMNS), sort=True):
        rng = np.random.default_rng([seed, item_codes.get(str(item), 0), 24])
        fitted = unit_decomposition(rows, str(item), str(axis), n_draws, rng)
        if fitted is not None:
            fits.append(fitted)
    if not fits:
        return (
            pd.DataFrame(columns=list(FACTOR_COLUMNS)),
            pd.DataFrame(columns=list(VERDICT_COLUMNS)),
            pd.DataFrame(columns=list(SUMMARY_COLUMNS)),
            pd.DataFrame(columns=list(LEVEL_COLUMNS)),
        )
    table = pd.concat([f.table for f in fits], ignore_index=True)
    verdicts = pd.DataFrame([unit_verdict(f.table) for f in fits], columns=list(VERDICT_COLUMNS))
    summary = study_summary(fits, n_draws, seed)
    return table.loc[:, list(FACTOR_COLUMNS)], verdicts, summary, level_table(fits)


def level_table(fits: list[UnitFit]) -> pd.DataFrame:
    """``factor_levels``: every item's level effects, then per axis, factor and level the mean
    effect over items with its t interval over items (scope ``study``; items resampled as the
    study-level shares are, :func:`~culture_probe.analysis._items.item_mean_interval`)."""
    present = [f.levels for f in fits if not f.levels.empty]
    if not present:
        return pd.DataFrame(columns=list(LEVEL_COLUMNS))
    items = pd.concat(present, ignore_index=True)
    records = []
    for (axis, factor, level), group in items.groupby(["axis", "factor", "level"], sort=True):
        values = group[["mean", "effect"]].to_numpy(dtype=np.float64)
        mean, _, _ = item_mean_interval(values, clip=False)
        _, low, high = item_mean_interval(values[:, 1:], clip=False)
        records.append(
            {
                "scope": "study",
                "item_id": None,
                "axis": axis,
                "factor": factor,
                "level": level,
                "n_rows": int(group["n_rows"].sum()),
                "n_items": len(group),
                "mean": mean[0],
                "effect": mean[1],
                "effect_low": low[0],
                "effect_high": high[0],
                "df_error": len(group) - 1.0,
            }
        )
    study = pd.DataFrame(records, columns=list(LEVEL_COLUMNS))
    return pd.concat([items, study], ignore_index=True).loc[:, list(LEVEL_COLUMNS)]


def unit_verdict(table: pd.DataFrame) -> dict[str, Any]:
    """Which factor explains the most answer variance in one item x axis, and how surely.

    "<factor> dominates" when it is the largest in at least 95% of the pivotal draws, "<factor>
    leads" otherwise; the residual (omitted interactions and noise) takes no part but is reported.
    """
    factors = table.loc[(table["kind"] != RESIDUAL) & table["share"].notna()]
    residual = table.loc[table["kind"] == RESIDUAL]
    base = {
        "item_id": table["item_id"].iat[0],
        "axis": table["axis"].iat[0],
        **_residual_fields(residual, factors),
    }
    if factors.empty:
        return {**base, "verdict": "no estimable factor"}
    ranked = factors.sort_values("share", ascending=False, kind="stable")
    top = ranked.iloc[0]
    return {
        **base,
        "dominant_factor": top["factor"],
        "dominant_share": top["share"],
        "dominant_share_low": top["share_low"],
        "dominant_share_high": top["share_high"],
        "p_largest": top["p_largest"],
        "runner_up": ranked["factor"].iat[1] if len(ranked) > 1 else None,
        "verdict": _verdict_text(str(top["factor"]), float(top["p_largest"])),
    }


def _residual_fields(residual: pd.DataFrame, factors: pd.DataFrame) -> dict[str, Any]:
    """The residual's share with its interval, and whether it is larger than every factor: what
    the model leaves unexplained (higher-order interactions, noise) then outweighs what it
    explains, and a verdict about the leading factor must say so."""
    if residual.empty or not np.isfinite(residual["share"].iat[0]):
        return {"residual_share": np.nan, "residual_largest": False}
    share = float(residual["share"].iat[0])
    largest = float(factors["share"].max()) if not factors.empty else 0.0
    return {
        "residual_share": share,
        "residual_share_low": float(residual["share_low"].iat[0]),
        "residual_share_high": float(residual["share_high"].iat[0]),
        "residual_largest": share > largest,
    }


def _verdict_text(factor: str, p_largest: float) -> str:
    if p_largest >= DOMINANCE:
        return f"{factor} dominates"
    return f"{factor} leads (largest in {p_largest:.0%} of draws)"


def study_summary(fits: list[UnitFit], n_draws: int, seed: int) -> pd.DataFrame:
    """Per axis and factor: the share pooled over items with its interval (:func:`pooled_shares`)."""
    records = []
    by_axis: dict[str, list[UnitFit]] = {}
    for fit in fits:
        by_axis.setdefault(str(fit.table["axis"].iat[0]), []).append(fit)
    for axis, group in sorted(by_axis.items()):
        records += _axis_records(axis, group, n_draws, seed)
    return pd.DataFrame(records, columns=list(SUMMARY_COLUMNS))


def _axis_records(axis: str, fits: list[UnitFit], n_draws: int, seed: int) -> list[dict[str, Any]]:
    factors: list[str] = []
    kinds: dict[str, str] = {}
    effects: dict[str, str] = {}
    for fit in fits:
        for name, kind, effect in zip(fit.factors, fit.kinds, fit.effects, strict=True):
            if name not in kinds:
                factors.append(name)
                kinds[name], effects[name] = kind, effect
    position = {name: index for index, name in enumerate(factors)}
    point = _per_item(fits, position, lambda fit: fit.table["raw_share"].to_numpy(np.float64))
    if len(fits) > 1:
        estimate, low, high, resampled = pooled_shares(fits, position, point)
        below = below_error(np.isfinite(point).any(axis=0), high, position[RESIDUAL])
        high = np.where(below, _pooled_own_bounds(fits, position), high)
    else:  # one item: its own interval, and its draws for p_largest
        table = fits[0].table
        estimate = np.clip(point[0], 0, 1)
        low, high = table["share_low"].to_numpy(), table["share_high"].to_numpy()
        below = table["below_error"].to_numpy(dtype=bool)
        resampled = fits[0].share_draws
    leading = largest_share(resampled, factors)
    verdicts = [unit_verdict(fit.table).get("dominant_factor") for fit in fits]
    return [
        {
            "axis": axis,
            "factor": name,
            "kind": kinds[name],
            "effect": effects[name],
            "n_items": int(np.isfinite(point[:, index]).sum()),
            "share": estimate[index],
            "share_low": low[index],
            "share_high": high[index],
            "interval_extended": False,
            "below_error": bool(below[index]),
            "p_largest": leading[index],
            "n_items_leading": sum(v == name for v in verdicts),
        }
        for index, name in enumerate(factors)
    ]


def item_total(fit: UnitFit) -> float:
    """An item's total variance: the sum of its non-negative components (a share's denominator)."""
    return float(np.nansum(fit.table["var"].to_numpy(dtype=np.float64)))


def _per_item(
    fits: list[UnitFit], position: dict[str, int], values: Callable[[UnitFit], np.ndarray | None]
) -> np.ndarray:
    """Per item (rows) and factor (columns by ``position``): ``values`` of each item's factors;
    NaN where an item lacks the factor or has no values."""
    out = np.full((len(fits), len(position)), np.nan)
    for row, fit in enumerate(fits):
        given = values(fit)
        if given is not None:
            out[row, [position[name] for name in fit.factors]] = given
    return out


def _pooled_own_bounds(fits: list[UnitFit], position: dict[str, int]) -> np.ndarray:
    """Per factor: the items' own-mean-square bounds (:func:`own_mean_square_bounds`) summed over
    the sum of the items' totals, the pooled share's ratio (clipped to [0, 1]); its upper end where
    every item's mean square lies under its error's."""
    bounds = _per_item(fits, position, lambda fit: fit.own_bounds)
    return pooled_share_interval(bounds, np.array([item_total(fit) for fit in fits]))[0]


def pooled_shares(
    fits: list[UnitFit], position: dict[str, int], point: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each factor's share pooled over the items, with the ratio estimator's interval.

    The pooled share of a term is sum_i x_i / sum_i t_i, x_i an item's untruncated component and
    t_i the sum of its non-negative ones; the residual takes what the terms leave (as
    :func:`raw_shares` does for one item). It is the share of all the study's answer variance,
    clipped to [0, 1], and its interval is the ratio estimator's over items
    (:func:`~culture_probe.analysis._items.pooled_share_interval`), which reads the spread between
    items: each item's estimate carries its own wordings' and residual's noise, so the spread holds
    both stages. The mean of item shares sat 0.06-0.08 below a random factor's share (E[X / (X +
    c)] < E[X] / (E[X] + c)) and its t interval covered it 85-90% of the time; spanning the ratio
    interval and the percentiles of the items' summed pivotal draws covered 98.5-99.5% (sums of
    independent inverse chi-square pivots have a long upper tail), and those percentiles alone put
    a null study's residual low (benchmarks/interval_coverage.py; docs/statistics.md, "Study-level
    intervals"). The summed draws are still returned: ``p_largest`` reads them.

    Args:
        fits: the items of one axis, each with ``component_draws`` and ``total_draws``.
        position: factor name -> column of ``point``; the residual is :data:`RESIDUAL`.
        point: per item and factor, the untruncated share (NaN where the item lacks it).

    Returns:
        ``(share, low, high, draws)``; draws of the pooled untruncated shares, (n_draws, factors).
    """
    residual = position[RESIDUAL]
    totals = np.array([item_total(fit) for fit in fits])
    share, low, high = pooled_share_interval(point * totals[:, None], totals)
    n_draws = min(len(f.total_draws) for f in fits if f.total_draws is not None)
    components = np.zeros((n_draws, point.shape[1]))
    denominator = np.zeros(n_draws)
    for fit in fits:
        if fit.component_draws is None or fit.total_draws is None:
            continue
        columns = [position[name] for name in fit.factors]
        components[:, columns] += np.nan_to_num(fit.component_draws[:n_draws])
        denominator += fit.total_draws[:n_draws]
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = components / denominator[:, None]
    terms = np.delete(np.arange(draws.shape[1]), residual)
    draws[:, residual] = 1 - draws[:, terms].sum(axis=1)
    return share, low, high, draws


def summary_entries(
    summary: pd.DataFrame, verdicts: pd.DataFrame, levels: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The ``factors`` entry of ``summary.json``: per axis, shares with intervals, the verdict and
    the study-level effects of the fixed factors' levels (``levels``: factor -> level -> effect)."""
    out: dict[str, Any] = {}
    for axis, rows in summary.groupby("axis", sort=True):
        shares = {
            str(row["factor"]): {
                "kind": row["kind"],
                "effect": row["effect"],
                "estimate": row["share"],
                "ci_low": row["share_low"],
                "ci_high": row["share_high"],
                "interval_extended": bool(row["interval_extended"]),
                "below_error": bool(row["below_error"]),
                "p_largest": row["p_largest"],
                "n_items_leading": int(row["n_items_leading"]),
            }
            for _, row in rows.iterrows()
        }
        contenders = rows.loc[(rows["kind"] != RESIDUAL) & rows["share"].notna()]
        leader = None
        verdict = "no estimable factor"
        if not contenders.empty:
            top = contenders.sort_values("share", ascending=False, kind="stable").iloc[0]
            leader = str(top["factor"])
            verdict = _verdict_text(leader, float(top["p_largest"]))
        unit_rows = verdicts.loc[verdicts["axis"] == axis]
        residual = shares.get(RESIDUAL, {}).get("estimate")
        explained = [v["estimate"] for v in shares.values() if v["kind"] != RESIDUAL]
        largest = max((v for v in explained if v is not None and np.isfinite(v)), default=0.0)
        out[str(axis)] = {
            "n_items": int(unit_rows["item_id"].nunique()),
            "shares": shares,
            "residual_largest": bool(residual is not None and residual > largest),
            "levels": _level_entries(levels, str(axis)),
            "dominant_factor": leader,
            "verdict": verdict,
            "item_verdicts": {
                str(r["item_id"]): str(r["verdict"]) for _, r in unit_rows.iterrows()
            },
        }
    return out


def _level_entries(levels: pd.DataFrame | None, axis: str) -> dict[str, Any]:
    if levels is None or levels.empty:
        return {}
    rows = levels.loc[(levels["scope"] == "study") & (levels["axis"] == axis)]
    out: dict[str, Any] = {}
    for _, row in rows.iterrows():
        out.setdefault(str(row["factor"]), {})[str(row["level"])] = {
            "mean": row["mean"],
            "estimate": row["effect"],
            "ci_low": row["effect_low"],
            "ci_high": row["effect_high"],
            "n_items": int(row["n_items"]),
        }
    return out
