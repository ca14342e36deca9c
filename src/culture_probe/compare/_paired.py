"""Paired differences between two models: the same prompt in both runs, wordings resampled.

Every statistic here works on ``d = score_b - score_a`` for one prompt (same ``prompt_id``: the same
item, proxy, wording and option order put to both models), so whatever the prompts share (the
proxy, the order, the item's own level) cancels out of the difference. Wording is treated as a
random facet, as in the run's own analysis (docs/statistics.md#information): the unit of replication is the
wording, so intervals resample wordings and tests use the spread of the per-wording mean
differences. The printed interval of a difference is the t interval over those same wording
means, so it excludes 0 exactly when the test printed beside it rejects at 5% (docs/compare.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis import benjamini_hochberg
from culture_probe.compare._noise import within_noise
from culture_probe.compare._runs import ComparedRun

#: columns that describe a prompt in the paired table
PROMPT_KEYS = ("prompt_id", "item_id", "axis", "proxy", "proxy_kind", "wording", "order")
#: the significance level the ``significant`` columns use, after Benjamini-Hochberg
ALPHA = 0.05


def paired_scores(a: ComparedRun, b: ComparedRun) -> pd.DataFrame:
    """One row per prompt both models answered: ``score_a``, ``score_b``, ``difference`` = b - a.

    Prompts that either model refused or answered invalidly (no distribution, NaN score) drop out.
    """
    left = a.tidy.loc[:, [*PROMPT_KEYS, "score"]].rename(columns={"score": "score_a"})
    right = b.tidy.loc[:, ["prompt_id", "score"]].rename(columns={"score": "score_b"})
    pairs = left.merge(right, on="prompt_id", how="inner", validate="1:1")
    pairs = pairs.dropna(subset=["score_a", "score_b"]).reset_index(drop=True)
    pairs["difference"] = pairs["score_b"] - pairs["score_a"]
    return pairs


def t_interval(wording_means: np.ndarray) -> tuple[float, float]:
    """The 95% t interval of the mean of the per-wording differences (wording as the unit).

    It is the interval that inverts :func:`wording_test` at ``min_difference`` = 0: it excludes 0
    exactly when that test gives p < 0.05. A percentile bootstrap over a handful of wordings is too
    narrow (it covered 79-89% with 4-8 wordings in benchmarks/compare_coverage.py); this covers 95%.
    With fewer than two wordings there is no spread to measure and the interval is undetermined.
    """
    n = len(wording_means)
    if n < 2:
        return np.nan, np.nan
    mean = float(np.mean(wording_means))
    half = (
        float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * float(np.std(wording_means, ddof=1)) / np.sqrt(n)
    )
    return mean - half, mean + half


def mean_of_means_interval(groups: Sequence[np.ndarray]) -> tuple[float, float]:
    """95% interval of the mean over items of each item's mean wording difference.

    The items' wordings are independent samples, so the variance of the mean of means is
    ``sum(s_i^2 / n_i) / K^2`` with Welch-Satterthwaite degrees of freedom; items with fewer
    than two wordings carry no spread and leave the interval undetermined. It excludes 0 exactly
    when :func:`mean_of_means_test` gives p < 0.05.
    """
    estimate, error, df = _mean_of_means_parts(groups)
    half = float(stats.t.ppf(1 - ALPHA / 2, df)) * error
    return estimate - half, estimate + half


def mean_of_means_test(groups: Sequence[np.ndarray]) -> float:
    """Two-sided p of the Welch t test that the mean of the items' mean differences is 0."""
    estimate, error, df = _mean_of_means_parts(groups)
    if not np.isfinite(error):
        return np.nan
    if error == 0:
        return 0.0 if estimate != 0 else 1.0
    return float(2 * stats.t.sf(abs(estimate) / error, df))


