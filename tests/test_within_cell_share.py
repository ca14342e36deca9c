"""The rest of the two-way model's variance, as the sentences print it."""

from __future__ import annotations

import pytest

from culture_probe.analysis._summary import within_cell_share


def _aggregate(estimate: float, low: float, high: float) -> dict[str, float]:
    return {"estimate": estimate, "ci_low": low, "ci_high": high}


def test_the_residuals_own_interval_is_kept_where_nothing_was_clipped() -> None:
    aggregates = {
        "mean_culture_share": _aggregate(0.25, 0.2, 0.3),
        "mean_wording_share": _aggregate(0.05, 0.01, 0.09),
        "mean_wording_contrast_share": _aggregate(0.10, 0.05, 0.15),
        "mean_residual_share": _aggregate(0.60, 0.5, 0.7),
    }
    rest = within_cell_share(aggregates)
    assert rest["complement"] is False
    assert (rest["estimate"], rest["ci_low"], rest["ci_high"]) == (0.60, 0.5, 0.7)


def test_a_negative_component_makes_the_rest_a_complement_without_an_interval() -> None:
    """The food_religion case: wording-by-culture's mean is below 0 and prints as not
    distinguishable from zero, so the residual's own mean is above 1; the sentence gives
    1 - 0.000018 - 0.0031 instead of 100% [100%, 100%]."""
    aggregates = {
        "mean_culture_share": _aggregate(0.000018, 0.0000077, 0.000027),
        "mean_wording_share": _aggregate(0.0031, 0.00055, 0.0057),
        "mean_wording_contrast_share": _aggregate(-0.0004, -0.001, 0.0002),
        "mean_residual_share": _aggregate(1.0, 1.0, 1.0),
    }
    rest = within_cell_share(aggregates)
    assert rest["complement"] is True
    assert rest["estimate"] == pytest.approx(1 - 0.000018 - 0.0031, abs=1e-15)
    assert rest["ci_low"] is None and rest["ci_high"] is None


def test_an_undetermined_component_leaves_the_rest_undetermined() -> None:
    rest = within_cell_share({"mean_culture_share": _aggregate(float("nan"), 0, 0)})
    assert rest["complement"] is True and rest["estimate"] != rest["estimate"]


def test_study_shares_pool_the_items_components_and_add_up_to_one() -> None:
    """Hand-worked: two items with totals 1.0 and 3.0; culture's untruncated components 0.4 and
    0.3 give the pooled share (0.4 + 0.3) / 4 = 0.175, not the mean of 0.4 and 0.1 (0.25)."""
    import numpy as np
    import pandas as pd

    from culture_probe.analysis._summary import two_stage_aggregates

    table = pd.DataFrame(
        {
            "var_proxy": [0.4, 0.3],
            "var_wording": [0.1, 0.0],
            "var_interaction": [0.0, 0.2],
            "var_residual": [0.5, 2.5],
            "raw_culture_share": [0.4, 0.1],
            "raw_wording_share": [0.1, -0.1 / 3],  # item 2's wording component, -0.1, truncated
            "raw_wording_contrast_share": [0.0, 0.2 / 3],
            "raw_residual_share": [0.5, 1 - 0.1 - (-0.1 / 3) - 0.2 / 3],
        }
    )
    for column in ("culture_share", "wording_share", "wording_contrast_share", "residual_share",
                   "order_share", "cwi", "kendall_w", "rho2_1"):  # fmt: skip
        table[column] = np.nan
    replicates = {"var_proxy": np.zeros((2, 10)), "var_interaction": np.zeros((2, 10))}
    out = two_stage_aggregates(table, replicates, seed=0)
    assert out["mean_culture_share"]["estimate"] == pytest.approx(0.7 / 4)
    assert out["mean_wording_share"]["estimate"] == pytest.approx(0.0)  # (0.1 - 0.1) / 4
    shares = ("culture", "wording", "wording_contrast", "residual")
    total = sum(out[f"mean_{name}_share"]["estimate"] for name in shares)
    assert total == pytest.approx(1.0)
