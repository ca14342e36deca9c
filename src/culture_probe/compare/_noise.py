"""Differences the numeric noise floor alone can produce are not called differences.

Each run's manifest records its noise floor (:mod:`culture_probe.noise_floor`): the largest change
of one prompt's score when only the batch composition changes. One run's score can sit that far
from where it would sit in another batch, so two runs can differ by the sum of their floors from
rounding alone; a mean of scores moves no further than its largest single score. A difference no
larger than that combined floor is reported as "within numeric noise" (docs/compare.md).
"""

from __future__ import annotations

import math

import pandas as pd

from culture_probe.compare._runs import ComparedRun
from culture_probe.noise_floor import KEY

#: the manifest's measure of one run's floor
FLOOR_MEASURE = "max_abs_score"


def run_noise_floor(run: ComparedRun) -> float | None:
    """The run's floor on the score scale, or None when the run did not measure one."""
    floor = run.manifest.get(KEY) or {}
    value = floor.get(FLOOR_MEASURE) if floor.get("n_prompts") else None
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def combined_noise_floor(a: ComparedRun, b: ComparedRun) -> float | None:
    """How far two runs' scores can differ from rounding alone: the sum of their floors.

    None when either run has no floor recorded (runs made before it was measured): nothing is then
    set aside as noise, and the comparison says so.
    """
    floors = [run_noise_floor(a), run_noise_floor(b)]
    if any(floor is None for floor in floors):
        return None
    return float(sum(floor for floor in floors if floor is not None))


def within_noise(differences: pd.Series, floor: float | None) -> pd.Series:
    """Whether each difference is no larger than the floor (all False without a floor)."""
    if floor is None:
        return pd.Series(False, index=differences.index)
    return differences.abs() <= floor
