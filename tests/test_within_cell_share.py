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
