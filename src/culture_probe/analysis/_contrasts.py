"""Which proxies move the answer away from the no-proxy prompt? Paired contrasts with Holm
(docs/statistics.md#intervals-and-multiple-comparisons)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis._design import UNIT_COLUMNS

SIGNIFICANCE = 0.05
CONTRAST_COLUMNS = (
    "item_id",
    "axis",
    "proxy",
    "matched_on",
    "n_wordings",
    "mean_difference",
    "sd_difference",
    "cohen_dz",
    "t",
    "p",
    "p_holm",
    "item_p_proxy_bh",
    "significant",
)


def baseline_contrasts(tidy: pd.DataFrame, item_table: pd.DataFrame) -> pd.DataFrame:
    """Each culture proxy against the no-proxy baseline, per item x axis.

    The differences d_p = m_cp - m_0p of the mean scores are paired on the paraphrase (the
    baseline prompt has no persona framing, so a framing-specific wording has no baseline twin;
    without a ``paraphrase`` column, on the wording) and tested with a one-sample t test across
    paraphrases, which treats the wording as the random facet as F_C does
    (docs/statistics.md#study-level-intervals,
    "proxy comparisons should be paired"). ``cohen_dz`` = mean(d) / sd(d). The p-values are
    Holm-adjusted over the proxies of the item x axis (Holm 1979), and following the hierarchical
    scheme of docs/statistics.md#intervals-and-multiple-comparisons a contrast is ``significant``
    only where the item's omnibus
    culture test is (``item_p_proxy_bh`` < 0.05).

    Args:
        tidy: the tidy responses table.
        item_table: ``item_stats`` (for ``p_proxy_bh``).

    Returns:
        One row per item x axis x culture proxy: :data:`CONTRAST_COLUMNS`; empty without a
        baseline.
    """
    baseline = tidy.loc[(tidy["proxy_kind"] == "baseline") & tidy["score"].notna()]
    culture = tidy.loc[(tidy["proxy_kind"] == "culture") & tidy["score"].notna()]
    if baseline.empty or culture.empty:
        return pd.DataFrame(columns=list(CONTRAST_COLUMNS))
    key = _matching_key(culture, baseline)
    model = culture.groupby([*UNIT_COLUMNS, "proxy", key], observed=True)["score"].mean()
    reference = baseline.groupby(["item_id", key], observed=True)["score"].mean()
    paired = (
        model.rename("model")
        .reset_index()
        .merge(reference.rename("baseline").reset_index(), on=["item_id", key], how="inner")
    )
    paired["difference"] = paired["model"] - paired["baseline"]
    grouped = paired.groupby([*UNIT_COLUMNS, "proxy"], sort=True, observed=True)["difference"]
    table = grouped.agg(n_wordings="size", mean_difference="mean", sd_difference="std")
    table = table.reset_index()
    table["matched_on"] = key
    n = table["n_wordings"].to_numpy(dtype=np.float64)
    mean, sd = table["mean_difference"].to_numpy(), table["sd_difference"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        table["cohen_dz"] = mean / sd
        table["t"] = mean / (sd / np.sqrt(n))
    table["p"] = 2 * stats.t.sf(np.abs(table["t"].to_numpy()), n - 1)
    table["p_holm"] = table.groupby(list(UNIT_COLUMNS), observed=True)["p"].transform(
        lambda p: holm(p.to_numpy(dtype=np.float64))
    )
    # A design without two proxies under two wordings has no item-level test: nothing is gated in.
    omnibus = item_table.reindex(columns=[*UNIT_COLUMNS, "p_proxy_bh"]).astype(
        {"p_proxy_bh": float}
    )
    omnibus = omnibus.rename(columns={"p_proxy_bh": "item_p_proxy_bh"})
    table = table.merge(omnibus, on=list(UNIT_COLUMNS), how="left")
    table["significant"] = table["item_p_proxy_bh"].lt(SIGNIFICANCE) & table["p_holm"].lt(
        SIGNIFICANCE
    )
    return table[list(CONTRAST_COLUMNS)]


def _matching_key(culture: pd.DataFrame, baseline: pd.DataFrame) -> str:
    has_paraphrase = "paraphrase" in culture.columns and "paraphrase" in baseline.columns
    if has_paraphrase and set(culture["paraphrase"]) & set(baseline["paraphrase"]):
        return "paraphrase"
    return "wording"


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979); NaN stays NaN and is not counted.

    p~_(j) = max over l <= j of min(1, (m - l + 1) p_(l)) for the sorted p-values.
    """
    adjusted = np.full(len(p_values), np.nan)
    present = np.flatnonzero(~np.isnan(p_values))
    if len(present) == 0:
        return adjusted
    order = present[np.argsort(p_values[present], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p_values[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
