"""The mirror-model alignment checks of ``test_analysis_wvs.py`` on the real WVS-7 distributions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from test_analysis_wvs import (
    check_a_mirror_is_perfectly_aligned_and_specific,
    check_wording_noise_as_large_as_country_differences_is_flagged,
    four_option_reference,
)

LILY = "wvs_wave7_country_distributions_lilyflower03"


@pytest.fixture(scope="module")
def real_reference(real_data: Path) -> pd.DataFrame:
    reference = four_option_reference(real_data / LILY)
    assert reference["item_id"].nunique() == 12  # the first 12 four-option questions
    return reference


def test_a_mirror_of_the_real_wvs_is_perfectly_aligned_and_specific(
    real_reference: pd.DataFrame,
) -> None:
    check_a_mirror_is_perfectly_aligned_and_specific(real_reference)


def test_wording_noise_as_large_as_real_country_differences_is_flagged(
    real_reference: pd.DataFrame,
) -> None:
    check_wording_noise_as_large_as_country_differences_is_flagged(real_reference)
