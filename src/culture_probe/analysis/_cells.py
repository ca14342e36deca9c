"""Descriptive robustness per item x proxy (docs/statistics.md#flips-and-spreads) and the wording
heatmap table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from culture_probe.analysis._agreement import (
    answer_counts,
    majority_disagreement,
    modal_answers,
    pairwise_disagreement,
)

CELL = ["item_id", "axis", "proxy"]
LOW_OPTION_MASS = 0.5


def wording_cells(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean score per item x axis x proxy x wording, for heatmaps (every kind of proxy)."""
    keys = [*CELL, "proxy_kind", "wording"]
    table = tidy.groupby(keys, sort=True, observed=True)["score"].agg(
        mean_score="mean", n_rows="size"
    )
    return table.reset_index()


def cell_stats(tidy: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """One row per item x axis x proxy with the descriptive robustness metrics.

    Columns: ``mean_score``; ``wording_spread`` = max_p m_cp - min_p m_cp (FormatSpread, Sclar et
    al. 2024); ``order_spread`` = mean over wordings of max_o m_cpo - min_o m_cpo (Pezeshkpour &
    Hruschka 2024); ``wording_flip_rate`` and ``order_flip_rate``, the share of wording (order) pairs
    whose modal answers differ (Ceron et al. 2024); ``majority_disagreement``; ``normalised_entropy``
    of the pooled answer distribution, H / log K; ``low_option_mass_rate``, the share of responses
    whose option labels got less than half the probability; ``refusal_rate``, ``invalid_rate``.
    """
    grouped = tidy.groupby(CELL, sort=True, observed=True)
    table = grouped.agg(
        proxy_kind=("proxy_kind", "first"),
        scale=("scale", "first"),
        n_options=("n_options", "first"),
        n_rows=("score", "size"),
        mean_score=("score", "mean"),
        n_wordings=("wording", "nunique"),
        n_orders=("order", "nunique"),
    )
    by_wording = tidy.groupby([*CELL, "wording"], observed=True)["score"].mean()
    wording_range = by_wording.groupby(level=CELL, observed=True).agg(["max", "min"])
    table["wording_spread"] = wording_range["max"] - wording_range["min"]
    by_order = tidy.groupby([*CELL, "wording", "order"], observed=True)["score"].mean()
    order_range = by_order.groupby(level=[*CELL, "wording"], observed=True).agg(["max", "min"])
    per_wording = order_range["max"] - order_range["min"]
    table["order_spread"] = per_wording.groupby(level=CELL, observed=True).mean()
    table = table.join(_flip_rates(tidy, probs))
    table["normalised_entropy"] = _pooled_entropy(tidy, probs)
    table = table.join(_rates(tidy))
    return table.reset_index()


def _flip_rates(tidy: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    width = probs.shape[1]
    modal = modal_answers(tidy, probs, [*CELL, "wording"])
    counts = answer_counts(modal, CELL, width)
    flips = pd.DataFrame(
        {
            "wording_flip_rate": pairwise_disagreement(counts.to_numpy()),
            "majority_disagreement": majority_disagreement(counts.to_numpy()),
        },
        index=counts.index,
    )
    modal_order = modal_answers(tidy, probs, [*CELL, "wording", "order"])
    order_counts = answer_counts(modal_order, [*CELL, "wording"], width)
    per_wording = pd.Series(
        pairwise_disagreement(order_counts.to_numpy()), index=order_counts.index
    )
    flips["order_flip_rate"] = per_wording.groupby(level=CELL, observed=True).mean()
    return flips


def _pooled_entropy(tidy: pd.DataFrame, probs: np.ndarray) -> pd.Series:
    answered = ~np.isnan(probs).any(axis=1)
    keys = [tidy.loc[answered, c].to_numpy() for c in CELL]
    pooled = pd.DataFrame(probs[answered]).groupby(keys, sort=True).mean()
    n_options = tidy.loc[answered].groupby(keys, sort=True)["n_options"].first()
    entropy = entropy_bits(pooled.to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = entropy / np.log2(n_options.to_numpy(dtype=np.float64))
    return pd.Series(normalised, index=pooled.index.set_names(CELL))


def _rates(tidy: pd.DataFrame) -> pd.DataFrame:
    flags = pd.DataFrame(
        {
            "low_option_mass_rate": tidy["option_mass"].to_numpy(dtype=np.float64)
            < LOW_OPTION_MASS,
            "refusal_rate": (tidy["outcome"] == "refused").to_numpy(),
            "invalid_rate": (tidy["outcome"] == "invalid").to_numpy(),
        }
    ).astype(np.float64)
    return flags.groupby([tidy[c].to_numpy() for c in CELL], sort=True).mean().rename_axis(CELL)


def entropy_bits(distributions: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each distribution along the last axis (0 log 0 = 0)."""
    return np.asarray(special.entr(distributions).sum(axis=-1) / np.log(2))
