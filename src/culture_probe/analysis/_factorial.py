"""N-way variance decomposition over every declared factor of a study (robustness.md §3.3 generalised).

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

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._items import bias_corrected_bounds, quiet
from culture_probe.columns import AXIS_PREFIX, CONTEXT_FACTORS
from culture_probe.columns import FORMAT_FACTORS as FORMAT_COLUMNS

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
    "interval_extended",
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
    "verdict",
)
SUMMARY_COLUMNS = (
    "axis",
    "factor",
    "kind",
    "n_items",
    "share",
    "share_low",
    "share_high",
    "interval_extended",
    "p_largest",
    "n_items_leading",
)


@dataclass(frozen=True)
class Term:
    """One random term of the model: its name in tables, the columns whose levels it crosses."""

    name: str
    columns: tuple[str, ...]
    kind: str


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
    than one level, then each context factor crossed with the joint culture cell. Factors with a
    single level are left out: they cannot vary the answer.
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
    if varied:
        terms += [Term(f"culture x {c}", (*varied, c), "culture interaction") for c in context]
    return terms


def _axis_name(column: str) -> str:
    return column[len(AXIS_PREFIX) :]


def term_codes(rows: pd.DataFrame, terms: list[Term]) -> list[np.ndarray]:
    """Integer level codes of every term: one code per observed combination of its columns."""
    frame = rows.reset_index(drop=True)
    return [
        frame.groupby(list(term.columns), sort=True, dropna=False).ngroup().to_numpy()
        for term in terms
    ]


def fit_components(scores: np.ndarray, codes: list[np.ndarray]) -> Components:
    """Type I sums of squares, their expected mean squares and the variance components.

    Each term's dummy columns are orthogonalised against the intercept and the terms before it
    (twice, for numerical stability); the orthonormal directions left, r_t of them, carry the
    term's sequential sum of squares ||Q_t' y||^2 and the coefficients tr(Q_t Q_t' Z_j Z_j') =
    ||Q_t' Z_j||^2 of every component in its expectation. The residual takes the rest.

    Args:
        scores: the responses, shape (n,).
        codes: per term, the level code of every response, shape (n,).

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
    return _solve(df, ss, coefficients)


