"""A budget for factorial studies: draw a balanced fraction of the design without expanding it.

A study that crosses 40 countries x 6 religions x 8 paraphrases x 4 enumerators x 3 separators x
2 orders has 46,080 cells per item, too many to score whole. A budget draws n of them, item by item:
:func:`split_evenly` shares the prompts among the items (and, within an item, among its prompt
languages and proxies) as evenly as the items' sizes allow, and :func:`draw_unit` picks the cells of
one item in one language from their factor levels alone, so that nothing is expanded beyond the
prompts drawn. What it guarantees, per item and language:

- every proxy is asked as often as every other (counts within one), and the proxies asked once
  more are spread over the levels of each proxy axis;
- within each proxy, every level of every context factor (paraphrase, order, framing, each format
  factor, seed) is asked as often as every other (within one), and so over the item as well;
- every term of the model the analysis fits is estimable: :func:`unit_minimum` is the fewest cells
  that give each of them all its degrees of freedom and leave one for the residual, and
  :func:`missing_terms` checks a draw.

:func:`balanced_fraction` draws from a table of cells that is already expanded (small designs and
the simulations); :func:`min_cells_for` says how few cells estimate every main effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------------------
# drawing one item in one language from its factor levels


#: an orthogonalisation costs about n p^2 for n cells and p columns: past this, a draw is trusted
#: to its construction and not checked (the analysis then reports any term it cannot estimate)
MAX_CHECK_WORK = 2e9
#: draws tried, each with the next seed, before a budget is refused as not estimable
ATTEMPTS = 8


@dataclass(frozen=True)
class UnitGrid:
    """The cells of one item in one prompt language, as factor levels: what a budget draws from.

    Attributes:
        levels: one row per proxy, one column per context factor (``factors``): how many levels
            that factor has for that proxy (the baseline has one framing, the others every one).
        factors: the context factors, in the order the plan lists its cells.
        groups: per proxy, the group of cultures the analysis fits together (its axis), or None
            for a placebo or the baseline, which the budget balances but the analysis leaves out.
        axes: per proxy, its level on each proxy axis ("" for controls), to spread the proxies
            asked once more over the axes' levels.
    """

    levels: np.ndarray
    factors: tuple[str, ...]
    groups: tuple[str | None, ...]
    axes: pd.DataFrame

    @property
    def capacity(self) -> np.ndarray:
        """The cells of each proxy."""
        return np.asarray(np.prod(self.levels, axis=1, dtype=np.int64))

    @property
    def size(self) -> int:
        return int(self.capacity.sum())


def model_columns(cultures: int, levels: Sequence[int]) -> int:
    """Columns of the model fitted to one group of cultures: every term with all its degrees of freedom.

    The grand mean, the cultures (C - 1, which hold the proxy axes and their interactions), each
    context factor (L - 1), each culture x factor interaction ((C - 1)(L - 1)) and each two-way
    interaction of context factors ((L - 1)(L' - 1)).

    Example:
        >>> model_columns(10, [4, 2, 3])  # values: 10 cultures, paraphrases, orders, enumerators
        81
    """
    steps = [int(count) - 1 for count in levels if int(count) > 1]
    pairs = sum(a * b for a, b in combinations(steps, 2))
    return 1 + (cultures - 1) + sum(steps) + (cultures - 1) * sum(steps) + pairs


def per_proxy_minimum(grid: UnitGrid) -> int:
    """How often each proxy must be asked so that every group's model leaves a residual degree of
    freedom: ``ceil((columns + 1) / cultures)`` for the most demanding group (all the proxies
    form one group where none is a culture)."""
    if not grid.groups:
        return 0
    members_of = list(_group_members(grid).values()) or [list(range(len(grid.groups)))]
    needed = 1
    for members in members_of:
        columns = model_columns(len(members), grid.levels[members].max(axis=0).tolist())
        needed = max(needed, -(-(columns + 1) // len(members)))
    return needed


def _group_members(grid: UnitGrid) -> dict[str, list[int]]:
    """The proxies of each group of cultures, by group."""
    members: dict[str, list[int]] = {}
    for proxy, group in enumerate(grid.groups):
        if group is not None:
            members.setdefault(group, []).append(proxy)
    return members


def unit_minimum(grid: UnitGrid) -> int:
    """The fewest cells of one item and language that a draw balanced over its proxies can take
    with every term of the analysis estimable: each proxy asked :func:`per_proxy_minimum` times,
    or every one of its cells where it has fewer."""
    return int(np.minimum(grid.capacity, per_proxy_minimum(grid)).sum())


def split_evenly(total: int, low: Sequence[int], high: Sequence[int]) -> list[int]:
    """Share ``total`` out as evenly as the bounds allow: each gets ``low`` to ``high``, and those
    that get neither bound differ by at most one (the first ones in order get the extra one).

    Example:
        >>> split_evenly(10, [0, 0, 0], [2, 9, 9])
        [2, 4, 4]
        >>> split_evenly(7, [3, 0], [9, 9])
        [4, 3]
    """
    shares, room = _water_level(total, low, high)
    shares[room[: total - int(shares.sum())]] += 1
    return [int(share) for share in shares]


def _water_level(
    total: int, low: Sequence[int], high: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The shares at the highest even level that ``total`` reaches, and who has room for one more
    (as many of them as the total still leaves get it)."""
    lows, highs = np.asarray(low, dtype=np.int64), np.asarray(high, dtype=np.int64)
    if not int(lows.sum()) <= total <= int(highs.sum()):
        raise InputError(f"cannot share {total} out between {lows.sum()} and {highs.sum()}")
    start, stop = 0, int(highs.max()) if len(highs) else 0
    while start < stop:  # the largest level t with sum(clip(t)) <= total
        middle = (start + stop + 1) // 2
        if int(np.clip(middle, lows, highs).sum()) <= total:
            start = middle
        else:
            stop = middle - 1
    shares = np.clip(start, lows, highs)
    # one more lifts exactly those at the level with room: the others sit at a bound
    return shares, np.flatnonzero((shares == start) & (shares < highs))


def draw_unit(grid: UnitGrid, n: int, seed: int | Sequence[int]) -> np.ndarray:
    """Draw n cells of one item and language, balanced as the module says, from the levels alone.

    Args:
        grid: the proxies and their context factors' levels.
        n: cells to draw, at most ``grid.size``.
        seed: random seed (or seed sequence) for which proxies and levels come first.

    Returns:
        One row per cell: the proxy's index, then the level of each context factor; sorted, so
        that the cells come in the plan's order.

    Example:
        >>> grid = UnitGrid(np.array([[2, 2]] * 3), ("paraphrase", "order"), ("a",) * 3,
        ...                 pd.DataFrame({"axis_region": ["x", "y", "z"]}))
        >>> cells = draw_unit(grid, 6, seed=0)
        >>> np.bincount(cells[:, 0]).tolist(), np.bincount(cells[:, 1]).tolist()
        ([2, 2, 2], [3, 3])
    """
    rng = np.random.default_rng(seed)
    counts = _proxy_counts(grid, n, rng)
    cursor = np.zeros(len(grid.factors), dtype=np.int64)  # where each factor's level cycle stands
    orders = [rng.permutation(int(top)) for top in grid.levels.max(axis=0)]
    drawn = [
        _proxy_cells(proxy, grid.levels[proxy], int(count), cursor, orders, rng)
        for proxy, count in enumerate(counts)
        if count
    ]
    cells = np.concatenate(drawn) if drawn else np.empty((0, len(grid.factors) + 1), np.int64)
    return cells[np.lexsort(cells.T[::-1])]


def _proxy_counts(grid: UnitGrid, n: int, rng: np.random.Generator) -> np.ndarray:
    """Cells per proxy: even, and the proxies asked once more spread over the axes' levels."""
    counts, room = _water_level(n, [0] * len(grid.groups), grid.capacity.tolist())
    extra = n - int(counts.sum())
    if extra == 0:
        return counts
    table = grid.axes.iloc[room].reset_index(drop=True)
    factors = [column for column in table.columns if table[column].nunique() > 1]
    if factors:
        chosen = balanced_fraction(table, factors, extra, int(rng.integers(2**31)))
        counts[room[chosen.index.to_numpy()]] += 1
    else:
        counts[rng.choice(room, size=extra, replace=False)] += 1
    return counts


def _proxy_cells(
    proxy: int,
    levels: np.ndarray,
    count: int,
    cursor: np.ndarray,
    orders: list[np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """``count`` distinct cells of one proxy; each factor's levels come in turn from one cycle that
    runs through all the proxies, so they are even within the proxy and over the item."""
    capacity = int(np.prod(levels))
    columns = []
    for factor, top in enumerate(levels.tolist()):
        order = orders[factor]
        if top < len(order):  # fewer levels here (the baseline's one framing): not in the cycle
            columns.append(rng.permutation(np.arange(count) % top))
            continue
        columns.append(rng.permutation(order[(cursor[factor] + np.arange(count)) % top]))
        cursor[factor] += count
    wanted = np.column_stack(columns) if columns else np.zeros((count, 0), np.int64)
    if count == capacity:
        chosen = _all_cells(levels)
    elif count * 2 <= capacity:
        chosen = _distinct(wanted, levels, rng)
    else:  # most of the proxy's cells: draw the few left out, with the levels the rest lack
        everything = _all_cells(levels)
        left_out = _distinct(_complement_levels(wanted, levels, capacity - count, rng), levels, rng)
        keys = np.ravel_multi_index(tuple(left_out.T), tuple(levels.tolist()))
        chosen = everything[~np.isin(np.arange(capacity), keys)]
    return np.column_stack([np.full(len(chosen), proxy), chosen]).astype(np.int64)


def all_cells_of(proxy: int, levels: np.ndarray) -> np.ndarray:
    """Every cell of one proxy, in order, with the proxy's index first (as :func:`draw_unit`)."""
    cells = _all_cells(levels)
    return np.column_stack([np.full(len(cells), proxy), cells]).astype(np.int64)


def _all_cells(levels: np.ndarray) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(int(top)) for top in levels], indexing="ij")
    return np.column_stack([g.ravel() for g in grids]) if grids else np.zeros((1, 0), np.int64)


def _complement_levels(
    wanted: np.ndarray, levels: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Levels for the cells left out: each level as often as the full grid has it, less the kept."""
    capacity = int(np.prod(levels))
    columns = []
    for factor, top in enumerate(levels.tolist()):
        kept = np.bincount(wanted[:, factor], minlength=top)
        missing = capacity // top - kept
        columns.append(rng.permutation(np.repeat(np.arange(top), missing))[:size])
    return np.column_stack(columns)


def _distinct(cells: np.ndarray, levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap levels between cells until no two are the same; every factor keeps its level counts."""
    if cells.shape[1] == 0 or len(cells) < 2:
        return cells
    cells = cells.copy()
    shape = tuple(levels.tolist())
    for _ in range(100 * len(cells)):
        keys = np.ravel_multi_index(tuple(cells.T), shape)
        _, first = np.unique(keys, return_index=True)
        if len(first) == len(cells):
            return cells
        repeated = np.flatnonzero(~np.isin(np.arange(len(cells)), first))
        row, other = int(rng.choice(repeated)), int(rng.integers(len(cells)))
        factor = int(rng.integers(cells.shape[1]))
        cells[[row, other], factor] = cells[[other, row], factor]
    raise InputError("could not draw distinct cells; draw a different number of prompts")


# ------------------------------------------------------------------------------------------------
# checking a draw


def missing_terms(grid: UnitGrid, cells: np.ndarray) -> list[str]:
    """The terms of the analysis' model that a draw leaves without degrees of freedom.

    Per group of cultures, the terms are fitted in the analysis' order: the cultures, each context
    factor, each culture x factor interaction, each two-way interaction of context factors; then
    the residual. A term "is missing" when it adds no direction to the terms before it (sequential,
    Type I), or, for the residual, when the terms use up every cell. Draws too large to check
    cheaply (:data:`MAX_CHECK_WORK`) return no names.
    """
    missing: list[str] = []
    for group, members in _group_members(grid).items():
        rows = cells[np.isin(cells[:, 0], members)]
        terms = _terms(rows, grid.factors)
        width = sum(int(code.max()) + 1 for _, code in terms)
        if len(rows) * width * width > MAX_CHECK_WORK:
            continue
        missing += [f"{group}: {name}" for name in _without_directions(terms, len(rows))]
    return missing


def _terms(rows: np.ndarray, factors: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    culture = _recode(rows[:, 0])
    varying = [
        (name, _recode(rows[:, k + 1]))
        for k, name in enumerate(factors)
        if len(np.unique(rows[:, k + 1])) > 1
    ]
    terms: list[tuple[str, np.ndarray]] = [("culture", culture)] if culture.max() > 0 else []
    terms += varying
    if culture.max() > 0:
        terms += [(f"culture x {name}", _recode(culture * 10**6 + code)) for name, code in varying]
    terms += [
        (f"{a} x {b}", _recode(code_a * 10**6 + code_b))
        for (a, code_a), (b, code_b) in combinations(varying, 2)
    ]
    return terms


def _recode(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].astype(np.int64)


def _without_directions(terms: list[tuple[str, np.ndarray]], n: int) -> list[str]:
    basis = np.ones((n, 1)) / np.sqrt(n)
    missing = []
    for name, code in terms:
        block = np.zeros((n, int(code.max()) + 1))
        block[np.arange(n), code] = 1.0
        block -= basis @ (basis.T @ block)
        if block.size == 0:
            missing.append(name)
            continue
        left, values, _ = np.linalg.svd(block, full_matrices=False)
        new = left[:, values > 1e-9 * max(float(values.max(initial=0.0)), 1.0)]
        if new.shape[1] == 0:
            missing.append(name)
        basis = np.column_stack([basis, new])
    if basis.shape[1] >= n:
        missing.append("residual")
    return missing
