"""Controls: the no-proxy baseline and the placebo proxies (docs/statistics.md#controls; Schäfer et
al. 2024)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._items import Decomposition, bias_corrected_interval

#: the placebo decomposition's columns that ``item_stats`` holds as ``placebo_<column>``: its test,
#: its share, and the untruncated share and components its study-level share pools
#: (:func:`~culture_probe.analysis._summary.placebo_summary`)
PLACEBO_COLUMNS = (
    "var_proxy",
    "f_proxy",
    "p_proxy",
    "culture_share",
    "raw_culture_share",
    "var_wording",
    "var_interaction",
    "var_residual",
)


def placebo_comparison(core: Decomposition, placebo: Decomposition) -> pd.DataFrame:
    """Compare the culture variance component of each item with that of its placebo proxies.

    Both are per-proxy variance components s2_C, so they are comparable although the numbers of
    real and placebo proxies differ. The interval of the difference is a paired bootstrap over the
    item's wordings (both decompositions resample the same wordings); ``beats_placebo`` holds when
    its lower bound is above 0 and is missing for items without placebo proxies.
    """
    out = core.table.loc[:, list(UNIT_COLUMNS)].copy()
    out["culture_var_proxy"] = core.table["var_proxy"].to_numpy()
    if placebo.table.empty:
        for column in PLACEBO_COLUMNS:
            out[f"placebo_{column}"] = np.nan
        for column in (
            "culture_minus_placebo",
            "culture_minus_placebo_low",
            "culture_minus_placebo_high",
        ):
            out[column] = np.nan
        out["beats_placebo"] = pd.array([pd.NA] * len(out), dtype="boolean")
        return out
    position = pd.Series(np.arange(len(placebo.table)), index=placebo.table["item_id"].to_numpy())
    match = core.table["item_id"].map(position)
    has = match.notna().to_numpy()
    rows = match.fillna(0).astype(int).to_numpy()
    for column in PLACEBO_COLUMNS:
        out[f"placebo_{column}"] = np.where(has, placebo.table[column].to_numpy()[rows], np.nan)
    difference = core.replicates["var_proxy"] - placebo.replicates["var_proxy"][rows]
    out["culture_minus_placebo"] = np.where(
        has, out["culture_var_proxy"] - out["placebo_var_proxy"], np.nan
    )
    low, high = bias_corrected_interval(difference, out["culture_minus_placebo"].to_numpy())
    out["culture_minus_placebo_low"] = np.where(has, low, np.nan)
    out["culture_minus_placebo_high"] = np.where(has, high, np.nan)
    beats = pd.array(np.where(has, low > 0, False), dtype="boolean")
    beats[~has] = pd.NA
    out["beats_placebo"] = beats
    return out


def baseline_comparison(cells: pd.DataFrame) -> pd.DataFrame:
    """How far the proxies move the mean score away from the no-proxy baseline.

    Per item x axis: the baseline's mean score, the mean absolute shift |m_c - m_baseline| of the
    culture proxies and of the placebo proxies, and their ratio (> 1: culture moves answers more
    than an irrelevant persona does).
    """
    baseline_rows = cells.loc[cells["proxy_kind"] == "baseline"]
    baseline = baseline_rows.groupby("item_id")["mean_score"].mean().astype(np.float64)
    placebo = cells.loc[cells["proxy_kind"] == "placebo"]
    culture = cells.loc[cells["proxy_kind"] == "culture"]
    out = culture.groupby(list(UNIT_COLUMNS), observed=True)["mean_score"].mean()
    out = out.rename("culture_mean_score").reset_index()
    out["baseline_mean_score"] = out["item_id"].map(baseline).astype(np.float64)
    shift = (culture["mean_score"] - culture["item_id"].map(baseline).astype(np.float64)).abs()
    out["culture_shift_from_baseline"] = (
        shift.groupby([culture[c] for c in UNIT_COLUMNS], observed=True).mean().to_numpy()
    )
    placebo_shift = (
        placebo["mean_score"] - placebo["item_id"].map(baseline).astype(np.float64)
    ).abs()
    per_item = placebo_shift.groupby(placebo["item_id"]).mean()
    out["placebo_shift_from_baseline"] = out["item_id"].map(per_item).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["shift_ratio"] = out["culture_shift_from_baseline"] / out["placebo_shift_from_baseline"]
    return out
