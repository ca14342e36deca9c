"""The scoring loop: send the plan's unscored prompts to a backend, save results a chunk at a time.

Results are saved in canonical option order. A backend's distribution that is not one (a NaN or
negative probability, a sum far from 1) becomes an ``invalid`` result with the reason in
``generated``: it never reaches the run folder as numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.backends import Backend, ScoredPrompt, ScoringRequest, ScoringStopped
from culture_probe.errors import CultureProbeError
from culture_probe.scoring._levels import Elicitation, ReadAnswer, elicitation_for, levels_of
from culture_probe.store import RunDirectory, distribution_problem

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


def to_canonical(
    result: ScoredPrompt, display_to_canonical: Sequence[int], mapped_by: str = ""
) -> dict[str, Any]:
    """A result row with probabilities moved from display order to canonical option order.

    A refused, abstained or invalid result has no distribution: its ``probs`` stay empty and
    ``answer`` is -1. So does a result whose probabilities are not a distribution, which becomes
    ``invalid``. The answer is the option at the result's ``choice`` where it has one (a label
    sampled under a constraint), else the most probable option.

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
            "mapped_by": mapped_by,
        }
    probs = np.zeros(len(display_to_canonical))
    for position, canonical in enumerate(display_to_canonical):
        probs[canonical] = result.label_probs[position]
    chosen = (
        int(display_to_canonical[result.choice])
        if 0 <= result.choice < len(display_to_canonical)
        else int(np.argmax(probs))
    )
    return {
        "probs": probs.tolist(),
        "option_mass": float(result.option_mass),
        "answer": chosen if result.outcome == "answered" else -1,
        "outcome": result.outcome,
        "generated": result.generated,
        "failure": result.failure,
        "mapped_by": mapped_by,
    }


def score_plan(
    run: RunDirectory,
    plan: pd.DataFrame,
    backend: Backend,
    on_progress: ProgressCallback | None = None,
    chunk_size: int | None = None,
    seconds_per_level: dict[str, float] | None = None,
) -> int:
    """Score every prompt that has no result yet, saving a chunk at a time; returns how many.

    A prompt whose last result the server spoiled (a malformed reply) is asked again. Prompts
    with identical messages, seed and elicitation level are sent to the backend once; in
    ``logprobs`` mode their answer is deterministic, and a sample is seeded by its prompt, so the
    result is shared. Each elicitation level goes to its own backend method and reader
    (:mod:`culture_probe.scoring._levels`); short-answer items (the plan's ``scale`` is
    ``short_answer``) go to :meth:`Backend.write_answers`, and their text is kept in ``generated``.

    Args:
        seconds_per_level: where given, the wall time spent on each level (asking and reading)
            is added to it.
    """
    run.remove_stale_temporaries()
    done = run.answered_ids()
    todo = plan[~plan["prompt_id"].isin(done)]
    scored = 0
    for chunk in _chunks(todo, chunk_size or backend.preferred_chunk_size):
        for part, elicitation in _by_scoring(chunk, backend):
            try:
                with _timed(seconds_per_level, elicitation.level):
                    results = _score_chunk(part, elicitation)
            except ScoringStopped as stopped:
                _save_completed(run, part, elicitation, stopped)
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


@contextmanager
def _timed(seconds: dict[str, float] | None, level: str) -> Iterator[None]:
    """Add the wall time of the block to ``seconds[level]`` (nothing when ``seconds`` is None)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if seconds is not None:
            seconds[level] = seconds.get(level, 0.0) + time.perf_counter() - started


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


def _by_scoring(
    chunk: pd.DataFrame, backend: Backend
) -> Iterator[tuple[pd.DataFrame, Elicitation]]:
    """The chunk's rows of each elicitation level (short answers apart), with how to ask them."""
    levels = levels_of(chunk)
    for level in dict.fromkeys(levels):
        yield chunk.loc[levels == level], elicitation_for(str(level), backend)


def _chunks(plan: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(plan), size):
        yield plan.iloc[start : start + size]


def _dedup_key(chunk: pd.DataFrame) -> pd.Series:
    """Prompts with the same key (messages, seed and level) get one backend call and share it."""
    return chunk["text_hash"] + ":" + chunk["seed"].astype(str) + ":" + levels_of(chunk)


def _save_completed(
    run: RunDirectory, chunk: pd.DataFrame, elicitation: Elicitation, stopped: ScoringStopped
) -> None:
    """Save the results a backend finished before it stopped, so that a rerun skips them."""
    dedup_key = _dedup_key(chunk)
    unique_keys = list(dedup_key.loc[~dedup_key.duplicated()])
    by_key = {unique_keys[position]: result for position, result in stopped.completed.items()}
    rows = _rows(chunk, dedup_key, by_key, elicitation)
    if rows:
        run.append_chunk(pd.DataFrame(rows))


def _score_chunk(chunk: pd.DataFrame, elicitation: Elicitation) -> pd.DataFrame:
    dedup_key = _dedup_key(chunk)
    unique = chunk.loc[~dedup_key.duplicated()]
    results = elicitation.ask(requests_for(unique))
    if len(results) != len(unique):
        raise CultureProbeError(
            f"the backend returned {len(results)} results for {len(unique)} prompts"
        )
    by_key = dict(zip(dedup_key.loc[unique.index], results, strict=True))
    return pd.DataFrame(_rows(chunk, dedup_key, by_key, elicitation))


def _rows(
    chunk: pd.DataFrame,
    dedup_key: pd.Series,
    by_key: dict[str, ScoredPrompt],
    elicitation: Elicitation,
) -> list[dict[str, Any]]:
    """One result row per prompt of ``chunk`` whose key has a result, read at its level."""
    answered = chunk.loc[dedup_key.isin(list(by_key)).to_numpy()]
    raw = [by_key[key] for key in dedup_key.loc[answered.index]]
    read: list[ReadAnswer] = elicitation.read(answered, requests_for(answered), raw)
    return [
        {"prompt_id": prompt_id, **to_canonical(answer.result, display, answer.mapped_by)}
        for prompt_id, answer, display in zip(
            answered["prompt_id"], read, answered["display_to_canonical"], strict=True
        )
    ]
