"""Agreement statistics: Cohen's and Fleiss' kappa, Krippendorff's alpha. One implementation each.

The robustness analysis measures how far a model's answers agree across wordings and option
orders; the literature survey measures how far annotators agree on a paper's labels. Both call
these functions, which know nothing about either: they take ratings or value counts and return
numbers, checked in the tests against scikit-learn, statsmodels and the ``krippendorff`` package.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from itertools import combinations_with_replacement

import numpy as np

Value = Hashable
#: A distance between two values; 0 for equal values (Krippendorff's delta, not squared).
Distance = Callable[[Value, Value], float]
#: One row per unit, one entry per coder; None where a coder gave no value.
Ratings = Sequence[Sequence[Value | None]]


def cohen_kappa(first: Sequence[Value], second: Sequence[Value]) -> float:
    """Cohen's kappa of two codings of the same units (Cohen 1960).

    kappa = (p_o - p_e) / (1 - p_e), with p_e from each coder's own marginal distribution. NaN
    when chance agreement is already perfect (both codings constant and equal), as scikit-learn.

    Example:
        >>> cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"])
        0.5
    """
    if len(first) != len(second) or len(first) == 0:
        raise ValueError("two equally long, non-empty lists of ratings are needed")
    n = len(first)
    observed = sum(bool(a == b) for a, b in zip(first, second, strict=True)) / n
    first_counts, second_counts = Counter(first), Counter(second)
    expected = sum(first_counts[v] * second_counts[v] for v in first_counts) / (n * n)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(ratings: Ratings) -> float:
    """Fleiss' kappa for units each rated by the same number of coders (Fleiss 1971).

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)) per unit, P_e = sum_j p_j^2 from the pooled category
    shares; kappa = (mean P_i - P_e) / (1 - P_e).

    Example:
        >>> round(fleiss_kappa([["a", "a", "a"], ["b", "b", "a"], ["b", "b", "b"]]), 3)
        0.55
    """
    sizes = {len(unit) for unit in ratings}
    if len(sizes) != 1 or not ratings or min(sizes) < 2:
        raise ValueError("every unit needs the same number (>= 2) of ratings")
    raters = sizes.pop()
    unit_counts = [Counter(unit) for unit in ratings]
    agreement = [
        (sum(c * c for c in counts.values()) - raters) / (raters * (raters - 1))
        for counts in unit_counts
    ]
    pooled: Counter[Value | None] = Counter()
    for counts in unit_counts:
        pooled.update(counts)
    total = raters * len(ratings)
    expected = sum((count / total) ** 2 for count in pooled.values())
    mean_agreement = sum(agreement) / len(agreement)
    return math.nan if expected == 1 else (mean_agreement - expected) / (1 - expected)


def krippendorff_alpha(
    counts: np.ndarray,
    groups: np.ndarray,
    ordinal: np.ndarray,
    distance: np.ndarray | None = None,
) -> np.ndarray:
    """Krippendorff's alpha for many reliability studies at once, from value counts per unit.

    alpha = 1 - (n - 1) sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck with the coincidence matrix
    o = sum_u (n_u n_u^T - diag n_u) / (m_u - 1) over units with m_u >= 2 pairable values
    (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"). The nominal metric is
    d2 = [c != k]; the ordinal metric is d2_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2.

    Args:
        counts: shape (U, K), how many coders gave value k in unit u.
        groups: shape (U,), integer id 0..G-1 of the study a unit belongs to.
        ordinal: shape (G,), whether study g uses the ordinal metric.
        distance: shape (K, K), the metric of the other studies (zero diagonal); nominal if None.

    Returns:
        alpha per study, shape (G,); NaN where a study has no variation or no pairable unit.

    Example:
        >>> counts = np.array([[2, 0], [1, 1], [0, 2]])  # three units, two coders, two values
        >>> krippendorff_alpha(counts, np.zeros(3, dtype=int), np.array([False])).round(3)
        array([0.444])
    """
    n_groups = len(ordinal)
    n_values = counts.shape[1]
    coders = counts.sum(axis=1)
    pairable = coders >= 2
    weight = np.where(pairable, 1.0 / np.maximum(coders - 1, 1), 0.0)
    outer = counts[:, :, None] * counts[:, None, :] - np.einsum(
        "uk,kl->ukl", counts, np.eye(n_values)
    )
    coincidence = np.zeros((n_groups, n_values, n_values))
    np.add.at(coincidence, groups, outer * weight[:, None, None])
    marginals = coincidence.sum(axis=2)
    total = marginals.sum(axis=1)
    other = 1.0 - np.eye(n_values) if distance is None else np.asarray(distance, dtype=float)
    cumulative = marginals.cumsum(axis=1)
    between = cumulative[:, None, :] - cumulative[:, :, None]
    half_difference = (marginals[:, :, None] - marginals[:, None, :]) / 2
    ordinal_metric = (between + half_difference) ** 2
    metric = np.where(ordinal[:, None, None], ordinal_metric, other[None])
    observed = (coincidence * metric).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * metric).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - (total - 1) * observed / expected, np.nan)


def ratings_alpha(ratings: Ratings, distance: Distance | None = None) -> float:
    """Krippendorff's alpha of coders' ratings (any hashable values) for any distance.

    The values are counted per unit and passed to :func:`krippendorff_alpha` with the matrix of
    ``distance`` between every two values that occur (nominal when ``distance`` is None), so a
    set-valued rating can be scored with a set distance such as MASI.

    Example:
        >>> round(ratings_alpha([["a", "a"], ["a", "b"], ["b", "b"]]), 3)
        0.444
    """
    values = list(dict.fromkeys(v for unit in ratings for v in unit if v is not None))
    if not values:
        return math.nan
    index = {value: position for position, value in enumerate(values)}
    counts = np.zeros((len(ratings), len(values)))
    for row, unit in enumerate(ratings):
        for value in unit:
            if value is not None:
                counts[row, index[value]] += 1
    matrix = None
    if distance is not None:
        matrix = np.zeros((len(values), len(values)))
        for a, b in combinations_with_replacement(range(len(values)), 2):
            matrix[a, b] = matrix[b, a] = distance(values[a], values[b])
    groups = np.zeros(len(ratings), dtype=np.int64)
    return float(krippendorff_alpha(counts, groups, np.array([False]), matrix)[0])
