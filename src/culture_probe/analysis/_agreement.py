"""Agreement of modal answers across wordings and orders: flip rates and Krippendorff's alpha."""

from __future__ import annotations

import numpy as np
import pandas as pd


def modal_answers(tidy: pd.DataFrame, probs: np.ndarray, keys: list[str]) -> pd.DataFrame:
    """The modal canonical answer of each group of rows: argmax of the pooled distribution.

    Pooling the probability vectors before the argmax (rather than voting) is the cell distribution
    of robustness.md §3.0, P-bar, whose argmax is the modal answer M.

    Args:
        tidy: the tidy responses table.
        probs: its probability matrix (NaN rows for responses without a distribution).
        keys: the columns that define a group.

    Returns:
        One row per group: the key columns and ``answer`` (int).
    """
    answered = ~np.isnan(probs).any(axis=1)
    pooled = (
        pd.DataFrame(probs[answered])
        .groupby([tidy.loc[answered, key].to_numpy() for key in keys], sort=True)
        .mean()
    )
    frame = pooled.index.to_frame(index=False, name=keys)
    frame["answer"] = pooled.to_numpy().argmax(axis=1)
    return frame


def answer_counts(modal: pd.DataFrame, unit: list[str], n_options: int) -> pd.DataFrame:
    """Per unit, how many coders gave each answer: columns 0..K-1 (the alpha "units" matrix)."""
    counts = pd.crosstab([modal[c] for c in unit], modal["answer"])
    return counts.reindex(columns=range(n_options), fill_value=0)


def pairwise_disagreement(counts: np.ndarray) -> np.ndarray:
    """Share of coder pairs that disagree within each unit: 1 - sum_k n_k (n_k - 1) / (m (m - 1)).

    The pairwise flip rate of robustness.md §3.1 (Ceron et al. 2024's semantic-equivalence and
    label-inversion tests in pairwise form). NaN for units with fewer than two coders.
    """
    coders = counts.sum(axis=1)
    agreeing = (counts * (counts - 1)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coders >= 2, 1 - agreeing / (coders * (coders - 1)), np.nan)


def majority_disagreement(counts: np.ndarray) -> np.ndarray:
    """1 - (share of coders giving the most common answer)."""
    coders = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(coders >= 1, 1 - counts.max(axis=1) / coders, np.nan)


def krippendorff_alpha(counts: np.ndarray, groups: np.ndarray, ordinal: np.ndarray) -> np.ndarray:
    """Krippendorff's alpha for many reliability studies at once, from value counts per unit.

    alpha = 1 - (n - 1) sum_ck o_ck d2_ck / sum_ck n_c n_k d2_ck with the coincidence matrix
    o = sum_u (n_u n_u^T - diag n_u) / (m_u - 1) over units with m_u >= 2 pairable values
    (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"). The nominal metric is
    d2 = [c != k]; the ordinal metric is d2_ck = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2.

    Args:
        counts: shape (U, K), how many coders gave value k in unit u.
        groups: shape (U,), integer id 0..G-1 of the study a unit belongs to.
        ordinal: shape (G,), whether study g uses the ordinal metric (else nominal).

    Returns:
        alpha per study, shape (G,); NaN where a study has no variation or no pairable unit.
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
    nominal = 1.0 - np.eye(n_values)
    cumulative = marginals.cumsum(axis=1)
    between = cumulative[:, None, :] - cumulative[:, :, None]
    half_difference = (marginals[:, :, None] - marginals[:, None, :]) / 2
    ordinal_metric = (between + half_difference) ** 2
    metric = np.where(ordinal[:, None, None], ordinal_metric, nominal[None])
    observed = (coincidence * metric).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * metric).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, 1 - (total - 1) * observed / expected, np.nan)
