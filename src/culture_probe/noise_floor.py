"""A run's numeric noise floor: how far one prompt's answer moves when only the batch changes.

Reduced-precision kernels (bfloat16, float16) give a prompt slightly different log-probabilities
depending on which prompts share its batch and where it sits in it (padding, the order of the
reductions): SmolLM2 at bfloat16 scores one prompt up to 0.05 apart. Two runs of one model then
differ by that much from rounding alone, and ``compare`` would call it a difference between models.

After scoring, :func:`measure_noise_floor` scores a small sample of the run's prompts again, one
prompt per call and in reversed order (a batch composition the run never used), and
:func:`record_noise_floor` writes the largest and mean absolute change of the option
probabilities and of the score (expected ordinal position, 0-1) into the manifest under
``noise_floor``. ``compare`` does not call a difference smaller than the two runs' floors
combined (docs/compare.md, "Numeric noise").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.atomic import atomic_write_json
from culture_probe.backends import Backend
from culture_probe.scoring import requests_for, to_canonical
from culture_probe.store import MANIFEST, RunDirectory, disk_errors

#: how many prompts are scored a second time
SAMPLE_SIZE = 32
#: the manifest key
KEY = "noise_floor"
#: the backends that put prompts in batches, whose answers can move with the batch; others (a
#: backend written for a test or a rule-based one) answer each prompt alone and are not re-asked
BATCHING_BACKENDS = ("hf", "vllm", "openai")
#: how the sample is scored the second time
COMPOSITION = "one prompt per call, in reversed order"

#: scores plan rows and returns one row per prompt: ``prompt_id``, ``probs`` (canonical order)
Rescore = Callable[[pd.DataFrame], pd.DataFrame]


def noise_sample(
    plan: pd.DataFrame, responses: pd.DataFrame, size: int = SAMPLE_SIZE
) -> pd.DataFrame:
    """Up to ``size`` distinct answered prompts, spread evenly over the plan (deterministic).

    Only prompts whose distribution is read off the labels (``first_token``) can be compared;
    duplicates of one text (same hash and seed) would be scored once anyway, so one of each is
    kept.
    """
    answered = responses.loc[responses["probs"].map(len) > 0, "prompt_id"]
    candidates = plan.loc[plan["prompt_id"].isin(set(answered))]
    if "scale" in candidates.columns:
        candidates = candidates.loc[candidates["scale"] != "short_answer"]
    if "elicitation" in candidates.columns:  # the other levels sample or write their answers
        candidates = candidates.loc[candidates["elicitation"] == "first_token"]
    if "text_hash" in candidates.columns:
        key = candidates["text_hash"].astype(str) + ":" + candidates["seed"].astype(str)
        candidates = candidates.loc[~key.duplicated()]
    if len(candidates) <= size:
        return candidates
    positions = np.linspace(0, len(candidates) - 1, size).round().astype(int)
    return candidates.iloc[np.unique(positions)]


def measure_noise_floor(
    plan: pd.DataFrame, responses: pd.DataFrame, rescore: Rescore, size: int = SAMPLE_SIZE
) -> dict[str, Any]:
    """Score a sample again one prompt at a time, in reversed order; how far its answers moved.

    Args:
        plan: the run's plan (``prompt_id``, ``n_options`` and what ``rescore`` needs).
        responses: the run's responses (``prompt_id``, ``probs`` in canonical order).
        rescore: scores a frame of plan rows in one backend call.
        size: how many prompts to score again.

    Returns:
        ``n_prompts``, ``composition``, ``max_abs_prob``, ``mean_abs_prob``, ``max_abs_score``,
        ``mean_abs_score`` (0 when nothing moved; ``n_prompts`` 0 when nothing could be compared).
    """
    sample = noise_sample(plan, responses, size)
    again = [rescore(sample.iloc[[index]]) for index in reversed(range(len(sample)))]
    first = responses.set_index("prompt_id")["probs"]
    pairs = [
        (np.asarray(first[row.prompt_id], float), np.asarray(row.probs, float))
        for frame in again
        for row in frame.itertuples(index=False)
        if len(row.probs) and len(row.probs) == len(first[row.prompt_id])
    ]
    return summarise(pairs)


def summarise(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The noise floor of pairs of one prompt's probabilities (first run, second run)."""
    prob_changes = [float(np.max(np.abs(a - b))) for a, b in pairs]
    score_changes = [abs(expected_position(a) - expected_position(b)) for a, b in pairs]
    return {
        "n_prompts": len(pairs),
        "composition": COMPOSITION,
        "max_abs_prob": max(prob_changes, default=0.0),
        "mean_abs_prob": float(np.mean(prob_changes)) if pairs else 0.0,
        "max_abs_score": max(score_changes, default=0.0),
        "mean_abs_score": float(np.mean(score_changes)) if pairs else 0.0,
    }


def expected_position(probs: np.ndarray) -> float:
    """The score of one distribution: sum_k p_k k / (K - 1), as the analysis computes it."""
    return float(np.dot(probs, np.arange(len(probs))) / max(len(probs) - 1, 1))


def backend_rescore(backend: Backend) -> Rescore:
    """Score plan rows with ``backend`` in one call, probabilities in canonical order."""

    def rescore(rows: pd.DataFrame) -> pd.DataFrame:
        results = backend.score(requests_for(rows))
        return pd.DataFrame(
            {
                "prompt_id": rows["prompt_id"].to_numpy(),
                "probs": [
                    to_canonical(result, display)["probs"]
                    for result, display in zip(results, rows["display_to_canonical"], strict=True)
                ],
            }
        )

    return rescore


def record_noise_floor(
    run: RunDirectory, plan: pd.DataFrame, responses: pd.DataFrame, backend: Backend
) -> dict[str, Any]:
    """Measure the noise floor once per run and write it into the manifest; returns it ({} when
    not measured).

    A run that already records one (a resumed run) keeps it, so resuming scores nothing again; a
    backend that does not batch (not in :data:`BATCHING_BACKENDS`) is not asked again, and the
    run records no floor.
    The floor is a check on the scores, not part of them: a backend that fails while scoring the
    sample again leaves the run as it is, with the reason recorded instead of the floor.
    """
    manifest = run.manifest()
    if KEY in manifest:
        return dict(manifest[KEY])
    if backend.info().backend not in BATCHING_BACKENDS:
        return {}
    try:
        floor = measure_noise_floor(plan, responses, backend_rescore(backend))
    except Exception as error:  # a model or a server failing in its own library's terms
        floor = {"n_prompts": 0, "not_measured": f"{type(error).__name__}: {error}"[:300]}
    manifest[KEY] = floor
    with disk_errors(run.path / MANIFEST):
        atomic_write_json(run.path / MANIFEST, manifest)
    return floor
