"""Option order: the reversal shift, agreement between orders and the PriDe prior
(docs/statistics.md#option-order)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

from culture_probe.agreement import cohen_kappa
from culture_probe.analysis._agreement import modal_answers
from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._items import benjamini_hochberg
from culture_probe.analysis._tidy import list_column_matrix

ASCENDING, DESCENDING = "canonical", "reversed"
MATCH = ["proxy", "wording", "seed"]
# Log-probabilities are floored here so a zero probability (a sampled, one-hot answer) stays finite.
PROBABILITY_FLOOR = 1e-12
REVERSAL_COLUMNS = (
    "n_matched_cells",
    "canonical_mean",
    "reversed_mean",
    "reversal_shift",
    "reversal_shift_sd",
    "reversal_p",
    "reversal_p_bh",
    "order_kappa",
)


def reversal_table(rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Direction effect of reversing the options, per item x axis (Khan et al. 2025).

    ``reversal_shift`` is the mean of Delta = z_canonical - z_reversed over the matched
    proxy x wording x seed cells (mean score, 0 = first canonical option), ``canonical_mean`` and
    ``reversed_mean`` the mean scores of those cells under each order (so reversing the options
    moves the mean answer by ``reversed_mean - canonical_mean = -reversal_shift``),
    ``reversal_shift_sd``
    its standard deviation; ``reversal_p`` the two-sided Wilcoxon signed-rank test of the matched
    differences (``scipy.stats.wilcoxon``), Benjamini-Hochberg adjusted over the items in
    ``reversal_p_bh``. A model that picks the first displayed option has Delta = -1 everywhere.
    ``order_kappa`` is Cohen's kappa (Cohen 1960) between the modal answers under the canonical
    and the reversed order over the proxy x wording cells: 1 when reversing never changes the
    answer, <= 0 when the answers agree no more than chance.

    Args:
        rows: tidy responses (one kind of proxy).
        probs: their probability matrix.

    Returns:
        One row per item x axis with both orders: :data:`REVERSAL_COLUMNS`.
    """
    keys = [*UNIT_COLUMNS, *MATCH]
    scores = rows.loc[rows["order"].isin([ASCENDING, DESCENDING]) & rows["score"].notna()]
    wide = scores.pivot_table(index=keys, columns="order", values="score", aggfunc="mean")
    if wide.empty or not {ASCENDING, DESCENDING} <= set(wide.columns):
        return pd.DataFrame(columns=[*UNIT_COLUMNS, *REVERSAL_COLUMNS])
    matched = wide[[ASCENDING, DESCENDING]].dropna()
    shift = (matched[ASCENDING] - matched[DESCENDING]).rename("shift").reset_index()
    grouped = shift.groupby(list(UNIT_COLUMNS), sort=True)["shift"]
    table = grouped.agg(n_matched_cells="size", reversal_shift="mean", reversal_shift_sd="std")
    means = matched.groupby(level=list(UNIT_COLUMNS), sort=True).mean()
    table = table.join(
        means.rename(columns={ASCENDING: "canonical_mean", DESCENDING: "reversed_mean"})
    ).reset_index()
    table["reversal_p"] = _wilcoxon_by_unit(shift)
    table["reversal_p_bh"] = benjamini_hochberg(table["reversal_p"].to_numpy(dtype=np.float64))
    kappa = _order_kappa(rows, probs)
    table = table.merge(kappa, on=list(UNIT_COLUMNS), how="left")
    return table[[*UNIT_COLUMNS, *REVERSAL_COLUMNS]]


def _wilcoxon_by_unit(shift: pd.DataFrame) -> np.ndarray:
    """Two-sided Wilcoxon signed-rank p-value per unit, one vectorised call per number of cells."""
    sizes = shift.groupby(list(UNIT_COLUMNS), sort=True).size().to_numpy()
    ordered = shift.sort_values(list(UNIT_COLUMNS), kind="stable")["shift"].to_numpy()
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    p_values = np.full(len(sizes), np.nan)
    for size in np.unique(sizes[sizes >= 2]):
        units = np.flatnonzero(sizes == size)
        block = ordered[starts[units][:, None] + np.arange(size)]
        testable = np.any(block != 0, axis=1)
        if testable.any():
            p_values[units[testable]] = stats.wilcoxon(block[testable], axis=1).pvalue
    return p_values


