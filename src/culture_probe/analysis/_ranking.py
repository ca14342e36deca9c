"""Does the model order the cultures as people do? Rank agreement with human means
(docs/statistics.md#alignment-with-human-answers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis._design import UNIT_COLUMNS

MIN_PROXIES = 3  # two proxies always rank-correlate at +-1


def human_mean_scores(reference: pd.DataFrame, tidy: pd.DataFrame) -> pd.Series:
    """Mean ordinal position of each human distribution, sum_k share_k k / (K - 1), per item x proxy.

    On the scale of the model's ``score``, so both means are comparable.
    """
    n_options = tidy.groupby("item_id")["n_options"].first()
    frame = reference.loc[reference["item_id"].isin(n_options.index)]
    steps = frame["item_id"].map(n_options).to_numpy(dtype=np.float64) - 1
    position = frame["option"].to_numpy(dtype=np.float64) / np.maximum(steps, 1)
    weighted = frame["share"].to_numpy(dtype=np.float64) * position
    return (
        pd.Series(weighted).groupby([frame["item_id"].to_numpy(), frame["proxy"].to_numpy()]).sum()
    )


def rank_agreement(
    wording_cells: pd.DataFrame, human: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spearman's rho and Kendall's tau-b between model proxy means and human country means.

    Per item x axis x wording (the model's mean score of each culture proxy under that wording)
    and per item x axis (the proxy means over all wordings), over the proxies with a human
    reference (``scipy.stats.spearmanr``, ``scipy.stats.kendalltau``); NaN with fewer than three
    proxies or no variation. The per-wording values show how much the agreement with people
    depends on the wording (docs/statistics.md#alignment-with-human-answers, "report the
    distribution over paraphrases").

    Args:
        wording_cells: the ``wording_cells`` table.
        human: :func:`human_mean_scores`.

    Returns:
        ``(per_wording, per_item)``: ``item_id, axis, wording, n_ranked, human_spearman,
        human_kendall`` and ``item_id, axis, human_spearman, human_spearman_p, human_kendall,
        human_kendall_p, human_spearman_wording_min, human_spearman_wording_median,
        human_spearman_wording_max``.
    """
    cells = wording_cells.loc[wording_cells["proxy_kind"] == "culture"]
    keys = pd.MultiIndex.from_arrays([cells["item_id"], cells["proxy"]])
    present = keys.isin(human.index)
    cells = cells.loc[present].assign(human=human.reindex(keys[present]).to_numpy())
    per_wording = _correlations(cells, [*UNIT_COLUMNS, "wording"])
    pooled = cells.groupby([*UNIT_COLUMNS, "proxy"], sort=True, observed=True)
    means = pooled[["mean_score", "human"]].mean().reset_index()
    per_item = _correlations(means, list(UNIT_COLUMNS), with_p=True)
    spread = per_wording.groupby(list(UNIT_COLUMNS), sort=True)["human_spearman"]
    summary = spread.agg(["min", "median", "max"]).add_prefix("human_spearman_wording_")
    per_item = per_item.drop(columns="n_ranked").merge(
        summary.reset_index(), on=list(UNIT_COLUMNS), how="left"
    )
    return per_wording, per_item


def _correlations(frame: pd.DataFrame, keys: list[str], *, with_p: bool = False) -> pd.DataFrame:
    records = []
    for key, group in frame.groupby(keys, sort=True, observed=True):
        model = group["mean_score"].to_numpy(dtype=np.float64)
        people = group["human"].to_numpy(dtype=np.float64)
        values = [np.nan] * 4
        if len(group) >= MIN_PROXIES and np.ptp(model) > 0 and np.ptp(people) > 0:
            rho, tau = stats.spearmanr(model, people), stats.kendalltau(model, people)
            values = [rho.statistic, rho.pvalue, tau.statistic, tau.pvalue]
        records.append((*key, len(group), *values))
    columns = [*keys, "n_ranked", "human_spearman", "human_spearman_p"]
    columns += ["human_kendall", "human_kendall_p"]
    table = pd.DataFrame(records, columns=columns)
    if not with_p:
        table = table.drop(columns=["human_spearman_p", "human_kendall_p"])
    return table


def rank_summary(items: pd.DataFrame, wordings: pd.DataFrame) -> dict[str, float] | None:
    """Study-level rank agreement for one axis; None without a human reference.

    ``mean_spearman`` and ``mean_kendall`` average the items' pooled coefficients;
    ``wording_spearman_q05`` ... ``_q95`` are quantiles of the per-wording Spearman coefficients
    of all the axis's items, the spread that the choice of a single wording would add.
    """
    if "human_spearman" not in items.columns:
        return None
    per_wording = wordings["human_spearman"].astype("float64").dropna()
    out = {
        "mean_spearman": float(items["human_spearman"].astype("float64").mean()),
        "mean_kendall": float(items["human_kendall"].astype("float64").mean()),
        "n_items_ranked": int(items["human_spearman"].notna().sum()),
    }
    for quantile in (5, 25, 50, 75, 95):
        value = per_wording.quantile(quantile / 100) if len(per_wording) else float("nan")
        out[f"wording_spearman_q{quantile:02d}"] = float(value)
    return out
