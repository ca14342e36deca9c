"""Agreement of modal answers across wordings and orders: modal answers, counts and flip rates.

Krippendorff's alpha and Cohen's kappa themselves are in :mod:`culture_probe.agreement`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def modal_answers(tidy: pd.DataFrame, probs: np.ndarray, keys: list[str]) -> pd.DataFrame:
    """The modal canonical answer of each group of rows: argmax of the pooled distribution.

    Pooling the probability vectors before the argmax (rather than voting) is the cell distribution
    of docs/statistics.md#the-score, P-bar, whose argmax is the modal answer M.

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

    The pairwise flip rate of docs/statistics.md#flips-and-spreads (Ceron et al. 2024's
    semantic-equivalence and
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
