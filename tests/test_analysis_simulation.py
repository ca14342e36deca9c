"""Planted effects get the right verdict: 200 independent items per scenario, one analysis each.

Each item of a simulated study draws its own proxy, wording and interaction effects, so the items
are 200 replicate experiments analysed in one vectorised call. The stated error rates are the
acceptance bounds of these tests.
"""

from __future__ import annotations

import pandas as pd
import pytest

from culture_probe.analysis import analyze, tidy_responses
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study

REPLICATES = 200
NOISE = 0.05
PLANTED = 0.12


def _verdicts(effects: PlantedEffects, seed: int, n_placebos: int = 2) -> pd.Series:
    plan, responses = simulate_study(
        effects,
        n_items=REPLICATES,
        n_proxies=6,
        n_paraphrases=5,
        n_orders=2,
        n_placebos=n_placebos,
        seed=seed,
    )
    result = analyze(tidy_responses(plan, responses), n_bootstrap=50, n_permutations=19, seed=seed)
    return result.tables["item_stats"]["verdict"]


@pytest.mark.parametrize(
    ("effects", "expected", "max_error_rate"),
    [
        (PlantedEffects(culture=PLANTED, noise=NOISE), "culture-dominant", 0.05),
        (PlantedEffects(wording=PLANTED, noise=NOISE), "wording-dominated", 0.05),
        (PlantedEffects(interaction=PLANTED, noise=NOISE), "wording-dominated", 0.05),
        (PlantedEffects(noise=NOISE), "no culture effect", 0.05),
        (PlantedEffects(culture=PLANTED, position_bias=0.6, noise=NOISE), "order-dominated", 0.05),
    ],
    ids=["pure-culture", "pure-wording", "culture-x-wording", "null", "position-over-culture"],
)
def test_planted_effect_gets_its_verdict(
    effects: PlantedEffects, expected: str, max_error_rate: float
) -> None:
    verdicts = _verdicts(effects, seed=1)
    assert len(verdicts) == REPLICATES
    assert (verdicts != expected).mean() <= max_error_rate


def test_null_study_rarely_claims_a_culture_effect() -> None:
    # False culture claims under the null are bounded by the BH-controlled F_C test.
    verdicts = _verdicts(PlantedEffects(wording=0.03, noise=NOISE), seed=2)
    assert (verdicts == "culture-dominant").mean() <= 0.05


def test_placebo_effect_as_large_as_culture_blocks_culture_dominance() -> None:
    # Six real and six placebo proxies move answers equally: not evidence of a *cultural* effect.
    # Per item the realised placebo spread varies, so culture still wins on some items, but far
    # less often than the 95% of the pure-culture scenario.
    effects = PlantedEffects(culture=PLANTED, placebo=PLANTED, noise=NOISE)
    verdicts = _verdicts(effects, seed=3, n_placebos=6)
    assert (verdicts == "culture-dominant").mean() <= 0.5
    assert (verdicts == "mixed").mean() >= 0.4