def _mean_of_means_parts(groups: Sequence[np.ndarray]) -> tuple[float, float, float]:
    """The mean of means, its standard error and Welch-Satterthwaite df (NaN where undefined)."""
    if not groups or any(len(group) < 2 for group in groups):
        return np.nan, np.nan, np.nan
    variances = np.array([np.var(group, ddof=1) / len(group) for group in groups])
    sizes = np.array([len(group) for group in groups], dtype=np.float64)
    estimate = float(np.mean([np.mean(group) for group in groups]))
    error = float(np.sqrt(variances.sum())) / len(groups)
    if error == 0:
        return estimate, 0.0, np.inf
    df = float(variances.sum() ** 2 / (variances**2 / (sizes - 1)).sum())
    return estimate, error, df


def wording_test(wording_means: np.ndarray, min_difference: float = 0.0) -> tuple[float, float]:
    """Test of the per-wording mean differences: ``(t, p)``, wording as the unit.

    With ``min_difference`` = 0, the one-sample t test against 0; with wording as a random facet
    this is the model main effect against the model x wording interaction (t^2 = MS_model /
    MS_model x wording of the two-way ANOVA on cell means). With ``min_difference`` = m > 0, the
    minimum-effect test of H0: |difference| <= m (Murphy & Myors 1999): t = (|mean| - m) / se and
    p = 2 P(T >= t), capped at 1, which reduces to the usual two-sided p at m = 0. A difference
    too small to matter then does not count, however precisely it is measured.
    """
    n = len(wording_means)
    if n < 2:
        return np.nan, np.nan
    mean = float(np.mean(wording_means))
    error = float(np.std(wording_means, ddof=1)) / np.sqrt(n)
    excess = abs(mean) - min_difference
    if error == 0:
        return (np.inf, 0.0) if excess > 0 else (0.0, 1.0)
    t = excess / error
    # the usual signed t at m = 0; with a margin, t is the excess over it, in standard errors
    reported = float(np.copysign(t, mean)) if min_difference == 0 else t
    return reported, min(1.0, float(2 * stats.t.sf(t, n - 1)))


def differences_by(
    pairs: pd.DataFrame,
    keys: list[str],
    labels: tuple[str, str],
    n_bootstrap: int,
    rng: np.random.Generator,
    min_difference: float = 0.0,
    noise_floor: float | None = None,
) -> pd.DataFrame:
    """Mean difference per group of ``keys``, its t interval over wordings and test, BH-adjusted.

    Columns: ``*keys, model_a, model_b, n_prompts, n_wordings, mean_a, mean_b, difference, low,
    high, t, p, p_bh, significant``. ``difference`` is the mean over wordings of the per-wording
    mean of ``score_b - score_a``; ``low``, ``high`` its 95% t interval (:func:`t_interval`, which
    excludes 0 exactly when ``p`` < 0.05 at ``min_difference`` = 0); ``t`` and ``p`` test it
    against 0, or with ``min_difference`` against the smallest difference that matters (see
    :func:`wording_test`; the interval then excludes ``[-m, m]`` exactly when ``p`` < 0.05).
    ``within_noise`` marks a difference no larger than ``noise_floor`` (the two runs' combined
    numeric noise floor, see :mod:`culture_probe.compare._noise`): it is never ``significant``.
    ``n_bootstrap`` and ``rng`` are kept for callers; the interval no longer resamples.
    """
    rows = []
    for key, group in pairs.groupby(keys, sort=True):
        per_wording = group.groupby("wording", sort=True)["difference"].mean().to_numpy()
        estimate = float(per_wording.mean())
        low, high = t_interval(per_wording)
        t, p = wording_test(per_wording, min_difference)
        values = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "model_a": labels[0],
                "model_b": labels[1],
                "n_prompts": len(group),
                "n_wordings": len(per_wording),
                "mean_a": float(group["score_a"].mean()),
                "mean_b": float(group["score_b"].mean()),
                "difference": estimate,
                "low": low,
                "high": high,
                "t": t,
                "p": p,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_bh"] = benjamini_hochberg(table["p"].to_numpy(dtype=np.float64))
    table["within_noise"] = within_noise(table["difference"], noise_floor)
    table["significant"] = (table["p_bh"] < ALPHA) & ~table["within_noise"]
    return table
