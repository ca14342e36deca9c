"""The balanced fraction a budget draws, and the fewest cells that estimate every factor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from culture_probe.analysis._factorial import fit_components, term_codes, unit_terms
from culture_probe.budget import balanced_fraction, min_cells_for
from culture_probe.errors import InputError

LEVELS = {"axis_region": 10, "axis_religion": 4, "paraphrase": 5, "separator": 3, "order": 2}


def _grid() -> pd.DataFrame:
    index = pd.MultiIndex.from_product([range(n) for n in LEVELS.values()], names=list(LEVELS))
    grid = index.to_frame(index=False)
    grid["prompt"] = [f"cell{k}" for k in range(len(grid))]  # rides along
    return grid


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5])
def test_every_level_and_axis_pair_within_one_of_even(share: float) -> None:
    grid = _grid()
    n = int(len(grid) * share)
    picked = balanced_fraction(grid, list(LEVELS), n, seed=3)
    assert len(picked) == n and not picked.index.duplicated().any()
    for factor, levels in LEVELS.items():
        counts = picked[factor].value_counts().reindex(range(levels), fill_value=0)
        assert counts.max() - counts.min() <= 1, factor
    pairs = picked.groupby(["axis_region", "axis_religion"]).size()
    pairs = pairs.reindex(pd.MultiIndex.from_product([range(10), range(4)]), fill_value=0)
    assert pairs.max() - pairs.min() <= 3  # a random draw of 300 spreads them over ~10
    assert (picked["prompt"] == grid.loc[picked.index, "prompt"]).all()


def test_deterministic_by_seed() -> None:
    grid = _grid()
    first = balanced_fraction(grid, list(LEVELS), 120, seed=1)
    again = balanced_fraction(grid, list(LEVELS), 120, seed=1)
    other = balanced_fraction(grid, list(LEVELS), 120, seed=2)
    assert first.index.tolist() == again.index.tolist()
    assert first.index.tolist() != other.index.tolist()


def test_excluded_combinations_never_drawn_and_levels_stay_close() -> None:
    grid = _grid()
    allowed = grid.loc[~((grid["axis_region"] == 0) & (grid["axis_religion"] == 0))]
    picked = balanced_fraction(allowed, list(LEVELS), 300, seed=0)
    assert picked.index.isin(allowed.index).all()
    counts = picked["axis_region"].value_counts()
    assert counts.max() - counts.min() <= 1


def test_fraction_at_min_cells_estimates_every_main_effect() -> None:
    grid = _grid()
    n = min_cells_for(LEVELS)
    assert n == 2 + 9 + 3 + 4 + 2 + 1
    picked = balanced_fraction(grid, list(LEVELS), n, seed=0)
    rows = picked.assign(axis="region x religion", score=np.random.default_rng(0).normal(size=n))
    terms = [t for t in unit_terms(rows, "region x religion") if t.kind in ("proxy", "context")]
    fit = fit_components(rows["score"].to_numpy(), term_codes(rows, terms))
    assert fit.df[:-1].tolist() == [9, 3, 4, 2, 1] and fit.df[-1] >= 1


def test_bad_arguments_name_the_key() -> None:
    grid = _grid()
    with pytest.raises(InputError, match=r"key 'paraphrse'.*did you mean 'paraphrase'"):
        balanced_fraction(grid, ["paraphrse"], 10, seed=0)
    with pytest.raises(InputError, match=r"key 'budget'.*between 1 and the 1200 cells, got 0"):
        balanced_fraction(grid, ["paraphrase"], 0, seed=0)
    with pytest.raises(InputError, match=r"key 'order'.*at least one level"):
        min_cells_for({"order": 0})