def fit_balanced(
    scores: np.ndarray, factor_codes: np.ndarray, term_sets: list[tuple[int, ...]]
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
    return _solve(df, ss, coefficients)


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


def pivotal_draws(fit: Components, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Generalised pivotal draws of the non-negative components, shape (n_draws, terms + 1).

    MS_t is replaced by MS_t r_t / W_t, W_t ~ chi2(r_t), and E[MS] = MS solved again; components
    that are not estimable stay NaN.
    """
    keep = np.flatnonzero(fit.df > 0)
    draws = np.full((n_draws, len(fit.df)), np.nan)
    if not len(keep):
        return draws
    chi2 = rng.chisquare(fit.df[keep], size=(n_draws, len(keep)))
    with np.errstate(divide="ignore"):
        pivots = fit.ms[keep] * fit.df[keep] / chi2
    system = fit.expected[np.ix_(keep, keep)]
    raw = pivots @ np.linalg.inv(system).T
    draws[:, keep] = nonnegative_components(system, fit.df[keep], pivots, raw)
    return draws


def shares_of(components: np.ndarray) -> np.ndarray:
    """Each component over the sum of the estimable ones, along the last axis."""
    total = np.nansum(components, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, components / total, np.nan)


def interval(draws: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    and flagged.

    Returns:
        ``(low, high, extended)``.
    """
    values = np.asarray(draws, dtype=np.float64)
    point = np.asarray(estimate, dtype=np.float64)
    tail = (1 - CONFIDENCE) / 2 * 100
    present = np.isfinite(values).any(axis=0)
    low = np.full(values.shape[1:], np.nan)
    high = np.full(values.shape[1:], np.nan)
    if present.any():
        with quiet():
            low[present] = np.nanpercentile(values[:, present], tail, axis=0)
            high[present] = np.nanpercentile(values[:, present], 100 - tail, axis=0)
    replicates = np.moveaxis(values, 0, -1)
    corrected_low, corrected_high = bias_corrected_bounds(replicates, point)
    low, high = np.fmin(low, corrected_low), np.fmax(high, corrected_high)
    with np.errstate(invalid="ignore"):
        extended = np.isfinite(point) & ((point < low) | (point > high))
    return np.fmin(low, point), np.fmax(high, point), np.asarray(extended)


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
    """One item x axis: its factor rows and its pivotal share draws (columns = ``factors``)."""

    table: pd.DataFrame
    factors: list[str]
    kinds: list[str]
    share_draws: np.ndarray


def unit_decomposition(
    rows: pd.DataFrame, item_id: str, axis: str, n_draws: int, rng: np.random.Generator
) -> UnitFit | None:
    """The factor rows of one item x axis (culture rows with a score); None without any factor."""
    terms = unit_terms(rows, axis)
    if not terms:
        return None
    balanced = _is_balanced(rows, terms)
    pooled = False
    scores = rows["score"].to_numpy(dtype=np.float64)
    if balanced:
        columns = sorted({c for t in terms for c in t.columns})
        codes = np.column_stack([term_codes(rows, [Term(c, (c,), "")])[0] for c in columns])
        sets = [tuple(columns.index(c) for c in t.columns) for t in terms]
        fit = fit_balanced(scores, codes, sets)
    else:
        affordable = _affordable(terms, rows)
        pooled = len(affordable) < len(terms)
        terms = affordable
        fit = fit_components(scores, term_codes(rows, terms))
    if not np.isfinite(fit.raw[-1]):
        fit = _saturated(fit)
    names = [*(t.name for t in terms), RESIDUAL]
    kinds = [*(t.kind for t in terms), RESIDUAL]
    draws = pivotal_draws(fit, n_draws, rng)
    share = shares_of(fit.var)
    share_draws = shares_of(draws)
    var_low, var_high, _ = interval(draws, fit.var)
    var_high = np.fmax(np.fmin(var_high, MAX_SCORE_VARIANCE), fit.var)
    share_low, share_high, extended = interval(share_draws, share)
    table = pd.DataFrame(
        {
            "item_id": item_id,
            "axis": axis,
            "factor": names,
            "kind": kinds,
            "columns": [*(":".join(t.columns) for t in terms), ""],
            "n_levels": [*(_levels(rows, t) for t in terms), len(rows)],
            "df": fit.df,
            # a term the design leaves no degrees of freedom (or a residual it uses up) has no
            # component, so no share: the flag says so rather than a share of 0
            "estimable": np.isfinite(fit.var),
            "ss": fit.ss,
            "ms": fit.ms,
            "var": fit.var,
            "var_low": var_low,
            "var_high": var_high,
            "share": share,
            "share_low": share_low,
            "share_high": share_high,
            "interval_extended": extended,
            "p_largest": largest_share(share_draws, names),
            "n_rows": len(rows),
            "balanced": balanced,
            "method": _method(balanced, pooled),
        }
    )
    return UnitFit(table, names, kinds, share_draws)


def _affordable(terms: list[Term], rows: pd.DataFrame) -> list[Term]:
    """The terms an incomplete design can afford: the orthogonalisation costs about n p^2 for n
    responses and p dummy columns, so past :data:`MAX_DENSE_WORK` the "culture x" interactions,
    which hold most of the columns, pool into the residual (the table's ``method`` says so)."""
    width = sum(_levels(rows, term) for term in terms)
    if len(rows) * width * width <= MAX_DENSE_WORK:
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


def _levels(rows: pd.DataFrame, term: Term) -> int:
    return int(rows.groupby(list(term.columns), dropna=False).ngroups)


def _is_balanced(rows: pd.DataFrame, terms: list[Term]) -> bool:
    """Every combination of the factors' levels present, each as often."""
    columns = sorted({c for t in terms for c in t.columns})
    counts = rows.groupby(columns, dropna=False).size()
    full = int(np.prod([rows[c].nunique(dropna=False) for c in columns]))
    return len(counts) == full and counts.nunique() == 1


def factor_tables(
    tidy: pd.DataFrame, item_codes: dict[str, int], n_draws: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``factor_stats``, ``factor_verdicts`` and ``factor_summary`` of the culture rows.

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
        )
    stats = pd.concat([f.table for f in fits], ignore_index=True)
    verdicts = pd.DataFrame([unit_verdict(f.table) for f in fits], columns=list(VERDICT_COLUMNS))
    summary = study_summary(fits, n_draws, seed)
    return stats.loc[:, list(FACTOR_COLUMNS)], verdicts, summary


def unit_verdict(table: pd.DataFrame) -> dict[str, Any]:
    """Which factor explains the most answer variance in one item x axis, and how surely.

    "<factor> dominates" when it is the largest in at least 95% of the pivotal draws, "<factor>
    leads" otherwise; the residual (omitted interactions and noise) takes no part but is reported.
    """
    factors = table.loc[(table["kind"] != RESIDUAL) & table["share"].notna()]
    residual = table.loc[table["kind"] == RESIDUAL, "share"]
    base = {
        "item_id": table["item_id"].iat[0],
        "axis": table["axis"].iat[0],
        "residual_share": float(residual.iat[0]) if len(residual) else np.nan,
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


def _verdict_text(factor: str, p_largest: float) -> str:
    if p_largest >= DOMINANCE:
        return f"{factor} dominates"
    return f"{factor} leads (largest in {p_largest:.0%} of draws)"


def study_summary(fits: list[UnitFit], n_draws: int, seed: int) -> pd.DataFrame:
    """Per axis and factor: the mean of the item shares with its two-stage interval."""
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
    for fit in fits:
        for name, kind in zip(fit.factors, fit.kinds, strict=True):
            if name not in kinds:
                factors.append(name)
                kinds[name] = kind
    position = {name: index for index, name in enumerate(factors)}
    point = np.full((len(fits), len(factors)), np.nan)
    draws = np.full((len(fits), n_draws, len(factors)), np.nan)
    for row, fit in enumerate(fits):
        columns = [position[name] for name in fit.factors]
        share = fit.table["share"].to_numpy(dtype=np.float64)
        point[row, columns] = share
        draws[row][:, columns] = _recentred(fit.share_draws, share)
    rng = np.random.default_rng([seed, 24, len(fits)])
    items = rng.integers(0, len(fits), size=(n_draws, len(fits)))
    picks = rng.integers(0, n_draws, size=(n_draws, len(fits)))
    with quiet():
        estimate = np.nanmean(point, axis=0)
        resampled = np.nanmean(draws[items, picks], axis=1)
    low, high, extended = interval(resampled, estimate)
    leading = largest_share(resampled, factors)
    verdicts = [unit_verdict(fit.table).get("dominant_factor") for fit in fits]
    return [
        {
            "axis": axis,
            "factor": name,
            "kind": kinds[name],
            "n_items": int(np.isfinite(point[:, index]).sum()),
            "share": estimate[index],
            "share_low": low[index],
            "share_high": high[index],
            "interval_extended": bool(extended[index]),
            "p_largest": leading[index],
            "n_items_leading": sum(v == name for v in verdicts),
        }
        for index, name in enumerate(factors)
    ]


def _recentred(draws: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Shift each factor's pivotal draws so that their median is the item's estimate.

    The draws of a share sit below its estimate (the long upper tail of a few-df pivot inflates
    the total); one item's interval allows for that (:func:`interval`), but a mean over 100 items
    of such draws lies wholly below the mean of the estimates: a study interval of [54%, 60%]
    around 60%. Recentred draws keep each item's spread and lose the shift.
    """
    with quiet():
        shift = estimate - np.nanmedian(draws, axis=0)
    return np.asarray(np.clip(draws + np.nan_to_num(shift), 0.0, 1.0))


def summary_entries(summary: pd.DataFrame, verdicts: pd.DataFrame) -> dict[str, Any]:
    """The ``factors`` entry of ``summary.json``: per axis, shares with intervals and the verdict."""
    out: dict[str, Any] = {}
    for axis, rows in summary.groupby("axis", sort=True):
        shares = {
            str(row["factor"]): {
                "kind": row["kind"],
                "estimate": row["share"],
                "ci_low": row["share_low"],
                "ci_high": row["share_high"],
                "interval_extended": bool(row["interval_extended"]),
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
        out[str(axis)] = {
            "n_items": int(unit_rows["item_id"].nunique()),
            "shares": shares,
            "dominant_factor": leader,
            "verdict": verdict,
            "item_verdicts": {
                str(r["item_id"]): str(r["verdict"]) for _, r in unit_rows.iterrows()
            },
        }
    return out
