"""Per item x wording: how often the proxies disagree, and how strongly the answer depends on them.

The proxy flip rate and the culture-over-wording flip ratio are robustness.md §3.1; Cramér's V and
its bias-corrected form, computed within each wording and then averaged, are §3.10.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from culture_probe.analysis._agreement import answer_counts, modal_answers, pairwise_disagreement
from culture_probe.analysis._design import UNIT_COLUMNS

WORDING_UNIT = [*UNIT_COLUMNS, "wording"]


def wording_stats(rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """One row per item x axis x wording of the culture proxies.

    ``proxy_flip_rate`` FR^C_ip is the share of proxy pairs whose modal answers (argmax of the
    distribution pooled over orders and seeds) differ under this wording (the pairwise flip rate
    of Ceron et al. 2024 with the proxies as the conditions). ``cramers_v`` is Cramér's V of the
    proxy x answer table of this wording, each response counted at its most likely option, and
    ``cramers_v_corrected`` the bias-corrected V~ of Bergsma (2013); options and proxies that never
    occur are left out of the table, and both are NaN for a table with one row or one column.

    Args:
        rows: tidy responses of the culture proxies.
        probs: their probability matrix.

    Returns:
        ``item_id, axis, wording, n_proxies, n_responses, proxy_flip_rate, cramers_v,
        cramers_v_corrected``.
    """
    width = probs.shape[1]
    modal = modal_answers(rows, probs, [*WORDING_UNIT, "proxy"])
    counts = answer_counts(modal, WORDING_UNIT, width)
    table = pd.DataFrame(
        {
            "n_proxies": counts.sum(axis=1).to_numpy(),
            "proxy_flip_rate": pairwise_disagreement(counts.to_numpy()),
        },
        index=counts.index,
    )
    table = table.join(_association(rows, probs))
    return table.reset_index()


def _association(rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    answered = ~np.isnan(probs).any(axis=1)
    frame = rows.loc[answered, [*WORDING_UNIT, "proxy"]].copy()
    frame["answer"] = probs[answered].argmax(axis=1)
    tables = frame.groupby([*WORDING_UNIT, "proxy", "answer"], observed=True).size()
    records = {}
    for unit, block in tables.groupby(level=WORDING_UNIT, sort=True, observed=True):
        contingency = block.droplevel(WORDING_UNIT).unstack("answer", fill_value=0).to_numpy()
        records[unit] = (int(contingency.sum()), *cramers_v(contingency))
    index = pd.MultiIndex.from_tuples(list(records), names=WORDING_UNIT)
    columns = ["n_responses", "cramers_v", "cramers_v_corrected"]
    return pd.DataFrame(list(records.values()), index=index, columns=columns)


def cramers_v(table: np.ndarray) -> tuple[float, float]:
    """Cramér's V and Bergsma's bias-corrected V~ of an r x k contingency table.

    V = sqrt(chi2 / (N min(r - 1, k - 1))) with the Pearson chi2 (no continuity correction), as
    ``scipy.stats.contingency.association(table, method="cramer")``. V~ (Bergsma 2013, "A
    bias-correction for Cramér's V and Tschuprow's T", J. Korean Stat. Soc.):
    phi2~ = max(0, chi2/N - (k - 1)(r - 1)/(N - 1)), k~ = k - (k - 1)^2/(N - 1),
    r~ = r - (r - 1)^2/(N - 1), V~ = sqrt(phi2~ / min(k~ - 1, r~ - 1)).

    Empty rows and columns are dropped first; a table left with one row or one column gives NaN.
    """
    table = np.asarray(table, dtype=np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n_rows, n_columns = table.shape
    total = table.sum()
    if min(n_rows, n_columns) < 2 or total < 2:
        return float("nan"), float("nan")
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    chi2 = float(((table - expected) ** 2 / expected).sum())
    plain = np.sqrt(chi2 / (total * (min(n_rows, n_columns) - 1)))
    phi2 = max(0.0, chi2 / total - (n_columns - 1) * (n_rows - 1) / (total - 1))
    columns_corrected = n_columns - (n_columns - 1) ** 2 / (total - 1)
    rows_corrected = n_rows - (n_rows - 1) ** 2 / (total - 1)
    denominator = min(columns_corrected - 1, rows_corrected - 1)
    corrected = np.sqrt(phi2 / denominator) if denominator > 0 else float("nan")
    return float(plain), float(corrected)


def flip_columns(wordings: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per item x axis: mean flip rates over wordings and proxies and the COW flip ratio.

    ``proxy_flip_rate`` = mean_p FR^C_ip, ``mean_wording_flip_rate`` = mean_c FR^P_ic and
    ``mean_order_flip_rate`` over the culture proxies of ``cell_stats``; ``cow_ratio`` =
    mean_p FR^C_ip / mean_c FR^P_ic (robustness.md §3.1): above 1, changing the culture changes
    the answer more often than changing the wording does (inf when the wording never does);
    ``cramers_v`` and ``cramers_v_corrected`` are the means over wordings.
    """
    by_wording = wordings.groupby(list(UNIT_COLUMNS), sort=True, observed=True)
    out = by_wording[["proxy_flip_rate", "cramers_v", "cramers_v_corrected"]].mean()
    culture = cells.loc[cells["proxy_kind"] == "culture"]
    by_proxy = culture.groupby(list(UNIT_COLUMNS), sort=True, observed=True)
    out["mean_wording_flip_rate"] = by_proxy["wording_flip_rate"].mean()
    out["mean_order_flip_rate"] = by_proxy["order_flip_rate"].mean()
    numerator = out["proxy_flip_rate"].to_numpy(dtype=np.float64)
    denominator = out["mean_wording_flip_rate"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cow_ratio"] = numerator / denominator
    columns = [
        "proxy_flip_rate",
        "mean_wording_flip_rate",
        "mean_order_flip_rate",
        "cow_ratio",
        "cramers_v",
        "cramers_v_corrected",
    ]
    return out[columns].reset_index()
