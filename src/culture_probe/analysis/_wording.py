"""Per item x wording: how often the proxies disagree, and how strongly the answer depends on them.

The proxy flip rate and the culture-over-wording flip ratio are
docs/statistics.md#flips-and-spreads; Cramér's V and
its bias-corrected form, computed within each wording and then averaged, are in
docs/statistics.md#flips-and-spreads.
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
    frame = rows.loc[answered, [*WORDING_UNIT, "proxy"]].reset_index(drop=True)
    unit = frame.groupby(WORDING_UNIT, sort=True, observed=True).ngroup().to_numpy()
    # Proxy codes numbered within each item x axis, so the table has as many rows as its proxies.
    proxy_keys = [*UNIT_COLUMNS, "proxy"]
    global_code = frame.groupby(proxy_keys, sort=True, observed=True).ngroup()
    first_code = global_code.groupby([frame[c] for c in UNIT_COLUMNS], observed=True).transform(
        "min"
    )
    proxy = (global_code - first_code).to_numpy()
    answer = probs[answered].argmax(axis=1)
    n_units = int(unit.max()) + 1 if len(unit) else 0
    counts = np.zeros((n_units, int(proxy.max(initial=0)) + 1, probs.shape[1]))
    np.add.at(counts, (unit, proxy, answer), 1.0)
    plain, corrected = cramers_v_many(counts)
    index = frame.groupby(WORDING_UNIT, sort=True, observed=True).size().index
    return pd.DataFrame(
        {
            "n_responses": counts.sum(axis=(1, 2)).astype(np.int64),
            "cramers_v": plain,
            "cramers_v_corrected": corrected,
        },
        index=index,
    )


def cramers_v_many(tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cramers_v` of a stack of r x k tables, shape (U, r, k)."""
    tables = np.asarray(tables, dtype=np.float64)
    row_sums, column_sums = tables.sum(axis=2), tables.sum(axis=1)
    total = row_sums.sum(axis=1)
    n_rows = (row_sums > 0).sum(axis=1).astype(np.float64)
    n_columns = (column_sums > 0).sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = row_sums[:, :, None] * column_sums[:, None, :] / total[:, None, None]
        # Empty rows and columns have expected 0 and observed 0: they add nothing, as if dropped.
        terms = np.where(expected > 0, (tables - expected) ** 2 / expected, 0.0)
        chi2 = terms.sum(axis=(1, 2))
        valid = (np.minimum(n_rows, n_columns) >= 2) & (total >= 2)
        plain = np.sqrt(chi2 / (total * (np.minimum(n_rows, n_columns) - 1)))
        phi2 = np.maximum(0.0, chi2 / total - (n_columns - 1) * (n_rows - 1) / (total - 1))
        columns_corrected = n_columns - (n_columns - 1) ** 2 / (total - 1)
        rows_corrected = n_rows - (n_rows - 1) ** 2 / (total - 1)
        denominator = np.minimum(columns_corrected, rows_corrected) - 1
        corrected = np.where(denominator > 0, np.sqrt(phi2 / denominator), np.nan)
    return np.where(valid, plain, np.nan), np.where(valid, corrected, np.nan)


def cramers_v(table: np.ndarray) -> tuple[float, float]:
    """Cramér's V and Bergsma's bias-corrected V~ of an r x k contingency table.

    V = sqrt(chi2 / (N min(r - 1, k - 1))) with the Pearson chi2 (no continuity correction), as
    ``scipy.stats.contingency.association(table, method="cramer")``. V~ (Bergsma 2013, "A
    bias-correction for Cramér's V and Tschuprow's T", J. Korean Stat. Soc.):
    phi2~ = max(0, chi2/N - (k - 1)(r - 1)/(N - 1)), k~ = k - (k - 1)^2/(N - 1),
    r~ = r - (r - 1)^2/(N - 1), V~ = sqrt(phi2~ / min(k~ - 1, r~ - 1)).

    Empty rows and columns are dropped first; a table left with one row or one column gives NaN.
    """
    plain, corrected = cramers_v_many(np.asarray(table, dtype=np.float64)[None])
    return float(plain[0]), float(corrected[0])


def flip_columns(wordings: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per item x axis: mean flip rates over wordings and proxies and the COW flip ratio.

    ``proxy_flip_rate`` = mean_p FR^C_ip, ``mean_wording_flip_rate`` = mean_c FR^P_ic and
    ``mean_order_flip_rate`` over the culture proxies of ``cell_stats``; ``cow_ratio`` =
    mean_p FR^C_ip / mean_c FR^P_ic (docs/statistics.md#flips-and-spreads): above 1, changing the
    culture changes
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
