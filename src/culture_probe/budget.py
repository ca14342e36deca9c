"""A balanced fraction of a factorial design, for studies too big to run whole.

TEMPORARY implementation of the interface the analysis side provides (same signature); a greedy draw
that keeps every level of every factor about equally often.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def balanced_fraction(cells: pd.DataFrame, factors: list[str], n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of ``cells`` in which each level of each factor appears about equally often.

    Rows are visited in a seeded random order and taken while no factor level is over its share;
    the shares grow by one until ``n`` rows are taken. The same inputs give the same rows.

    Example:
        >>> cells = pd.DataFrame({"a": [0, 0, 1, 1] * 3, "b": [0, 1, 0, 1] * 3})
        >>> picked = balanced_fraction(cells, ["a", "b"], 4, seed=0)
        >>> len(picked), sorted(picked["a"].value_counts()), sorted(picked["b"].value_counts())
        (4, [2, 2], [2, 2])
    """
    if n >= len(cells):
        return cells.copy()
    order = np.random.default_rng(seed).permutation(len(cells))
    codes = [pd.factorize(cells[factor])[0] for factor in factors]
    levels = [int(code.max()) + 1 for code in codes]
    counts = [np.zeros(count, dtype=int) for count in levels]
    caps = [math.ceil(n / count) for count in levels]
    taken = np.zeros(len(cells), dtype=bool)
    chosen: list[int] = []
    while len(chosen) < n:
        for row in order:
            if len(chosen) == n:
                break
            if taken[row] or any(
                c[code[row]] >= cap for c, code, cap in zip(counts, codes, caps, strict=True)
            ):
                continue
            taken[row] = True
            chosen.append(int(row))
            for c, code in zip(counts, codes, strict=True):
                c[code[row]] += 1
        caps = [cap + 1 for cap in caps]
    return cells.iloc[sorted(chosen)]
