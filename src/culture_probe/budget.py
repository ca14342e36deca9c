"""A budget for factorial studies: draw a balanced fraction of the design's cells.

A study that crosses 40 countries x 6 religions x 8 paraphrases x 4 enumerators x 3 separators x
2 orders has 46,080 cells per item, too many to score whole. :func:`balanced_fraction` picks n of
them so that every level of every factor is asked about as often as possible, and every pair of
proxy-axis levels too where n allows; the N-way decomposition
(:mod:`culture_probe.analysis._factorial`) then estimates each factor from the incomplete design.
:func:`min_cells_for` says how few cells still leave every factor estimable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from culture_probe.columns import AXIS_PREFIX  # factors named so are proxy axes, paired too
from culture_probe.errors import InputError, did_you_mean


def min_cells_for(levels: Mapping[str, int] | Sequence[int]) -> int:
    """The fewest cells that estimate every factor's variance component.

    One for the grand mean, L - 1 degrees of freedom for each factor with L levels, and one more
    for the residual that every component is measured against. Interactions need more cells; the
    analysis reports those it cannot estimate as not estimable rather than guessing.

    Args:
        levels: the number of levels of each factor, by name or in order.

    Raises:
        InputError: a factor has fewer than one level.

    Example:
        >>> min_cells_for({"axis_region": 40, "axis_religion": 6, "paraphrase": 8, "order": 2})
        54
    """
    named = dict(levels) if isinstance(levels, Mapping) else dict(enumerate(levels))
    for name, count in named.items():
        if int(count) < 1:
            raise InputError(f"a factor needs at least one level, got {count}", key=str(name))
    return 2 + sum(int(count) - 1 for count in named.values())


def balanced_fraction(
    cells: pd.DataFrame,
    factors: list[str],
    n: int,
    seed: int,
    *,
    pair_factors: list[str] | None = None,
) -> pd.DataFrame:
    """Draw n rows of ``cells`` with every factor's levels as evenly represented as possible.

    Greedy and deterministic by seed: each step takes the row whose levels are the least used so
    far. A level used more than the least-used level of its factor costs more than any imbalance of
    the pairs; among rows that tie on that, the least-used pairs of proxy-axis levels win, then a
    random order fixed by ``seed``. A repair pass then moves drawn rows from an over-used level to
    the least-used one, all else equal, so on a full factorial grid every factor's level counts
    differ by at most one. Grids with excluded combinations get as close as the rows allow.

    Args:
        cells: one row per cell of the design, one column per factor; other columns ride along.
        factors: the columns to balance.
        n: how many rows to draw, 1 to ``len(cells)``.
        seed: random seed for the tie-breaks.
        pair_factors: the factors balanced in pairs as well; default those named ``axis_*``.

    Returns:
        The drawn rows, in the order of ``cells``, with their original index.

    Raises:
        InputError: a factor is not a column, or n is out of range.

    Example:
        >>> grid = pd.MultiIndex.from_product([range(4), range(3)], names=["a", "b"]).to_frame()
        >>> picked = balanced_fraction(grid.reset_index(drop=True), ["a", "b"], 6, seed=0)
        >>> sorted(picked["a"].value_counts().tolist()), sorted(picked["b"].value_counts().tolist())
        ([1, 1, 2, 2], [2, 2, 2])
    """
    _check(cells, factors, n)
    pairs_of = pair_factors
    if pairs_of is None:
        pairs_of = [factor for factor in factors if factor.startswith(AXIS_PREFIX)]
    codes = [_codes(cells, [factor]) for factor in factors]
    pair_codes = [_codes(cells, list(pair)) for pair in combinations(pairs_of, 2)]
    picked = _greedy(codes, pair_codes, n, np.random.default_rng(seed).random(len(cells)))
    picked = _repair(codes, picked)
    return cells.iloc[np.sort(picked)]


def _codes(cells: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return np.asarray(cells.groupby(columns, sort=True, dropna=False).ngroup().to_numpy())


def _check(cells: pd.DataFrame, factors: list[str], n: int) -> None:
    for factor in factors:
        if factor not in cells.columns:
            raise InputError(
                f"not a column of the cells; has: {', '.join(map(str, cells.columns))}",
                key=factor,
                hint=did_you_mean(factor, map(str, cells.columns)),
            )
    if not 1 <= n <= len(cells):
        raise InputError(f"must be between 1 and the {len(cells)} cells, got {n}", key="budget")


def _greedy(
    codes: list[np.ndarray], pair_codes: list[np.ndarray], n: int, jitter: np.ndarray
) -> np.ndarray:
    """Pick n rows; the penalty of a row is kept up to date as the counts grow."""
    size = len(jitter)
    heavy = float((n + 1) * (len(pair_codes) + 1))  # one excess level outweighs every pair count
    penalty = 0.5 * jitter
    rows_at = [_rows_by_code(code) for code in codes]
    pair_rows_at = [_rows_by_code(code) for code in pair_codes]
    counts = [np.zeros(len(rows), dtype=np.int64) for rows in rows_at]
    lowest = [0] * len(codes)
    picked = np.empty(n, dtype=np.int64)
    taken = np.zeros(size, dtype=bool)
    for step in range(n):
        row = int(np.argmin(np.where(taken, np.inf, penalty)))
        picked[step], taken[row] = row, True
        for index, code in enumerate(codes):
            level = code[row]
            counts[index][level] += 1
            penalty[rows_at[index][level]] += heavy
            new_lowest = int(counts[index].min())
            if new_lowest > lowest[index]:  # every level used once more: the excess is unchanged
                penalty -= heavy * (new_lowest - lowest[index])
                lowest[index] = new_lowest
        for index, code in enumerate(pair_codes):
            penalty[pair_rows_at[index][code[row]]] += 1.0
    return picked


def _repair(codes: list[np.ndarray], picked: np.ndarray) -> np.ndarray:
    """Swap a drawn row for an undrawn one that differs only in an over-used level.

    The greedy pass can run out of rows whose levels are all least used; then a level ends up two
    or more ahead. Moving one such row to the least-used level of that factor, everything else
    equal, narrows the gap without touching the other factors' counts.
    """
    sizes = [int(code.max()) + 1 for code in codes]
    keys = np.ravel_multi_index(tuple(codes), sizes)
    row_of = {int(key): row for row, key in enumerate(keys)}
    picked = picked.copy()
    taken = np.zeros(len(keys), dtype=bool)
    taken[picked] = True
    for _ in range(len(picked)):
        if not _swap_once(codes, sizes, picked, taken, row_of):
            break
    return picked


def _swap_once(
    codes: list[np.ndarray],
    sizes: list[int],
    picked: np.ndarray,
    taken: np.ndarray,
    row_of: dict[int, int],
) -> bool:
    for index, code in enumerate(codes):
        counts = np.bincount(code[picked], minlength=sizes[index])
        high, low = int(counts.argmax()), int(counts.argmin())
        if counts[high] - counts[low] <= 1:
            continue
        for position in np.flatnonzero(code[picked] == high):
            levels = [int(c[picked[position]]) for c in codes]
            levels[index] = low
            other = row_of.get(int(np.ravel_multi_index(tuple(levels), sizes)))
            if other is not None and not taken[other]:
                taken[picked[position]], taken[other] = False, True
                picked[position] = other
                return True
    return False


def _rows_by_code(code: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(int(code.max()) + 2 if len(code) else 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(len(bounds) - 1)]