def _order_kappa(rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    chosen = rows["order"].isin([ASCENDING, DESCENDING]).to_numpy()
    modal = modal_answers(
        rows.loc[chosen], probs[chosen], [*UNIT_COLUMNS, "proxy", "wording", "order"]
    )
    pairs = modal.pivot_table(
        index=[*UNIT_COLUMNS, "proxy", "wording"], columns="order", values="answer"
    ).dropna()
    kappas = {
        unit: cohen_kappa(group[ASCENDING].to_numpy(), group[DESCENDING].to_numpy())
        for unit, group in pairs.groupby(level=list(UNIT_COLUMNS), sort=True)
    }
    index = pd.MultiIndex.from_tuples(list(kappas), names=list(UNIT_COLUMNS))
    return pd.Series(list(kappas.values()), index=index, name="order_kappa").reset_index()


def displayed_probabilities(rows: pd.DataFrame, probs: np.ndarray) -> np.ndarray:
    """Probabilities by displayed position: column j is the option shown j-th (NaN past K)."""
    display, _ = list_column_matrix(rows["display_to_canonical"], fill=-1)
    canonical = display.astype(np.int64)
    gathered = np.take_along_axis(probs, np.maximum(canonical, 0), axis=1)
    return np.where(canonical >= 0, gathered, np.nan)


def pride_prior(shown: np.ndarray) -> np.ndarray:
    """The PriDe prior over displayed positions (Zheng et al. 2024, ICLR).

    prior_j = softmax_j(mean over responses of log P(ID_j)): the model's preference for the j-th
    option identifier whatever content it carries, estimated from responses whose orders permute
    the contents over the positions. Probabilities are floored at 1e-12 before the log.

    Args:
        shown: probabilities by displayed position, shape (N, K), rows of one K and no NaN.

    Returns:
        The prior, shape (K,).
    """
    mean_log = np.log(np.maximum(shown, PROBABILITY_FLOOR)).mean(axis=0)
    return np.asarray(special.softmax(mean_log))


def pride_columns(rows: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """Per item and displayed position: ``pride_prior``, and per item ``pride_entropy`` (bits).

    The entropy is log2 K for a model without position preference and 0 for one that always picks
    the same position.
    """
    answered = ~np.isnan(probs).any(axis=1)
    shown = displayed_probabilities(rows.loc[answered], probs[answered])
    items = rows.loc[answered, "item_id"].to_numpy()
    records = []
    for item in np.unique(items):
        block = shown[items == item]
        block = block[:, ~np.isnan(block).all(axis=0)]
        prior = pride_prior(block[~np.isnan(block).any(axis=1)])
        entropy = float(stats.entropy(prior, base=2))
        for position, value in enumerate(prior):
            records.append((item, position, float(value), entropy))
    return pd.DataFrame(records, columns=["item_id", "position", "pride_prior", "pride_entropy"])


def order_summary(items: pd.DataFrame, positions: pd.DataFrame) -> dict[str, float | None]:
    """Study-level order facts for one axis, with the items as clusters.

    ``reversal_shift`` is the mean over items of the item's reversal shift, ``canonical_mean``
    and ``reversed_mean`` the means over items of the item's mean answer under each order, and
    ``reversal_change`` = ``reversed_mean - canonical_mean`` (= -``reversal_shift``) what
    reversing the options does to the mean answer; ``reversal_p`` the
    Wilcoxon signed-rank test of those item means against 0, so an item weighs the same however
    many cells it has (the clustered test of docs/statistics.md#option-order). ``first_position_share`` and
    ``first_position_prior`` are the mean choice share and PriDe prior of the first displayed
    position over the axis's items; ``order_kappa`` is the mean of the items' kappas.

    Args:
        items: rows of ``item_stats`` for one axis.
        positions: the ``position_bias`` table.
    """
    shifts = items["reversal_shift"].dropna().to_numpy(dtype=np.float64) if len(items) else []
    shifts = np.asarray(shifts, dtype=np.float64)
    first = positions.loc[
        positions["item_id"].isin(items["item_id"]) & (positions["position"] == 0)
    ]
    p_value = (
        float(stats.wilcoxon(shifts).pvalue)
        if len(shifts) >= 2 and np.any(shifts != 0)
        else float("nan")
    )
    tested = items.loc[items["reversal_shift"].notna()] if len(items) else items
    canonical = float(tested["canonical_mean"].astype("float64").mean()) if len(tested) else np.nan
    reversed_ = float(tested["reversed_mean"].astype("float64").mean()) if len(tested) else np.nan
    return {
        "reversal_shift": float(shifts.mean()) if len(shifts) else float("nan"),
        "canonical_mean": canonical,
        "reversed_mean": reversed_,
        "reversal_change": reversed_ - canonical,
        "n_items_reversed": len(shifts),
        "reversal_p": p_value,
        "order_kappa": float(items["order_kappa"].astype("float64").mean()),
        "first_position_share": float(first["choice_share"].mean()),
        "first_position_prior": float(first["pride_prior"].mean()),
    }
