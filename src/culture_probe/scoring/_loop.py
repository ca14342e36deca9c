"""The scoring loop: send the plan's unscored prompts to a backend, save results a chunk at a time.

Results are saved in canonical option order. A backend's distribution that is not one (a NaN or
negative probability, a sum far from 1) becomes an ``invalid`` result with the reason in
``generated``: it never reaches the run folder as numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.backends import Backend, ScoredPrompt, ScoringRequest, ScoringStopped
from culture_probe.errors import CultureProbeError
from culture_probe.store import RunDirectory, distribution_problem
from culture_probe.study import SHORT_ANSWER_SCALE

#: a backend method that turns requests into results (``score`` or ``write_short_answers``)
ScoreCall = Callable[[Sequence[ScoringRequest]], list[ScoredPrompt]]
#: called after each chunk with the number of prompts just finished
ProgressCallback = Callable[[int], None]


def requests_for(plan: pd.DataFrame) -> list[ScoringRequest]:
    """Backend requests for plan rows; option texts go along in display order for answer parsing."""
    requests = []
    for row in plan.itertuples(index=False):
        shown = tuple(row.options[index] for index in row.display_to_canonical)
        requests.append(
            ScoringRequest(
                prompt_id=str(row.prompt_id),
                system=str(row.system),
                user=str(row.user),
                option_labels=tuple(row.option_labels),
                seed=int(row.seed),
                options=shown,
                language=str(row.language),
            )
        )
    return requests


def to_canonical(result: ScoredPrompt, display_to_canonical: Sequence[int]) -> dict[str, Any]:
    """A result row with probabilities moved from display order to canonical option order.

    A refused or invalid result has no distribution: its ``probs`` stay empty and ``answer`` is -1.
    So does a result whose probabilities are not a distribution, which becomes ``invalid``.

    Example:
        >>> to_canonical(ScoredPrompt("p", (0.75, 0.25), 1.0), [1, 0])["probs"]
        [0.25, 0.75]
        >>> broken = to_canonical(ScoredPrompt("p", (float("nan"), 1.0), 1.0), [0, 1])
        >>> broken["outcome"], broken["probs"], broken["generated"]
        ('invalid', [], 'the backend gave no distribution: probability nan is not a finite number')
    """
    problem = distribution_problem(result.label_probs)
    if not result.label_probs or problem is not None:
        return {
            "probs": [],
            "option_mass": float(result.option_mass) if problem is None else 0.0,
            "answer": -1,
            "outcome": result.outcome if problem is None else "invalid",
            "generated": result.generated
            if problem is None
            else f"the backend gave no distribution: {problem}",
            "failure": result.failure,
        }
    probs = np.zeros(len(display_to_canonical))
    for position, canonical in enumerate(display_to_canonical):
        probs[canonical] = result.label_probs[position]
    answered = result.outcome == "answered"
    return {
        "probs": probs.tolist(),
        "option_mass": float(result.option_mass),
        "answer": int(np.argmax(probs)) if answered else -1,
        "outcome": result.outcome,
        "generated": result.generated,
        "failure": result.failure,
    }


def score_plan(
    run: RunDirectory,
    plan: pd.DataFrame,
    backend: Backend,
    on_progress: ProgressCallback | None = None,
    chunk_size: int | None = None,
) -> int:
    """Score every prompt that has no result yet, saving a chunk at a time; returns how many.

    A prompt whose last result the server spoiled (a malformed reply) is asked again. Prompts
    with identical messages (and seed) are sent to the backend once; in ``logprobs`` mode their
    answer is deterministic, and a sample is seeded by its prompt, so the result is shared.
    Short-answer items (the plan's ``scale`` is ``short_answer``) have no labels to read: they go
    to :meth:`Backend.write_short_answers`, and their text is kept in ``generated``.
    """
    run.remove_stale_temporaries()
    done = run.answered_ids()
    todo = plan[~plan["prompt_id"].isin(done)]
    scored = 0
    for chunk in _chunks(todo, chunk_size or backend.preferred_chunk_size):
        for part, score in _by_scoring(chunk, backend):
            try:
                results = _score_chunk(part, score)
            except ScoringStopped as stopped:
                _save_completed(run, part, stopped)
                raise
            except CultureProbeError:
                raise
            except Exception as error:  # a model or a server failing in its own library's terms
                raise _backend_failure(error, backend, scored) from error
            run.append_chunk(results)
            scored += len(part)
            if on_progress is not None:
                on_progress(len(part))
    return scored


def first_line(error: BaseException) -> str:
    """The first line of an error's message, at most 300 characters."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def _backend_failure(error: Exception, backend: Backend, saved: int) -> CultureProbeError:
    """The user's message for a backend that failed in the middle of scoring."""
    text = f"{type(error).__name__}: {first_line(error)}"
    out_of_memory = isinstance(error, MemoryError) or "out of memory" in text.lower()
    todo = (
        "lower --batch-size (or --option batch_size) and run the same command again"
        if out_of_memory
        else "run the same command again to resume; --debug shows the traceback"
    )
    return CultureProbeError(
        f"the {backend.info().backend} backend failed while scoring ({text}); the prompts scored "
        f"before it ({saved} in this session) are saved: {todo}"
    )


def _by_scoring(chunk: pd.DataFrame, backend: Backend) -> Iterator[tuple[pd.DataFrame, ScoreCall]]:
    """The chunk's choice rows with ``score``, its short-answer rows with ``write_short_answers``."""
    writes = (chunk["scale"] == SHORT_ANSWER_SCALE).to_numpy()
    if (~writes).any():
        yield chunk.loc[~writes], backend.score
    if writes.any():
        yield chunk.loc[writes], backend.write_short_answers


def _chunks(plan: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(plan), size):
        yield plan.iloc[start : start + size]


def _dedup_key(chunk: pd.DataFrame) -> pd.Series:
    """Prompts with the same key (messages and seed) get one backend call and share its result."""
    return chunk["text_hash"] + ":" + chunk["seed"].astype(str)


def _save_completed(run: RunDirectory, chunk: pd.DataFrame, stopped: ScoringStopped) -> None:
    """Save the results a backend finished before it stopped, so that a rerun skips them."""
    dedup_key = _dedup_key(chunk)
    unique_keys = list(dedup_key.loc[~dedup_key.duplicated()])
    by_key = {unique_keys[position]: result for position, result in stopped.completed.items()}
    rows = _rows(chunk, dedup_key, by_key)
    if rows:
        run.append_chunk(pd.DataFrame(rows))


def _score_chunk(chunk: pd.DataFrame, score: ScoreCall) -> pd.DataFrame:
    dedup_key = _dedup_key(chunk)
    unique = chunk.loc[~dedup_key.duplicated()]
    results = score(requests_for(unique))
    if len(results) != len(unique):
        raise CultureProbeError(
            f"the backend returned {len(results)} results for {len(unique)} prompts"
        )
    by_key = dict(zip(dedup_key.loc[unique.index], results, strict=True))
    return pd.DataFrame(_rows(chunk, dedup_key, by_key))


def _rows(
    chunk: pd.DataFrame, dedup_key: pd.Series, by_key: dict[str, ScoredPrompt]
) -> list[dict[str, Any]]:
    """One result row per prompt of ``chunk`` whose key has a result."""
    return [
        {"prompt_id": prompt_id, **to_canonical(by_key[key], display)}
        for prompt_id, key, display in zip(
            chunk["prompt_id"], dedup_key, chunk["display_to_canonical"], strict=True
        )
        if key in by_key
    ]
