"""The crossed-axes means of the report, against a hand-worked example and statsmodels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.weightstats import DescrStatsW

from culture_probe.report._crossed import cell_means, marginal_means, t_interval

PARTS = ["region", "religion"]


def _rows() -> pd.DataFrame:
    """Two regions x two religions less the (IL, zoroastrianism) pair, two wordings, one order;
    India has two prompts per cell, so a prompt-weighted mean would differ from a cell-weighted
    one."""
    rows = []
    scores = {("IN", "islam"): [0.1, 0.3], ("IN", "zoroastrianism"): [0.9, 0.9],
              ("IL", "islam"): [0.5]}  # fmt: skip
    for wording, shift in (("w1", 0.0), ("w2", 0.1)):
        for (region, religion), values in scores.items():
            for value in values:
                rows.append({"level:region": region, "level:religion": religion,
                             "order": "canonical", "wording": wording, "score": value + shift})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_level_mean_gives_every_persona_the_same_weight() -> None:
    means = marginal_means(_rows(), "region", PARTS).set_index("level")
    # India: cells (0.1+0.3)/2 = 0.2 and 0.9 -> 0.55 in w1, 0.65 in w2 -> 0.60
    assert means.loc["IN", "mean"] == pytest.approx(0.60)
    assert means.loc["IL", "mean"] == pytest.approx(0.55)
    assert (means["n_wordings"] == 2).all()
    religion = marginal_means(_rows(), "religion", PARTS).set_index("level")
    # islam: India 0.2 and Israel 0.5 -> 0.35 in w1, 0.45 in w2 -> 0.40
    assert religion.loc["islam", "mean"] == pytest.approx(0.40)


def test_the_interval_is_the_t_interval_over_wordings() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(0.5, 0.1, size=6)
    low, high = t_interval(values)
    expected = DescrStatsW(values).tconfint_mean(alpha=0.05)
    assert (low, high) == pytest.approx(expected)
    means = marginal_means(_rows(), "region", PARTS).set_index("level")
    india = DescrStatsW(np.array([0.55, 0.65])).tconfint_mean(alpha=0.05)
    assert (means.loc["IN", "low"], means.loc["IN", "high"]) == pytest.approx(india)


def test_one_wording_gives_no_interval_and_the_grid_keeps_the_excluded_pair_out() -> None:
    single = _rows().loc[lambda frame: frame["wording"] == "w1"]
    means = marginal_means(single, "region", PARTS)
    assert means["low"].isna().all() and means["high"].isna().all()
    cells = cell_means(single, PARTS)
    assert len(cells) == 3  # (IL, zoroastrianism) was never asked
    assert cells.set_index(["level:region", "level:religion"]).loc[("IN", "islam"), "score"] == (
        pytest.approx(0.2)
    )
