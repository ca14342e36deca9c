"""Proxy x wording variance decomposition with wording as a random facet
(docs/statistics.md#culture-against-wording-the-variance-decomposition; docs/statistics.md#reliability).

All functions take cell means of shape (..., C, P) so that the same code serves the point estimates
(G units) and the paraphrase bootstrap (G units x B resamples).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy import stats

Arrays = dict[str, np.ndarray]
RELIABILITY_TARGET = 0.8
#: wordings past which Erho2 = 0.8 counts as unreachable (``paraphrases_needed_for_0_8`` NaN)
MAX_PARAPHRASES = 100


def decompose(
    means: np.ndarray,
    within_ss: np.ndarray,
    n_replicates: float,
    df_within: float | None = None,
    context_ss: np.ndarray | None = None,
) -> Arrays:
    """Sums of squares, mean squares and random-effects variance components.

    Two-way proxy (C) x wording (P) ANOVA with n replicates per cell and expected mean squares of
    the unrestricted random model (Cronbach et al. 1972; Brennan 2001): E[MS_C] = s2_E' + n s2_CP
    + P n s2_C, E[MS_P] = s2_E' + n s2_CP + C n s2_P, E[MS_CP] = s2_E' + n s2_CP. Components are
    method-of-moments estimates truncated at 0; ``raw_var_*`` keep the untruncated estimates,
    which are unbiased and which study-level means average (docs/statistics.md, "Study-level
    intervals"). With one replicate the interaction and the residual are confounded:
    ``var_interaction`` then holds both and ``var_residual`` is NaN.

    The replicates of a cell are its K context combinations (option order x enumerator x seed
    ...), crossed with every cell. An effect of a combination that is the same in every cell (an
    order effect, an enumerator x order effect), or the same in every wording of a proxy (culture
    x order) or for every proxy under a wording (paraphrase x order), drops out of the proxy x
    wording contrasts of the cell means, so it is not in E[MS_CP], but it fills the within-cell
    MS_E (``ms_residual``). The interaction's error term (``ms_error``, E = s2_E') is therefore
    the proxy x wording x combination residual of the within-cell deviations, SS_E' = SS_E -
    ``context_ss`` (:func:`context_sum_of_squares`; the residual of the model cell + proxy x
    combination + wording x combination), on (C - 1)(P - 1)(K - 1) degrees of freedom: s2_CP =
    (MS_CP - MS_E') / n. ``var_residual`` stays MS_E, the within-cell variance with those effects
    in it, so the components still add up to the total. Without ``context_ss`` (cells with
    missing responses, or replicates that no context column tells apart) MS_E' = MS_E, the whole
    within-cell mean square: then such context effects bias s2_CP low.

    Args:
        means: cell means, shape (..., C, P).
        within_ss: within-cell sums of squares, shape (..., C, P).
        n_replicates: replicates per cell; with unequal cell counts their harmonic mean
            (unweighted means, :mod:`~culture_probe.analysis._design`).
        df_within: degrees of freedom of ``within_ss``, sum(n_cp - 1); None for C P (n - 1).
        context_ss: :func:`context_sum_of_squares` of the replicates' deviations, shape (...);
            None where the cells do not each hold the same n combinations once.

    Returns:
        Arrays of shape (...) keyed ``ss_proxy``, ``df_proxy``, ``ms_proxy`` and so on for
        ``wording``, ``interaction``, ``residual`` (within cells) and ``error`` (the
        interaction's error term), and ``var_proxy`` ... ``var_residual``.
    """
    n = n_replicates
    n_proxies, n_wordings = means.shape[-2:]
    grand = means.mean(axis=(-2, -1), keepdims=True)
    proxy_means = means.mean(axis=-1, keepdims=True)
    wording_means = means.mean(axis=-2, keepdims=True)
    interaction = means - proxy_means - wording_means + grand
    out: Arrays = {
        "ss_proxy": n_wordings * n * ((proxy_means - grand) ** 2).sum(axis=(-2, -1)),
        "ss_wording": n_proxies * n * ((wording_means - grand) ** 2).sum(axis=(-2, -1)),
        "ss_interaction": n * (interaction**2).sum(axis=(-2, -1)),
        "ss_residual": within_ss.sum(axis=(-2, -1)),
    }
    dfs = {
        "proxy": n_proxies - 1,
        "wording": n_wordings - 1,
        "interaction": (n_proxies - 1) * (n_wordings - 1),
        "residual": n_proxies * n_wordings * (n - 1) if df_within is None else df_within,
    }
    out["ss_error"] = out["ss_residual"]
    dfs["error"] = dfs["residual"]
    if context_ss is not None:  # K = n combinations, each once in every cell
        out["ss_error"] = np.maximum(out["ss_residual"] - context_ss, 0.0)
        dfs["error"] = (n_proxies - 1) * (n_wordings - 1) * (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for source, df in dfs.items():
            out[f"df_{source}"] = np.full(out["ss_proxy"].shape, float(df))
            out[f"ms_{source}"] = (
                out[f"ss_{source}"] / df if df > 0 else np.full_like(out["ss_proxy"], np.nan)
            )
    replicated = dfs["residual"] > 0
    ms_e = np.nan_to_num(out["ms_error"]) if dfs["error"] > 0 else np.zeros_like(out["ms_proxy"])
    out["raw_var_proxy"] = (out["ms_proxy"] - out["ms_interaction"]) / (n_wordings * n)
    out["raw_var_wording"] = (out["ms_wording"] - out["ms_interaction"]) / (n_proxies * n)
    out["raw_var_interaction"] = (out["ms_interaction"] - ms_e) / n
    for source in ("proxy", "wording", "interaction"):
        out[f"var_{source}"] = np.maximum(out[f"raw_var_{source}"], 0)
    out["var_residual"] = (
        out["ms_residual"] if replicated else np.full_like(out["ms_proxy"], np.nan)
    )
    return out


def context_sum_of_squares(deviations: np.ndarray) -> np.ndarray:
    """The sum of squares of the within-cell deviations d that the proxy x wording contrasts do
    not hold: P sum_ck dbar_ck^2 + C sum_pk dbar_pk^2 - C P sum_k dbar_k^2, the combinations'
    means and their interactions with proxy and with wording (:func:`decompose`).

    Args:
        deviations: each replicate's deviation from its cell mean, shape (..., C, P, K).

    Returns:
        Shape (...).
    """
    n_proxies, n_wordings = deviations.shape[-3:-1]
    by_proxy = deviations.mean(axis=-2)  # (..., C, K)
    by_wording = deviations.mean(axis=-3)  # (..., P, K)
    overall = deviations.mean(axis=(-3, -2))  # (..., K)
    return np.asarray(
        n_wordings * (by_proxy**2).sum(axis=(-2, -1))
        + n_proxies * (by_wording**2).sum(axis=(-2, -1))
        - n_proxies * n_wordings * (overall**2).sum(axis=-1)
    )


def resampled_context_ss(deviations: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """:func:`context_sum_of_squares` of every wording resample, shape (G, B), from how often
    each wording is drawn, without building the resampled deviations (G, B, C, P, K).

    Args:
        deviations: shape (G, C, P, K).
        draws: wording indices, shape (G, B, P).
    """
    n_units, n_proxies, n_wordings, n_contexts = deviations.shape
    counts = (draws[..., None] == np.arange(n_wordings)).sum(axis=-2).astype(np.float64)
    by_cell = deviations.transpose(0, 2, 1, 3).reshape(n_units, n_wordings, -1)
    by_proxy = np.matmul(counts, by_cell) / n_wordings  # (G, B, C K)
    by_proxy = by_proxy.reshape(*counts.shape[:2], n_proxies, n_contexts)
    by_wording = (deviations.mean(axis=1) ** 2).sum(axis=-1)  # (G, P)
    overall = by_proxy.mean(axis=-2)  # (G, B, K)
    return np.asarray(
        n_wordings * (by_proxy**2).sum(axis=(-2, -1))
        + n_proxies * np.einsum("gbp,gp->gb", counts, by_wording)
        - n_proxies * n_wordings * (overall**2).sum(axis=-1)
    )


def error_kurtosis(
    within_ss: np.ndarray, within_fourth: np.ndarray, counts: np.ndarray, units: np.ndarray
) -> np.ndarray:
    """Excess kurtosis of each unit's within-cell errors, from the residuals around each cell
    mean: the larger of the unit's own and the study's pooled over its units, kept >= 0.

    A residual r = e_1 - mean(e) of a cell of n independent errors (variance s2, fourth moment
    m4) has E[r^2] = s2 (n - 1) / n and E[r^4] - 3 E[r^2]^2 = (m4 - 3 s2^2) c4(n), c4(n) = a^4 +
    (n - 1) / n^4 with a = (n - 1) / n (expanding (a e_1 - (e_2 + ... + e_n) / n)^4). Each unit's
    residuals are standardised by its own s2_u = sum r^2 / sum(n - 1): its own gamma_u = (sum
    r^4 / s2_u^2 - 3 sum_i c2_i) / sum_i c4_i over its responses i, c2 = a^2, and the pooled one
    sums both over the units, so that a unit weighs by its responses, not by its noise, and one
    without variation adds nothing. Normal errors give gamma = 0 up to noise; it is floored at 0
    so that the normal-theory degrees of freedom are the least an interval assumes
    (:func:`effective_degrees`).

    The errors of one study come from one model scored one way and share their shape, while one
    item's few hundred residuals understate a heavy tail: with Student-t(3) errors and 10% of
    responses missing (benchmarks/interval_coverage.py, ``misspecified``), an item's own estimate
    left rho2(1)'s interval at 91.2-93.0% and the culture share's at 93.4-94.5% (three seeds of
    2,000 items); the pooled one over the 5 items of a study at 92.8-93.8% and 93.2-94.8%, since an
    item whose own residuals hold an extreme error needs its own, larger value; the larger of the
    two, 93.2-94.7% and 94.0-95.3%. Normal errors keep their coverage (95.5% and 94.3% in
    ``culture``).

    Args:
        within_ss: per cell, the sum of squared residuals.
        within_fourth: per cell, the sum of fourth powers of the residuals.
        counts: per cell, its responses n.
        units: per cell, the integer code of its unit, 0 to G - 1.

    Returns:
        gamma per unit, shape (G,); a unit without residuals takes the pool (0 where no unit
        has any).
    """
    n = np.asarray(counts, dtype=np.float64)
    codes = np.asarray(units, dtype=np.int64)
    size = int(codes.max()) + 1 if len(codes) else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n > 0, (n - 1) / n, 0.0)
        c2 = n * a**2  # per cell: its n responses' E[r^2] / s2, squared
        c4 = n * (a**4 + np.where(n > 0, (n - 1) / n**4, 0.0))
        s2 = np.bincount(codes, within_ss, size) / np.bincount(codes, np.maximum(n - 1, 0), size)
        scaled = within_fourth / s2[codes] ** 2 - 3 * c2
    usable = np.isfinite(scaled) & (s2[codes] > 0)
    excess = np.bincount(codes[usable], scaled[usable], size)
    weight = np.bincount(codes[usable], c4[usable], size)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(weight > 0, excess / weight, 0.0)
    pooled = excess.sum() / weight.sum() if weight.sum() > 0 else 0.0
    return np.asarray(np.maximum(own, max(pooled, 0.0)).clip(0.0))


def effective_degrees(parts: Arrays, kurtosis: np.ndarray, n_replicates: np.ndarray) -> Arrays:
    """``parts`` with the error mean squares' degrees of freedom cut for heavy-tailed errors.

    A mean square of N residual terms with excess kurtosis gamma has Var[MS] / E[MS]^2 = 2 / df +
    gamma / N in a balanced layout (Box 1953; Atiqullah 1962), the variance of a chi-square with
    df' = 2 / (2 / df + gamma / N) degrees of freedom: the pivots and the noncentral F then use
    df'. The terms of MS_E and of MS_E' are the responses (gamma as :func:`error_kurtosis`
    estimates it from the within-cell residuals); MS_CP's are the C P cell means, whose error
    part has kurtosis gamma / n and makes up s2_E' / E[MS_CP] of MS_CP (estimated as MS_E' /
    MS_CP, kept in [0, 1]; MS_E' is the interaction's error term, :func:`decompose`), so its
    kurtosis is that fraction squared times gamma / n. With Student-t(3) errors the
    normal-theory df left the culture share's and rho2(1)'s intervals at 90-91%
    (benchmarks/interval_coverage.py).

    Args:
        parts: :func:`decompose`'s mean squares and degrees of freedom, each of shape (G,).
        kurtosis: per unit, shape (G,).
        n_replicates: per unit, shape (G,).
    """
    gamma = np.asarray(kurtosis, dtype=np.float64)
    n = np.asarray(n_replicates, dtype=np.float64)
    cells = (parts["df_proxy"] + 1) * (parts["df_wording"] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(np.nan_to_num(parts["ms_error"] / parts["ms_interaction"]), 0, 1)
        cell_kurtosis = fraction**2 * gamma / n
        out = dict(parts)
        out["df_residual"] = _shrunk(parts["df_residual"], gamma, cells * n)
        out["df_error"] = _shrunk(parts["df_error"], gamma, cells * n)
        out["df_interaction"] = _shrunk(parts["df_interaction"], cell_kurtosis, cells)
    return out


def _shrunk(df: np.ndarray, gamma: np.ndarray, terms: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        shrunk = 2 / (2 / df + gamma / terms)
    return np.asarray(np.where(df > 0, np.minimum(shrunk, df), df))


def indices(parts: Arrays, n_replicates: float, n_wordings: int) -> Arrays:
    """Shares, culture-vs-wording index, G-theory reliability and effect sizes.

    Culture share, wording-level share, wording-contrast share and CWI = s2_C / (s2_P + s2_CP)
    (docs/statistics.md, "Culture against wording"); ``raw_*_share`` put the untruncated components over the
    same total (equal to the shares where nothing was truncated, negative where a component was;
    the residual takes what the others leave), so that their mean over items, which the
    study-level interval reads, is centred on the mean of the true shares (docs/statistics.md,
    "Study-level intervals"). Reliability: :func:`relative_reliability`. Omega^2 and
    partial eta^2 with MS_CP as error term (Olejnik & Algina 2003).
    """
    var_c, var_p = parts["var_proxy"], parts["var_wording"]
    var_cp = parts["var_interaction"]
    var_e = np.nan_to_num(parts["var_residual"])
    total = var_c + var_p + var_cp + var_e
    ss_total = parts["ss_proxy"] + parts["ss_wording"] + parts["ss_interaction"]
    ss_total = ss_total + parts["ss_residual"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Arrays = {
            "culture_share": var_c / total,
            "wording_share": var_p / total,
            "wording_contrast_share": var_cp / total,
            "residual_share": var_e / total,
            "raw_culture_share": parts["raw_var_proxy"] / total,
            "raw_wording_share": parts["raw_var_wording"] / total,
            "raw_wording_contrast_share": parts["raw_var_interaction"] / total,
            "cwi": var_c / (var_p + var_cp),
            "eta2": parts["ss_proxy"] / ss_total,
            "partial_eta2": parts["ss_proxy"] / (parts["ss_proxy"] + parts["ss_interaction"]),
            "omega2": (parts["ss_proxy"] - parts["df_proxy"] * parts["ms_interaction"])
            / (ss_total + parts["ms_interaction"]),
        }
    out["raw_residual_share"] = 1 - (
        out["raw_culture_share"] + out["raw_wording_share"] + out["raw_wording_contrast_share"]
    )
    out.update(relative_reliability(parts, n_wordings))
    return out


def culture_signal(parts: Arrays, n_wordings: np.ndarray | int) -> np.ndarray:
    """theta = s2_C / (s2_CP + s2_E / n), the culture variance per unit of a single wording's error,
    estimated as (F - 1) / P with F = MS_C / MS_CP, kept >= 0.

    E[MS_C] - E[MS_CP] = P n s2_C and E[MS_CP] = n s2_CP + s2_E, so this is the ratio of unbiased
    moment estimates, and it reads the error of a culture contrast from MS_CP, the denominator of
    the culture F test. Option-order or format effects that are the same for every culture sit in
    MS_E (within a proxy x wording cell) but not in MS_CP: they do not make cultures harder to
    tell apart, and an estimate through s2_E would count them as error (a reliability of 0.00
    where F = 20). Infinite where MS_CP is 0 and MS_C is not; NaN where both are 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(parts["ms_proxy"] / parts["ms_interaction"], dtype=np.float64)
        ratio = np.where((parts["ms_proxy"] == 0) & (parts["ms_interaction"] == 0), np.nan, ratio)
        return np.asarray(np.maximum(ratio - 1, 0) / np.asarray(n_wordings, dtype=np.float64))


def relative_reliability(parts: Arrays, n_wordings: np.ndarray | int) -> Arrays:
    """G-theory reliability of a culture comparison and the wordings it needs (Brennan 2001, D-study).

    Erho2(n') = s2_C / (s2_C + (s2_CP + s2_E / n) / n') = n' theta / (1 + n' theta) with theta from
    :func:`culture_signal`, so rho2(1) = (F - 1) / (F - 1 + P) agrees with the culture F test and
    with :func:`rho2_interval`, which inverts the same F. The wordings that reach 0.8 are
    n' = ceil(4 / theta) (NaN with ``paraphrases_reachable`` False when theta is 0 or more than
    :data:`MAX_PARAPHRASES` wordings would be needed).
    """
    theta = culture_signal(parts, n_wordings)
    wordings = np.asarray(n_wordings, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        signal = np.asarray(parts["ms_proxy"] / parts["ms_interaction"] - 1) / wordings
        out: Arrays = {
            "rho2_1": np.where(np.isinf(theta), 1.0, theta / (1 + theta)),
            # untruncated, (F - 1) / (F - 1 + P) in (-1 / (P - 1), 1]: what a mean over items reads
            "raw_rho2_1": np.where(np.isinf(signal), 1.0, signal / (1 + signal)),
            "rho2_at_n_wordings": np.where(
                np.isinf(theta), 1.0, wordings * theta / (1 + wordings * theta)
            ),
        }
        target = RELIABILITY_TARGET / (1 - RELIABILITY_TARGET)
        needed = np.ceil(target / theta - 1e-9)  # 1e-9: 4.0000000001 from rounding means 4
    # No culture signal, or more wordings than any study writes: the target is out of reach,
    # and a number such as 23618.5 would read as a plan rather than as "never".
    reachable = (theta > 0) & (needed <= MAX_PARAPHRASES)
    out["paraphrases_needed_for_0_8"] = np.where(reachable, np.maximum(needed, 1), np.nan)
    out["paraphrases_reachable"] = reachable
    return out


def f_tests(parts: Arrays) -> Arrays:
    """F ratios with wording as a random facet (Clark 1973).

    F_C = MS_C / MS_CP tests a culture effect that generalises over wordings; F_P = MS_P / MS_CP the
    wording level effect (unrestricted model); F_CP = MS_CP / MS_E' the interaction (needs n > 1),
    against the interaction's error term (:func:`decompose`).
    """
    out: Arrays = {}
    tests = {
        "proxy": ("ms_proxy", "ms_interaction", "df_proxy", "df_interaction"),
        "wording": ("ms_wording", "ms_interaction", "df_wording", "df_interaction"),
        "interaction": ("ms_interaction", "ms_error", "df_interaction", "df_error"),
    }
    for name, (num, den, df_num, df_den) in tests.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = parts[num] / parts[den]
        ratio = np.where((parts[num] == 0) & (parts[den] == 0), np.nan, ratio)
        out[f"f_{name}"] = ratio
        out[f"p_{name}"] = stats.f.sf(ratio, parts[df_num], parts[df_den])
    return out


def block_ranks(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks of the proxies within each wording, and each wording's tie term sum(t^3 - t).

    Args:
        means: cell means, shape (..., C, P).

    Returns:
        ``(ranks, ties)`` of shapes (..., C, P) and (..., P).
    """
    ranks = stats.rankdata(means, axis=-2)
    low = stats.rankdata(means, axis=-2, method="min")
    high = stats.rankdata(means, axis=-2, method="max")
    # A tie group of size t contributes t^3 - t; each of its t members has high - low + 1 = t.
    ties = ((high - low + 1) ** 2 - 1).sum(axis=-2)
    return ranks, ties


def friedman(ranks: np.ndarray, ties: np.ndarray) -> Arrays:
    """Friedman test of proxies (treatments) across wordings (blocks) and Kendall's W.

    chi2_F with the usual tie correction (Friedman 1937; as ``scipy.stats.friedmanchisquare``) and
    W = chi2_F / (P (C - 1)) (Kendall & Babington Smith 1939), the concordance of the proxy ranking
    across wordings; W = 1 when every wording orders the proxies identically.

    Args:
        ranks: within-wording ranks, shape (..., C, P).
        ties: per-wording tie terms, shape (..., P).
    """
    n_proxies, n_wordings = ranks.shape[-2:]
    rank_sums = ranks.sum(axis=-1)
    numerator = 12.0 / (n_wordings * n_proxies * (n_proxies + 1)) * (rank_sums**2).sum(axis=-1)
    numerator = numerator - 3.0 * n_wordings * (n_proxies + 1)
    correction = 1.0 - ties.sum(axis=-1) / (n_wordings * n_proxies * (n_proxies**2 - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = np.where(correction > 0, numerator / correction, np.nan)
    return {
        "friedman_stat": chi2,
        "friedman_p": stats.chi2.sf(chi2, n_proxies - 1),
        "kendall_w": chi2 / (n_wordings * (n_proxies - 1)),
    }


def icc_2_1(means: np.ndarray) -> np.ndarray:
    """ICC(2,1), two-way random, absolute agreement, targets = proxies, raters = wordings.

    (MS_R - MS_E) / (MS_R + (k - 1) MS_E + k (MS_J - MS_E) / n) on the cell means (Shrout & Fleiss
    1979), with k wordings and n proxies: high when a single wording reproduces the proxy profile.
    """
    n_targets, n_raters = means.shape[-2:]
    parts = decompose(means, np.zeros_like(means), 1)
    ms_r, ms_j = parts["ms_proxy"], parts["ms_wording"]
    ms_e = parts["ms_interaction"]
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = ms_r + (n_raters - 1) * ms_e + n_raters * (ms_j - ms_e) / n_targets
        return np.asarray((ms_r - ms_e) / denominator)


#: the level of Kendall's W's interval in ``item_stats``
CONCORDANCE_CONFIDENCE = 0.95
#: F ratios past which rho2(1)'s interval is [1, 1] (see :func:`rho2_interval`)
EXACT_RATIO = 1e7


def rho2_interval(
    parts: Arrays, n_wordings: np.ndarray | int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of rho2(1) for the study's own proxies, from the F ratio MS_C / MS_CP.

    The proxies are fixed and the wordings random (docs/statistics.md, "Reliability"). Then,
    under normal wording effects and residuals, F = MS_C / MS_CP follows a noncentral
    F(df_C, df_CP, lambda) with lambda = (C - 1) P theta, theta = s2_C / (s2_CP + s2_E / n) and
    rho2(1) = theta / (1 + theta). The bounds invert the noncentral F's distribution function in
    lambda (the confidence interval of a noncentrality parameter: Steiger & Fouladi 1997). The
    estimate (:func:`relative_reliability`) reads theta off the same F, so the lower bound is
    above 0 exactly when the one-sided F test rejects at (1 - confidence) / 2, and the interval
    is never widened to hold the estimate. Bootstrapping the wordings left the error term 2-5
    degrees of freedom with 3-6 wordings and its 95% intervals covered the truth 80-88% of the
    time (benchmarks/interval_coverage.py).

    Args:
        parts: :func:`decompose`'s ``ms_proxy``, ``ms_interaction``, ``df_proxy`` and
            ``df_interaction``, each of shape (...).
        n_wordings: P, a scalar or of shape (...).
        confidence: e.g. 0.95.

    Returns:
        ``(low, high)``, each of shape (...); NaN where the ratio is undefined (both mean squares
        0, or no degrees of freedom), 1 where MS_CP is 0 (or below MS_C / 10^7) and MS_C is not.
    """
    low, high = signal_interval(parts, n_wordings, confidence)
    with np.errstate(invalid="ignore"):
        return (
            np.where(np.isinf(low), 1.0, low / (1 + low)),
            np.where(np.isinf(high), 1.0, high / (1 + high)),
        )


def concordance_interval(
    means: np.ndarray, kendall_w: np.ndarray, confidence: float, n_draws: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of Kendall's W for the unit's own proxies, from the F test on the ranks or,
    where that test finds concordance beyond chance, from a generalised pivot of the cell means.

    The truth it covers is the W that P wordings of this unit give on average: for fixed proxies
    and random wordings, E[W] = ((P - 1) rho + 1) / P, rho the expected Spearman correlation of
    two wordings' proxy rankings (W is that function of their mean correlation; Kendall & Babington
    Smith 1939).

    - **F test on the ranks**: the proxy x wording ANOVA of the within-wording ranks has F =
      (P - 1) W / (1 - W) (Iman & Davenport 1980), so W = F / (F + P - 1) and rho is the ranks'
      rho2(1): :func:`rho2_interval`'s bounds on that F, mapped through ((P - 1) rho + 1) / P. Its
      lower bound is above 1 / P (chance) exactly where that test rejects at (1 - confidence) / 2.
      Where the wordings almost agree, ranks swap rarely, F is often infinite (W = 1), and this
      interval covered 83-85% (6 proxies, W near 0.88).
    - **Generalised pivot of the cell means**, used where the test rejects: cell means y_cp =
      mu_c + w_p + e_cp, e of variance s2 = E[MS_CP] and, for the ranks, of normal scale t, rho
      = :func:`expected_spearman` of mu / t (t = s for normal noise). Draws share one pivotal
      factor f = df / chi2(df): t2* = t2_hat f, t2_hat from the median absolute proxy x wording
      residual and df matched to its spread (:func:`robust_noise_variance`); s2* = MS_CP f; and
      mu* = mean + k (mu_hat - mean) + N(0, s2* / P), k = sqrt(1 - 2 (C - 1) s2* / (P SS_mu)) (0
      when negative), so that the draws' sum of squares is centred on its unbiased estimate
      SS_mu - (C - 1) s2 / P; the bounds are the quantiles of rho(mu* / t*). It reaches below W
      = 1 where the ranks cannot; its draws carry noise of their own and stay above 1 / P, so
      where the proxies barely differ it covered only 56-79%, which is where the rank test does
      not reject.
    - **Why two scales**: the proxy means carry the noise's whole variance, which MS_CP
      estimates whatever its shape; which proxy wins a wording depends on the bulk of the noise,
      and heavy-tailed noise (Student-t(3)) of the same variance keeps ranks more often. With s
      in both places (chi2(df_CP) on MS_CP alone), a few far cells inflated MS_CP, the pivot read
      a low rho with chi2(15) confidence, and with t(3) noise the truth was above the interval on
      6-11% of units (coverage 86-92%). A far cell moves the median only by the share it spreads
      over the other residuals, and the median's df (8.1 for 6 x 4 cells, not 15) widens the
      pivot for the scale it estimates less precisely. Mapping through the residuals' own
      distribution of differences instead of the normal cdf, or cutting df_CP by their
      kurtosis, left t(3) coverage at 82-92%: 24 double-centred residuals are mixtures of the
      noise and look nearly normal.

    Either way the interval holds the estimate (a W below 1 / P moves the lower end down to it).
    Coverage (benchmarks/interval_coverage.py, nominal 95%): 93.2% of 1,000 items with skewed
    culture effects, Student-t(3) noise and 10% of responses missing (89.3% with MS_CP as the
    scale), 95.4-96.9% in the other scenarios; 94.0-96.7% for 600 units of 10 proxies with 3-12
    wordings of normal noise (92.5-96.0% before). The wording bootstrap it replaced covered 59%
    with 3 wordings, and the span of both intervals 96-99%.

    Args:
        means: cell means, shape (G, C, P).
        kendall_w: W per unit, shape (G,).
        confidence: e.g. 0.95.
        n_draws: pivotal draws per unit.

    Returns:
        ``(low, high)``, each of shape (G,); NaN where W is.
    """
    shape = np.shape(kendall_w)
    w = np.asarray(kendall_w, dtype=np.float64).reshape(-1)
    means = np.asarray(means, dtype=np.float64).reshape(len(w), *means.shape[-2:])
    n_units, n_proxies, n_wordings = means.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(w >= 1, np.inf, (n_wordings - 1) * w / (1 - w))
    parts = {
        "ms_proxy": ratio,
        "ms_interaction": np.ones_like(ratio),
        "df_proxy": np.full(ratio.shape, n_proxies - 1.0),
        "df_interaction": np.full(ratio.shape, (n_proxies - 1.0) * (n_wordings - 1)),
    }
    low, high = rho2_interval(parts, n_wordings, confidence)
    low, high = _concordance(low, n_wordings), _concordance(high, n_wordings)
    drawn = np.full((n_units, 2), np.nan)
    for start in range(0, n_units, 64):
        chunk = means[start : start + 64]
        rng = np.random.default_rng([start, n_proxies, n_wordings])
        draws = _concordance(_pivotal_spearman(chunk, n_draws, rng), n_wordings)
        tail = (1 - confidence) / 2
        with warnings.catch_warnings():  # a unit without variation has no draws: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            drawn[start : start + 64] = np.nanquantile(draws, [tail, 1 - tail], axis=1).T
    beyond_chance = low > 1 / n_wordings + 1e-12
    low = np.where(beyond_chance & np.isfinite(drawn[:, 0]), drawn[:, 0], low)
    high = np.where(beyond_chance & np.isfinite(drawn[:, 1]), drawn[:, 1], high)
    low, high = np.fmin(low, w), np.fmax(high, w)
    low, high = np.where(np.isnan(w), np.nan, low), np.where(np.isnan(w), np.nan, high)
    return low.reshape(shape), high.reshape(shape)


def _concordance(rho: np.ndarray, n_wordings: int) -> np.ndarray:
    """W = ((P - 1) rho + 1) / P."""
    return np.asarray(((n_wordings - 1) * rho + 1) / n_wordings)


def expected_spearman(standard: np.ndarray) -> np.ndarray:
    """The expected Spearman correlation of two wordings' proxy rankings, along the last axis.

    Proxy c scores mu_c + e with e ~ N(0, s2) independently in each wording; ``standard`` is
    mu / s. Given the proxies, two wordings' ranks are independent, so the expected product of
    their centred ranks is the square of the centred expected rank, E[R_c] - (C + 1) / 2 =
    sum_{k != c} Phi((mu_c - mu_k) / (s sqrt 2)) - (C - 1) / 2, and rho = 12 / (C (C^2 - 1))
    sum_c (E[R_c] - (C + 1) / 2)^2.
    """
    n_proxies = standard.shape[-1]
    gaps = (standard[..., :, None] - standard[..., None, :]) / np.sqrt(2)
    centred = stats.norm.cdf(gaps).sum(axis=-1) - 0.5 - (n_proxies - 1) / 2
    return np.asarray(12 / (n_proxies * (n_proxies**2 - 1)) * (centred**2).sum(axis=-1))


def _pivotal_spearman(means: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of rho, the expected Spearman correlation of two wordings, shape (G, n_draws)
    (:func:`concordance_interval`)."""
    n_units, n_proxies, n_wordings = means.shape
    proxy = means.mean(axis=2)
    deviations = proxy - proxy.mean(axis=1, keepdims=True)
    residuals = means - proxy[..., None] - means.mean(axis=1, keepdims=True)
    residuals = residuals + means.mean(axis=(1, 2))[:, None, None]
    error_ss = (residuals**2).sum(axis=(1, 2))
    signal_ss = (deviations**2).sum(axis=1)
    df = (n_proxies - 1) * (n_wordings - 1)
    robust, robust_df = robust_noise_variance(residuals)
    # Where more than half the residuals are exactly 0 the median is 0: MS_CP alone speaks.
    usable = robust > 0
    size = (n_units, n_draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        pivot = np.where(
            usable[:, None],
            robust_df / rng.chisquare(robust_df, size=size),
            df / rng.chisquare(df, size=size),
        )
        variance = (error_ss / df)[:, None] * pivot
        scale = np.where(usable, robust, error_ss / df)[:, None] * pivot
        kept = 1 - 2 * (n_proxies - 1) * variance / (n_wordings * signal_ss[:, None])
        shrink = np.sqrt(np.clip(np.nan_to_num(kept), 0, 1))
        noise = rng.standard_normal((n_units, n_draws, n_proxies))
        drawn = (
            deviations[:, None, :] * shrink[..., None]
            + noise * np.sqrt(variance / n_wordings)[..., None]
        )
        standard = drawn / np.sqrt(scale)[..., None]
    with np.errstate(invalid="ignore"):  # a unit without error has infinite gaps: set below
        rho = expected_spearman(standard)
    # no error at all (every wording orders the proxies alike, with no spread): rho is 1
    return np.asarray(
        np.where(error_ss[:, None] > 0, rho, np.where(signal_ss[:, None] > 0, 1.0, np.nan))
    )


#: standard normal tables simulated per C x P layout to calibrate :func:`robust_noise_variance`
CALIBRATION_TABLES = 20_000


def robust_noise_variance(residuals: np.ndarray) -> tuple[np.ndarray, float]:
    """The squared normal scale t2 of the wording noise from the median absolute proxy x wording
    residual, and the chi-square degrees of freedom of its pivot.

    t2 = median(|r_cp|)^2 / m, with m the mean of median(|r|)^2 over tables of standard normal
    cell means of the same C x P layout, so that it estimates the variance without bias under
    normal noise; df = 2 m^2 / v (v their variance), the chi-square whose spread matches, so that
    t2_hat df / t2 is close to chi2(df) under normal noise (:func:`noise_scale_calibration`). A
    cell x out spreads x (1 - 1/C)(1 - 1/P) into its own residual, about x / P and x / C into
    its row and column, x / (C P) into the rest: the median moves by about that last share, where the sum
    of squares grows by x^2 (1 - 1/C)(1 - 1/P). For heavy-tailed noise it estimates the scale of
    the noise's bulk, which decides the ranks, not its variance.

    Args:
        residuals: the double-centred cell means, shape (G, C, P).

    Returns:
        ``(t2, df)``: t2 of shape (G,), df a scalar.
    """
    n_units, n_proxies, n_wordings = residuals.shape
    mean_square, df = noise_scale_calibration(n_proxies, n_wordings)
    median = np.median(np.abs(residuals.reshape(n_units, -1)), axis=-1)
    return np.asarray(median**2 / mean_square), df


@functools.lru_cache(maxsize=32)
def noise_scale_calibration(n_proxies: int, n_wordings: int) -> tuple[float, float]:
    """Mean m and matching chi-square df 2 m^2 / v of median(|r_cp|)^2, r the double-centred
    residuals of a C x P table of independent standard normal cells, from CALIBRATION_TABLES
    simulated tables (a fixed seed: the same layout always gets the same calibration).

    The residuals are correlated and few, so the large-sample constants (m = 0.6745^2 (1 - 1 / C)
    (1 - 1 / P), df = 0.37 C P: the median absolute deviation's 37% efficiency) are what this
    tends to for large tables, not what a 6 x 4 table has (df 8.1 there, not 8.8).
    """
    rng = np.random.default_rng([n_proxies, n_wordings])
    batch = max(1, 2_000_000 // (n_proxies * n_wordings))  # at most 16 MB of cells at a time
    batches = []
    for start in range(0, CALIBRATION_TABLES, batch):
        count = min(batch, CALIBRATION_TABLES - start)
        tables = rng.standard_normal((count, n_proxies, n_wordings))
        residuals = tables - tables.mean(axis=2, keepdims=True) - tables.mean(axis=1, keepdims=True)
        residuals = residuals + tables.mean(axis=(1, 2))[:, None, None]
        batches.append(np.median(np.abs(residuals.reshape(count, -1)), axis=-1) ** 2)
    squares = np.concatenate(batches)
    mean_square = float(squares.mean())
    return mean_square, float(2 * mean_square**2 / squares.var())


def signal_interval(
    parts: Arrays, n_wordings: np.ndarray | int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of theta (:func:`culture_signal`) from inverting the noncentral F in lambda.

    Returns:
        ``(low, high)``; infinite where MS_CP is at rounding noise beside MS_C.
    """
    df_c = np.asarray(parts["df_proxy"], dtype=float)
    df_cp = np.asarray(parts["df_interaction"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.asarray(parts["ms_proxy"] / parts["ms_interaction"], dtype=float)
    # MS_CP at rounding noise: scipy's noncentral F stalls and then fails far out, and the exact
    # bounds are within 0.001 of 1 past this ratio even with one degree of freedom each
    ratio = np.where(ratio > EXACT_RATIO, np.inf, ratio)
    tail = (1 - confidence) / 2
    scale = df_c * np.asarray(n_wordings, dtype=float)  # lambda per unit of theta
    bounds = []
    for target in (1 - tail, tail):
        noncentrality = noncentrality_bound(ratio, df_c, df_cp, target)
        bounds.append(np.where(np.isinf(ratio), np.inf, noncentrality / scale))
    return bounds[0], bounds[1]


def culture_share_interval(
    parts: Arrays,
    n_wordings: np.ndarray | int,
    n_replicates: np.ndarray | int,
    confidence: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The culture share's interval, with the uncertainty of every component, tied to the culture
    F test on its lower end.

    Generalised pivotal draws of the wording, contrast and error components
    (:func:`pivotal_components`; Weerahandi 1993; Burdick, Borror & Montgomery 2005, ch. 5), and,
    because the study's proxies are fixed, a parametric redraw of MS_C around the same draw of
    E[MS_CP]: MS_C* = MS_CP* chi2'(df_C, S / MS_CP*) / df_C with S = df_C max(MS_C - MS_CP, 0)
    the signal at its estimate, as :mod:`~culture_probe.analysis._factorial` draws its fixed
    factors. Each draw gives s2_C* = max(MS_C* - MS_CP*, 0) / (P n) and the share s2_C* / (s2_C*
    + s2_P* + s2_CP* + s2_E*); the bounds are the draws' equal-tailed quantiles. The lower bound
    is above 0 exactly where F = MS_C / MS_CP rejects at (1 - confidence) / 2 one-sided: the
    interval never claims a culture effect the test does not, and where the draws reach 0 although
    F rejects, the bound is :func:`_rejection_floor`. Holding the other components at their
    estimates, as an earlier version did, covered 82-86% where the wording component is large, 99%
    where culture is the only effect; a wording bootstrap excluded 0 on 18% of null items where F
    rejected on 6% (benchmarks/interval_coverage.py; docs/statistics.md, "Culture share
    interval").

    Args:
        parts: :func:`decompose`'s mean squares and degrees of freedom, each of shape (G,).
        n_wordings: P, a scalar or of shape (G,).
        n_replicates: replicates per cell, a scalar or of shape (G,).
        confidence: e.g. 0.95.
        seed: seeds the pivots.

    Returns:
        ``(low, high)``, each of shape (G,), NaN where F is undefined.
    """
    drawn = pivotal_components(parts, n_replicates, seed)
    n_units = drawn["interaction"].shape[0]
    n = np.broadcast_to(np.asarray(n_replicates, dtype=np.float64), (n_units,))[:, None]
    wordings = np.broadcast_to(np.asarray(n_wordings, dtype=np.float64), (n_units,))[:, None]
    culture = fixed_culture_draws(parts, drawn, wordings * n, seed)
    usable = np.ravel(np.asarray(parts["df_proxy"], dtype=np.float64)) > 0
    df_cp = np.ravel(np.asarray(parts["df_interaction"], dtype=np.float64))
    total = culture + drawn["wording"] + drawn["contrast"] + drawn["error"]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(culture > 0, culture / total, 0.0)
    low, high = _quantiles(share, confidence)
    low = np.where(low > 0, low, _rejection_floor(parts, n_wordings, drawn, n, confidence))
    undefined = _undefined(parts) | ~usable | ~(df_cp > 0)
    return np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)


def fixed_culture_draws(
    parts: Arrays, drawn: dict[str, np.ndarray], per_unit: np.ndarray, seed: int
) -> np.ndarray:
    """Draws of s2_C for the study's fixed proxies, beside :func:`pivotal_components`' draws.

    MS_C is redrawn around the same draw of E[MS_CP] as MS_C* = MS_CP* chi2'(df_C, S / MS_CP*)
    / df_C, with S = df_C max(MS_C - MS_CP, 0) the signal at its estimate (the parametric redraw
    :mod:`~culture_probe.analysis._factorial` uses for fixed factors), and s2_C* = max(MS_C* -
    MS_CP*, 0) / (P n). A random-effects pivot for MS_C covered the realised culture variance of
    6 proxies 99% of the time where culture dominates.

    Args:
        parts: :func:`decompose`'s ``ms_proxy``, ``ms_interaction`` and ``df_proxy``, each (G,).
        drawn: :func:`pivotal_components`' draws.
        per_unit: P n per unit, shape (G, 1).
        seed: seeds the redraw.
    """
    ms_c = np.ravel(np.asarray(parts["ms_proxy"], dtype=np.float64))
    ms_cp = np.ravel(np.asarray(parts["ms_interaction"], dtype=np.float64))
    df_c = np.ravel(np.asarray(parts["df_proxy"], dtype=np.float64))
    usable = (df_c > 0) & np.isfinite(ms_c - ms_cp)
    signal = np.where(usable, df_c * np.maximum(ms_c - ms_cp, 0.0), 0.0)[:, None]
    error = np.maximum(drawn["interaction"], np.finfo(float).tiny)
    with np.errstate(over="ignore", divide="ignore"):  # an error at rounding noise: capped
        noncentrality = np.minimum(signal / error, 1e12)
    rng = np.random.default_rng([seed, 32, len(ms_c)])
    degrees = np.broadcast_to(np.where(usable, df_c, 1.0)[:, None], error.shape)
    redrawn = error * rng.noncentral_chisquare(degrees, noncentrality) / degrees
    return np.asarray(np.maximum((redrawn - drawn["interaction"]) / per_unit, 0.0))


def _rejection_floor(
    parts: Arrays,
    n_wordings: np.ndarray | int,
    drawn: dict[str, np.ndarray],
    n: np.ndarray,
    confidence: float,
) -> np.ndarray:
    """The lower bound of the share where the draws reach 0: 0 unless F rejects, and where it
    does, theta's exact lower bound (:func:`signal_interval`) over it plus the upper quantile of
    R = n (s2_P + s2_CP + s2_E) / MS_CP from the draws (a modified large-sample bound, Graybill &
    Wang 1980), small and above 0, as the test says."""
    theta_low = np.ravel(signal_interval(parts, n_wordings, confidence)[0])
    others = drawn["wording"] + drawn["contrast"] + drawn["error"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rest = np.where(drawn["interaction"] > 0, n * others / drawn["interaction"], np.inf)
        floor = theta_low / (theta_low + _quantiles(rest, confidence)[1])
    return np.where(theta_low > 0, np.where(np.isinf(theta_low), 1.0, floor), 0.0)


#: pivotal draws behind each unit's culture-vs-wording interval (:func:`cwi_interval`)
CWI_DRAWS = 2000


def cwi_interval(
    parts: Arrays, n_replicates: np.ndarray | int, confidence: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of CWI = s2_C / (s2_P + s2_CP) from generalised pivotal quantities.

    Each mean square is replaced by MS_t df_t / W_t with W_t ~ chi2(df_t) drawn independently
    (Weerahandi 1993; Burdick, Borror & Montgomery 2005, ch. 5), the moment equations of
    :func:`decompose` turn every draw into components truncated at 0, and the bounds are the
    quantiles of the draws' CWI. A draw whose wording components are both 0 has an infinite CWI
    (or 0 when its culture component is 0 too), so an upper bound is ``inf``, unbounded above,
    where more than (1 - confidence) / 2 of the draws put no variance on the wording, and where
    the test of no wording variance at all does not reject (:func:`wording_variance_possible`):
    the draws alone reach that boundary on about 80% of items whose wording has none. The bounds
    are never a large finite stand-in, and the interval is not widened to hold the estimate.
    The study's proxies are fixed, so s2_C is drawn as the culture share's interval draws it
    (:func:`fixed_culture_draws`); where its estimate is 0 the upper bound is at least
    :func:`_signal_ceiling`. A wording bootstrap covered 79-89% with widths up to 1e28
    (benchmarks/interval_coverage.py).

    Args:
        parts: :func:`decompose`'s ``ms_proxy``, ``ms_wording``, ``ms_interaction``,
            ``ms_residual``, ``ms_error`` and the matching ``df_*``, each of shape (G,).
        n_replicates: replicates per cell, a scalar or of shape (G,).
        confidence: e.g. 0.95.
        seed: seeds the pivots, so that an analysis is repeatable.

    Returns:
        ``(low, high)``, each of shape (G,); NaN where a mean square is undefined.
    """
    drawn = pivotal_components(parts, n_replicates, seed)
    n_units = drawn["interaction"].shape[0]
    n = np.broadcast_to(np.asarray(n_replicates, dtype=np.float64), (n_units,))[:, None]
    wordings = np.ravel(np.asarray(parts["df_wording"], dtype=np.float64))[:, None] + 1
    culture = fixed_culture_draws(parts, drawn, wordings * n, seed)
    wording, contrast = drawn["wording"], drawn["contrast"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(culture > 0, culture / (wording + contrast), 0.0)
    low, high = _quantiles(ratio, confidence)
    high = np.fmax(high, _signal_ceiling(parts, drawn, n, confidence))
    high = np.where(wording_variance_possible(parts, confidence), np.inf, high)
    undefined = _undefined(parts)
    return np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)


def _signal_ceiling(
    parts: Arrays, drawn: dict[str, np.ndarray], n: np.ndarray, confidence: float
) -> np.ndarray:
    """Where s2_C is estimated at 0 (F_C = MS_C / MS_CP <= 1), the least upper bound of CWI:
    theta's exact upper bound (:func:`signal_interval`) times the upper quantile over the draws
    of R' = (s2_CP + s2_E' / n) / (s2_P + s2_CP), since CWI = theta R' (a modified large-sample
    bound, as :func:`_rejection_floor`'s); 0 elsewhere.

    Around a signal estimated at 0 the culture redraw (:func:`fixed_culture_draws`) reaches no
    further than a central chi-square does, whatever culture variance the F test still allows.
    With the wording contrast estimated against its own error term (:func:`decompose`), which
    no longer sends most of these intervals to ``inf``, CWI's upper bound fell below the truth
    on 6-8% of items with a small culture effect and common enumerator x order effects (92-94%
    coverage, 78-83% where s2_C is estimated at 0; 94-96% and 89-92% with this bound;
    benchmarks/interval_coverage.py ``interaction``, tests/test_analysis_common_context.py).
    """
    wordings = np.ravel(np.asarray(parts["df_wording"], dtype=np.float64)) + 1
    theta_high = np.ravel(signal_interval(parts, wordings, confidence)[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = drawn["contrast"] + drawn["error_term"] / n
        rest = _quantiles(spread / (drawn["wording"] + drawn["contrast"]), confidence)[1]
        at_zero = np.ravel(np.asarray(parts["ms_proxy"] <= parts["ms_interaction"]))
        return np.asarray(np.where(at_zero & np.isfinite(theta_high), theta_high * rest, 0.0))


def wording_variance_possible(parts: Arrays, confidence: float) -> np.ndarray:
    """Whether the data are consistent with no wording variance at all (s2_P = s2_CP = 0), CWI's
    denominator: the test of that null does not reject at (1 - confidence) / 2.

    Under the null E[MS_P] = E[MS_CP] = E[MS_E'], so F = ((SS_P + SS_CP) / (df_P + df_CP)) /
    MS_E' follows F(df_P + df_CP, df_E'), MS_E' the interaction's error term (:func:`decompose`).
    Where it does not reject, an infinite CWI is in the interval and its upper bound is ``inf``;
    the pivotal draws alone reached ``inf`` on about 80% of items whose wording truly had no
    variance, since a finite draw of MS_P or MS_CP almost never falls below the drawn error.
    Without replicates s2_CP holds the residual and is never 0: False.

    Args:
        parts: :func:`decompose`'s sums of squares, mean squares and degrees of freedom, (G,).
        confidence: e.g. 0.95.
    """
    df_num = np.ravel(np.asarray(parts["df_wording"] + parts["df_interaction"], dtype=np.float64))
    df_den = np.ravel(np.asarray(parts["df_error"], dtype=np.float64))
    ss = (
        parts["ms_wording"] * parts["df_wording"]
        + parts["ms_interaction"] * parts["df_interaction"]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.ravel(np.asarray(ss / df_num / parts["ms_error"], dtype=np.float64))
        p_value = stats.f.sf(ratio, df_num, df_den)
    return np.asarray((df_den > 0) & (df_num > 0) & (p_value >= (1 - confidence) / 2))


def pivotal_components(
    parts: Arrays, n_replicates: np.ndarray | int, seed: int = 0
) -> dict[str, np.ndarray]:
    """:data:`CWI_DRAWS` generalised pivotal draws of the two-way split, each of shape (G, B).

    Each mean square becomes MS_t df_t / W_t, W_t ~ chi2(df_t) independent (Weerahandi 1993), and
    :func:`decompose`'s moment equations turn every draw into components truncated at 0:
    ``culture``, ``wording``, ``contrast`` (against the drawn error term MS_E'), ``error`` (the
    residual component s2_E: the drawn MS_E' plus MS_E - MS_E', the context effects that drop out
    of the proxy x wording contrasts, effects of the design's fixed factors, held at their
    estimate; 0 with one replicate),
    ``interaction``, the drawn MS_CP, and ``error_term``, the drawn MS_E'.
    """
    ms = {k: np.asarray(parts[f"ms_{k}"], dtype=np.float64).ravel() for k in _SOURCES}
    df = {k: np.asarray(parts[f"df_{k}"], dtype=np.float64).ravel() for k in _SOURCES}
    n_units = len(ms["proxy"])
    rng = np.random.default_rng([seed, 31, n_units])
    pivot = {}
    for source in _SOURCES:
        usable = (df[source] > 0) & np.isfinite(ms[source])
        chi2 = rng.chisquare(np.where(usable, df[source], 1.0)[:, None], (n_units, CWI_DRAWS))
        scaled = np.where(usable, ms[source] * df[source], 0.0)[:, None]
        pivot[source] = np.where(usable[:, None], scaled / chi2, 0.0)
    n = np.broadcast_to(np.asarray(n_replicates, dtype=np.float64), (n_units,))[:, None]
    # C and P from the culture and wording degrees of freedom: C = df_C + 1, P = df_P + 1
    proxies = (df["proxy"] + 1)[:, None]
    wordings = (df["wording"] + 1)[:, None]
    error = pivot["error"]  # 0 with one replicate, where df_E' = 0
    common = np.ravel(np.nan_to_num(np.asarray(parts["ms_residual"] - parts["ms_error"], float)))
    return {
        "culture": np.maximum((pivot["proxy"] - pivot["interaction"]) / (wordings * n), 0.0),
        "wording": np.maximum((pivot["wording"] - pivot["interaction"]) / (proxies * n), 0.0),
        "contrast": np.maximum((pivot["interaction"] - error) / n, 0.0),
        "error": np.maximum(error + common[:, None], 0.0),
        "error_term": error,
        "interaction": pivot["interaction"],
    }


def _quantiles(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The equal-tailed quantiles along the last axis, read off the draws themselves (no
    interpolation, which would turn an infinite draw beside a finite one into NaN)."""
    tail = (1 - confidence) / 2
    low = np.quantile(draws, tail, axis=-1, method="inverted_cdf")
    high = np.quantile(draws, 1 - tail, axis=-1, method="inverted_cdf")
    return np.asarray(low), np.asarray(high)


def _undefined(parts: Arrays) -> np.ndarray:
    """Units whose culture, wording or interaction mean square is undefined."""
    total = parts["ms_proxy"] + parts["ms_wording"] + parts["ms_interaction"]
    return ~np.isfinite(np.asarray(total, dtype=np.float64).ravel())


_SOURCES = ("proxy", "wording", "interaction", "error")


def noncentrality_bound(
    ratio: np.ndarray, df_num: np.ndarray, df_den: np.ndarray, probability: float
) -> np.ndarray:
    """The lambda >= 0 at which the noncentral F(df_num, df_den, lambda) puts ``probability`` below
    ``ratio``; 0 where even lambda = 0 puts less there. By bisection: the distribution function
    falls as lambda grows."""
    shape = np.broadcast(ratio, df_num, df_den).shape
    ratio, df_num, df_den = (
        np.broadcast_to(a, shape).astype(float) for a in (ratio, df_num, df_den)
    )
    solvable = np.isfinite(ratio) & (df_num > 0) & (df_den > 0)
    result = np.full(shape, np.nan)
    if not solvable.any():
        return result
    x, d1, d2 = ratio[solvable], df_num[solvable], df_den[solvable]
    low = np.zeros_like(x)
    high = np.maximum(2 * x * d1, 1.0) + 10
    for _ in range(60):  # widen until the upper end puts less than `probability` below x
        short = stats.ncf.cdf(x, d1, d2, high) > probability
        if not short.any():
            break
        high = np.where(short, 2 * high, high)
    at_zero = stats.f.cdf(x, d1, d2) <= probability
    for _ in range(60):
        middle = (low + high) / 2
        above = stats.ncf.cdf(x, d1, d2, middle) > probability
        low, high = np.where(above, middle, low), np.where(above, high, middle)
    result[solvable] = np.where(at_zero, 0.0, (low + high) / 2)
    return result


def item_statistics(
    means: np.ndarray,
    within_ss: np.ndarray,
    n_replicates: float,
    df_within: float | None = None,
    replicate_deviations: np.ndarray | None = None,
) -> Arrays:
    """Everything docs/statistics.md#culture-against-wording-the-variance-decomposition reports per
    unit from cell means: decomposition, tests, W, ICC (``df_within`` as in :func:`decompose`;
    ``replicate_deviations``, shape (G, C, P, K), give its ``context_ss``)."""
    context_ss = (
        None if replicate_deviations is None else context_sum_of_squares(replicate_deviations)
    )
    parts = decompose(means, within_ss, n_replicates, df_within, context_ss)
    out = {**parts, **f_tests(parts), **indices(parts, n_replicates, means.shape[-1])}
    out.update(friedman(*block_ranks(means)))
    low, high = concordance_interval(means, out["kendall_w"], CONCORDANCE_CONFIDENCE)
    out["kendall_w_low"], out["kendall_w_high"] = low, high
    out["icc2_1"] = icc_2_1(means)
    return out


BOOTSTRAPPED = (
    "raw_culture_share",
    "raw_wording_share",
    "raw_wording_contrast_share",
    "raw_residual_share",
    "raw_rho2_1",
    "var_proxy",
    "var_wording",
    "var_interaction",
    "culture_share",
    "wording_share",
    "wording_contrast_share",
    "residual_share",
    "cwi",
    "rho2_1",
    "kendall_w",
)


def paraphrase_bootstrap(
    means: np.ndarray,
    within_ss: np.ndarray,
    n_replicates: float,
    draws: np.ndarray,
    df_within: float | None = None,
    replicate_deviations: np.ndarray | None = None,
) -> Arrays:
    """Recompute the bootstrapped statistics on wordings resampled with replacement.

    Proxies stay fixed and wordings are the random facet
    (docs/statistics.md#study-level-intervals), so a resample picks
    P wordings of the unit with replacement and keeps all proxies. Kendall's W is recomputed from
    the resampled wordings' proxy ranks, over pairs of distinct wordings
    (:func:`resampled_concordance`).

    Args:
        means: cell means, shape (G, C, P).
        within_ss: within-cell sums of squares, shape (G, C, P).
        n_replicates: replicates per cell (their harmonic mean where counts differ).
        draws: wording indices, shape (G, B, P).
        df_within: as in :func:`decompose`, kept for every resample (it has as many cells).
        replicate_deviations: as in :func:`item_statistics`, shape (G, C, P, K); each
            resample's ``context_ss`` is :func:`resampled_context_ss`.

    Returns:
        Arrays of shape (G, B) keyed by :data:`BOOTSTRAPPED`.
    """
    take = draws[:, :, None, :]
    resampled = np.take_along_axis(means[:, None], take, axis=-1)
    resampled_ss = np.take_along_axis(within_ss[:, None], take, axis=-1)
    context_ss = (
        None if replicate_deviations is None else resampled_context_ss(replicate_deviations, draws)
    )
    # Rescaled bootstrap (Rao & Wu 1988): a resample of P wordings repeats some, which shrinks the
    # spread between wordings by (P - 1) / P on average; stretching each proxy's deviations from
    # its own mean by sqrt(P / (P - 1)) restores it, so s2_P and s2_CP are not biased downwards.
    n_wordings = means.shape[-1]
    proxy_means = resampled.mean(axis=-1, keepdims=True)
    resampled = proxy_means + np.sqrt(n_wordings / (n_wordings - 1)) * (resampled - proxy_means)
    parts = decompose(resampled, resampled_ss, n_replicates, df_within, context_ss)
    out = {**parts, **indices(parts, n_replicates, n_wordings)}
    out["kendall_w"] = resampled_concordance(block_ranks(means)[0], draws)
    return {name: out[name] for name in BOOTSTRAPPED}


def resampled_concordance(ranks: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Kendall's W of each resample of wordings, from the correlations of distinct wordings.

    W = ((P - 1) r + 1) / P, with r the mean Spearman correlation over pairs of the P wordings'
    proxy rankings (Kendall & Babington Smith 1939; the same W as :func:`friedman` when no wording
    ties two proxies). A resample that draws a wording twice would pair it with itself, a
    correlation of 1 that no two real wordings have, and push W up: in a simulation with 3
    wordings the replicates sat 0.15 above the estimate and the bias-corrected 95% interval
    covered the true W 29% of the time (74% with 12 wordings; benchmarks/interval_coverage.py).
    So r is averaged over the resample's pairs of distinct wordings only, each as often as it is
    drawn, and W keeps the full P: coverage 59% with 3 wordings, 86-93% with 4 to 12.

    Args:
        ranks: within-wording ranks of the proxies, shape (G, C, P).
        draws: wording indices, shape (G, B, P).

    Returns:
        W per unit and resample, shape (G, B); NaN where a resample drew a single wording.
    """
    n_units, _, n_wordings = ranks.shape
    centred = ranks - ranks.mean(axis=-2, keepdims=True)
    norms = np.sqrt((centred**2).sum(axis=-2))
    with np.errstate(divide="ignore", invalid="ignore"):
        spearman = np.einsum("gcp,gcq->gpq", centred, centred) / (
            norms[:, :, None] * norms[:, None, :]
        )
    first, second = np.triu_indices(n_wordings, k=1)
    left, right = draws[..., first], draws[..., second]  # (G, B, pairs)
    flat = spearman.reshape(n_units, 1, -1)
    pair_values = np.take_along_axis(flat, (left * n_wordings + right).reshape(n_units, 1, -1), -1)
    pair_values = pair_values.reshape(left.shape)
    counted = (left != right) & np.isfinite(pair_values)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_r = np.where(counted, pair_values, 0.0).sum(-1) / counted.sum(-1)
    return np.asarray(((n_wordings - 1) * mean_r + 1) / n_wordings)
