"""Arrange the responses of each item x axis into balanced proxy x wording blocks.

The variance decomposition (docs/statistics.md#culture-against-wording-the-variance-decomposition)
needs every proxy seen under every wording. A run that was stopped early or lost responses to
refusals keeps the wordings that every proxy has (what was dropped is counted) and every replicate
(option orders x seeds) of their cells. Cells with unequal replicate counts are analysed by
unweighted means (Searle 1971, section 7.3): cell means, the harmonic mean of the cell counts in
place of n and the pooled within-cell sum of squares over its own degrees of freedom. Cutting every
cell to the smallest count, as an earlier version did, cut n from 6 to 3.8 with 10% of the responses missing,
and rho2(1), which depends on n, covered its truth 78% of the time
(benchmarks/interval_coverage.py).

The replicates of a cell are its context combinations (option order, enumerator and the other
format factors, elicitation, seed). Where every cell of a unit holds each of the same K
combinations once, the cube also carries every replicate's deviation from its cell mean, by
combination: the context effects that the proxy x wording contrasts do not hold (an order
effect, an enumerator x order effect, the same for every cell; a culture x order effect, the
same in every wording) are then taken out of the interaction's error term
(:func:`~culture_probe.analysis._anova.decompose`). Elsewhere (responses missing, a combination
repeated, no context column) there are none and the error term is the whole within-cell mean
square.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from culture_probe.analysis._anova import error_kurtosis
from culture_probe.columns import CONTEXT_FACTORS, FACTOR

UNIT_COLUMNS = ("item_id", "axis")
#: the design factors that can tell the replicates of a proxy x wording cell apart (the wording
#: factors make the cell itself)
REPLICATE_FACTORS = tuple(name for name in CONTEXT_FACTORS if FACTOR[name].kind != "wording")


@dataclass(frozen=True)
class Cube:
    """Units (item x axis) of one shape, stacked for vectorised statistics.

    Attributes:
        units: one row per unit, in the order of the first axis of the arrays (``item_id``,
            ``axis``, ``unit``, the integer unit code).
        proxies: proxy labels, shape (G, C).
        wordings: wording labels, shape (G, P).
        means: cell mean scores, shape (G, C, P).
        within_ss: sum of squared deviations of the replicates around the cell mean, (G, C, P).
        n_replicates: replicates per cell (option orders x seeds), the same for the whole cube;
            with unequal cell counts their harmonic mean.
        df_within: degrees of freedom of the pooled within-cell sum of squares, sum(n_cp - 1);
            None for C P (n - 1), a balanced cube's.
        error_kurtosis: per unit, the excess kurtosis of the within-cell errors, at least the
            study's pooled over its units (:func:`~culture_probe.analysis._anova.error_kurtosis`),
            shape (G,); None for 0.
        replicate_deviations: per proxy, wording and context combination, that replicate's
            deviation from its cell mean, shape (G, C, P, K); None where the cells do not hold
            the same K combinations once each (module docstring).
    """

    units: pd.DataFrame
    proxies: np.ndarray
    wordings: np.ndarray
    means: np.ndarray
    within_ss: np.ndarray
    n_replicates: float
    df_within: float | None = None
    error_kurtosis: np.ndarray | None = None
    replicate_deviations: np.ndarray | None = None


@dataclass(frozen=True)
class BalancedDesign:
    """The balanced blocks and what balancing dropped."""

    cubes: list[Cube]
    rows_used: int
    rows_dropped: int


def balanced_cubes(
    rows: pd.DataFrame, unit_columns: tuple[str, ...] = UNIT_COLUMNS
) -> BalancedDesign:
    """Build balanced proxy x wording blocks, one per unit, grouped by shape.

    Args:
        rows: tidy responses of one kind of proxy (``score``, ``proxy``, ``wording``, ``order``,
            ``seed``, the unit columns and any other :data:`REPLICATE_FACTORS`).
        unit_columns: the columns that identify a unit of analysis.

    Returns:
        The cubes, one per distinct (C, P, n, df_within, K) shape, and the row counts.
    """
    kept = _balanced_rows(rows.loc[rows["score"].notna()], unit_columns)
    cells = _cell_table(kept)
    kurtosis = error_kurtosis(
        cells["within_ss"].to_numpy(dtype=np.float64),
        cells["within_fourth"].to_numpy(dtype=np.float64),
        cells["count"].to_numpy(dtype=np.float64),
        cells["unit"].to_numpy(),
    )
    shape = ["n_proxies", "n_wordings", "n", "df_within", "n_contexts"]
    cubes = [
        _stack(group, kept, unit_columns, kurtosis)
        for _, group in cells.groupby(shape, sort=True)
        if group["n_proxies"].iat[0] >= 2 and group["n_wordings"].iat[0] >= 2
    ]
    return BalancedDesign(cubes=cubes, rows_used=len(kept), rows_dropped=len(rows) - len(kept))


def _balanced_rows(rows: pd.DataFrame, unit_columns: tuple[str, ...]) -> pd.DataFrame:
    frame = rows.loc[:, [*unit_columns, "proxy", "wording", "order", "seed", "score"]].copy()
    frame["unit"] = frame.groupby(list(unit_columns), sort=True, observed=True).ngroup()
    frame["context"] = _context_codes(rows, frame["unit"])
    frame = frame.sort_values(["unit", "proxy", "wording", "order", "seed"], kind="stable")
    cell = ["unit", "proxy", "wording"]
    counts = frame.groupby(cell, observed=True).size().rename("count").reset_index()
    proxies_per_unit = counts.groupby("unit")["proxy"].transform("nunique")
    proxies_per_wording = counts.groupby(["unit", "wording"])["proxy"].transform("nunique")
    complete = counts.loc[proxies_per_wording == proxies_per_unit]
    return frame.merge(complete[[*cell, "count"]], on=cell, how="inner")


def _context_codes(rows: pd.DataFrame, units: pd.Series) -> np.ndarray:
    """Per response, a code of its combination of the replicate factors that vary within some
    cell (a factor constant within every cell, such as the language of a wording, belongs to
    the cell); -1 everywhere where none varies."""
    present = [c for c in REPLICATE_FACTORS if c in rows.columns]
    if not present or rows.empty:
        return np.full(len(rows), -1, dtype=np.int64)
    keyed = rows.loc[:, [*present, "proxy", "wording"]].assign(unit=units.to_numpy())
    cell = ["unit", "proxy", "wording"]
    spread = keyed.groupby(cell, observed=True, dropna=False)[present].nunique(dropna=False)
    varying = [c for c in present if bool((spread[c] > 1).any())]
    if not varying:
        return np.full(len(rows), -1, dtype=np.int64)
    codes = keyed.groupby(varying, sort=True, observed=True, dropna=False).ngroup()
    return np.asarray(codes.to_numpy(dtype=np.int64))


def _context_levels(kept: pd.DataFrame) -> pd.Series:
    """Per unit, K where every cell holds each of the unit's K context combinations once, else 0
    (the interaction's error term is then the whole within-cell mean square)."""
    cell = kept.groupby(["unit", "proxy", "wording"], observed=True)["context"]
    cells = cell.agg(["nunique", "size"]).reset_index()
    levels = kept.groupby("unit")["context"].nunique()
    once = (cells["nunique"] == cells["size"]) & (cells["size"] == cells["unit"].map(levels))
    complete = once.groupby(cells["unit"]).all() & (kept.groupby("unit")["context"].min() >= 0)
    return pd.Series(np.where(complete & (levels > 1), levels, 0), index=levels.index)


def _replicate_deviations(
    kept: pd.DataFrame, units: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Per unit, proxy, wording and context combination, the replicate's deviation from its cell
    mean, of the given shape (G, C, P, K)."""
    rows = kept.loc[kept["unit"].isin(units)]
    cell = ["unit", "proxy", "wording"]
    deviation = rows["score"] - rows.groupby(cell, observed=True)["score"].transform("mean")
    ordered = rows.assign(deviation=deviation).sort_values([*cell, "context"], kind="stable")
    return np.asarray(ordered["deviation"].to_numpy(dtype=np.float64)).reshape(shape)


def _cell_table(kept: pd.DataFrame) -> pd.DataFrame:
    """One row per (unit, proxy, wording): mean, within-cell sum of squares and codes."""
    cell = ["unit", "proxy", "wording"]
    grouped = kept.groupby(cell, observed=True, sort=True)
    cells = grouped.agg(mean=("score", "mean"), count=("count", "first")).reset_index()
    deviation = kept["score"] - grouped["score"].transform("mean")
    within = (deviation**2).groupby([kept[c] for c in cell], observed=True, sort=True).sum()
    cells["within_ss"] = within.to_numpy()
    fourth = (deviation**4).groupby([kept[c] for c in cell], observed=True, sort=True).sum()
    cells["within_fourth"] = fourth.to_numpy()
    first_rows = kept.groupby("unit", sort=True).first()
    for column in first_rows.columns.intersection(UNIT_COLUMNS):
        cells[column] = cells["unit"].map(first_rows[column])
    cells["n_proxies"] = cells.groupby("unit")["proxy"].transform("nunique")
    cells["n_wordings"] = cells.groupby("unit")["wording"].transform("nunique")
    by_unit = cells.groupby("unit")["count"]
    # the harmonic mean of the counts (unweighted means); exactly n where every cell has n
    harmonic = by_unit.transform("size") / (1.0 / cells["count"]).groupby(cells["unit"]).transform(
        "sum"
    )
    equal = by_unit.transform("min") == by_unit.transform("max")
    cells["n"] = np.where(equal, cells["count"], harmonic)
    cells["df_within"] = (cells["count"] - 1).groupby(cells["unit"]).transform("sum")
    cells["n_contexts"] = cells["unit"].map(_context_levels(kept))
    return cells


def _stack(
    cells: pd.DataFrame, kept: pd.DataFrame, unit_columns: tuple[str, ...], kurtosis: np.ndarray
) -> Cube:
    n_proxies = int(cells["n_proxies"].iat[0])
    n_wordings = int(cells["n_wordings"].iat[0])
    n_contexts = int(cells["n_contexts"].iat[0])
    ordered = cells.sort_values(["unit", "proxy", "wording"], kind="stable")
    shape = (-1, n_proxies, n_wordings)
    units = ordered.groupby("unit", sort=True).first().reset_index()
    units = units.loc[:, ["unit", *unit_columns]]
    labels_p = ordered["proxy"].to_numpy().reshape(shape)[:, :, 0]
    labels_w = ordered["wording"].to_numpy().reshape(shape)[:, 0, :]
    within_ss = ordered["within_ss"].to_numpy(dtype=np.float64).reshape(shape)
    replicate_deviations = (
        _replicate_deviations(kept, units["unit"].to_numpy(), (*shape, n_contexts))
        if n_contexts
        else None
    )
    return Cube(
        units=units,
        proxies=labels_p,
        wordings=labels_w,
        means=ordered["mean"].to_numpy(dtype=np.float64).reshape(shape),
        within_ss=within_ss,
        n_replicates=_number(ordered["n"].iat[0]),
        df_within=float(ordered["df_within"].iat[0]),
        error_kurtosis=kurtosis[units["unit"].to_numpy(dtype=np.int64)],
        replicate_deviations=replicate_deviations,
    )


def _number(value: float) -> float:
    """An integral count as an int (a balanced cube's n), else the float."""
    return int(value) if float(value).is_integer() else float(value)
