"""Option-position bias under the option-order permutations (docs/statistics.md#option-order)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from culture_probe.analysis._tidy import list_column_matrix


def position_bias(tidy: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Share of probability each displayed position receives, per item.

    Under a balanced order design (cyclic shifts, or canonical and reversed) every option appears
    equally often at every position, so a model that answers by content spreads its choices evenly
    over positions; any unevenness is position or label bias. ``rstd`` is the population standard
    deviation of the position shares, the gold-label-free analogue of RStd (Zheng et al. 2024,
    "Large Language Models Are Not Robust Multiple Choice Selectors"); ``kl_from_uniform`` is
    KL(q || uniform) in bits.

    Returns:
        One row per item x display position: ``item_id``, ``position`` (0-based), ``choice_share``,
        ``n_responses``, ``n_orders``, ``rstd``, ``kl_from_uniform``.
    """
    answered = ~np.isnan(probs).any(axis=1)
    rows = tidy.loc[answered]
    display, _ = list_column_matrix(rows["display_to_canonical"], fill=-1)
    canonical = display.astype(np.int64)
    shown = np.where(
        canonical >= 0,
        np.take_along_axis(probs[answered], np.maximum(canonical, 0), axis=1),
        np.nan,
    )
    columns = list(range(shown.shape[1]))
    frame = pd.DataFrame(shown, columns=columns)
    frame["item_id"] = rows["item_id"].to_numpy()
    shares = frame.groupby("item_id", sort=True)[columns].mean()
    long = shares.stack().rename("choice_share").reset_index()
    long = long.rename(columns={"level_1": "position"})
    long = long.loc[long["choice_share"].notna()].reset_index(drop=True)
    long["position"] = long["position"].astype(np.int64)
    grouped = rows.groupby("item_id", sort=True)
    long["n_responses"] = long["item_id"].map(grouped.size())
    long["n_orders"] = long["item_id"].map(grouped["order"].nunique())
    per_item = long.groupby("item_id")["choice_share"]
    long["rstd"] = per_item.transform("std", ddof=0)
    n_positions = per_item.transform("size").to_numpy(dtype=np.float64)
    share = long["choice_share"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(share > 0, share * np.log2(share * n_positions), 0.0)
    long["kl_from_uniform"] = pd.Series(terms).groupby(long["item_id"]).transform("sum")
    return long
