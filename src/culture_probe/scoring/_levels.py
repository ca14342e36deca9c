"""How each elicitation level is asked of a backend and its answers read back as options.

- ``first_token``: :meth:`Backend.score`, the labels' next-token distribution, kept as it comes;
- ``constrained``: :meth:`Backend.score_constrained`, a label sampled under a constraint (its
  ``choice``) with the exact constrained distribution where the backend gives it;
- ``written``: :meth:`Backend.write_answers` with the options shown; the text is parsed back to one
  of them as ``generate`` mode does (:func:`culture_probe.backends.generation.generated_result`);
- ``open``: :meth:`Backend.write_answers` with the options hidden; the text is assigned to one
  option, or abstains, by the mapper (:func:`culture_probe.mapper.map_open_answers`, offline).

Short-answer items are written whatever the level, and their text kept as written. A written or
open result says which rule read it in ``mapped_by``. Reading happens per plan row, after prompts
with identical messages have shared one backend call: an open prompt's text is the same under every
option order, and its option is mapped in canonical order, then placed at that row's display
position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from culture_probe.backends import Backend, ScoredPrompt, ScoringRequest
from culture_probe.backends.generation import generated_result
from culture_probe.columns import ELICITATION_LEVELS
from culture_probe.mapper import map_open_answers
from culture_probe.study import SHORT_ANSWER_SCALE

#: a backend method that turns requests into results (``score``, ``write_answers``, ...)
ScoreCall = Callable[[Sequence[ScoringRequest]], list[ScoredPrompt]]
#: reads each plan row's raw result (display order) as its final result and the rule that read it;
#: takes the rows, their requests and their raw results
Reader = Callable[
    [pd.DataFrame, Sequence[ScoringRequest], Sequence[ScoredPrompt]], list["ReadAnswer"]
]

#: the level of a plan without the ``elicitation`` column (written before the factor existed)
DEFAULT_LEVEL = ELICITATION_LEVELS[0]
#: the level a short-answer item is scored at, whatever its plan row says
SHORT_ANSWERS = "short_answer"
#: what ``mapped_by`` says for a written answer read by :func:`parse_answer`
PARSED = "parse_answer"


@dataclass(frozen=True)
class ReadAnswer:
    """One plan row's result, in display order, and the rule that read it (empty: none)."""

    result: ScoredPrompt
    mapped_by: str = ""


@dataclass(frozen=True)
class Elicitation:
    """One level: the backend call that asks it and the reader of its answers."""

    level: str
    ask: ScoreCall
    read: Reader


def levels_of(plan: pd.DataFrame) -> pd.Series:
    """Each row's level: its ``elicitation``, or ``short_answer`` for an item without options."""
    levels = (
        plan["elicitation"].astype(str)
        if "elicitation" in plan.columns
        else pd.Series(DEFAULT_LEVEL, index=plan.index)
    )
    return levels.where(plan["scale"] != SHORT_ANSWER_SCALE, SHORT_ANSWERS)


def levels_asked(plan: pd.DataFrame) -> list[str]:
    """The elicitation levels a backend must offer to score ``plan`` (short answers apart)."""
    return [str(level) for level in dict.fromkeys(levels_of(plan)) if level != SHORT_ANSWERS]


def prompts_per_level(plan: pd.DataFrame) -> dict[str, int]:
    """How many prompts of ``plan`` each level has (``short_answer`` for items without options)."""
    return {str(level): int(count) for level, count in levels_of(plan).value_counts().items()}


def elicitation_for(level: str, backend: Backend) -> Elicitation:
    """How ``level`` is asked of ``backend`` and read back."""
    if level == "constrained":
        return Elicitation(level, backend.score_constrained, _as_given)
    if level == "written":
        return Elicitation(level, backend.write_answers, _parsed)
    if level == "open":
        return Elicitation(level, backend.write_answers, _mapped)
    if level == SHORT_ANSWERS:
        return Elicitation(level, backend.write_answers, _as_given)
    return Elicitation(level, backend.score, _as_given)


def _as_given(
    rows: pd.DataFrame, requests: Sequence[ScoringRequest], results: Sequence[ScoredPrompt]
) -> list[ReadAnswer]:
    return [ReadAnswer(result) for result in results]


def _parsed(
    rows: pd.DataFrame, requests: Sequence[ScoringRequest], results: Sequence[ScoredPrompt]
) -> list[ReadAnswer]:
    """Written answers parsed back to the option they name (one-hot), as ``generate`` mode does."""
    read = []
    for request, result in zip(requests, results, strict=True):
        if result.failure:  # the server spoiled it: kept as it is, and asked again on resume
            read.append(ReadAnswer(result))
            continue
        parsed = generated_result(request, result.generated)
        choice = parsed.label_probs.index(1.0) if parsed.label_probs else -1
        read.append(ReadAnswer(replace(parsed, choice=choice), PARSED))
    return read


def _mapped(
    rows: pd.DataFrame, requests: Sequence[ScoringRequest], results: Sequence[ScoredPrompt]
) -> list[ReadAnswer]:
    """Open answers assigned to one option by the mapper (one-hot), or abstained."""
    asked = [position for position, result in enumerate(results) if not result.failure]
    answers = iter(
        map_open_answers(
            [results[position].generated for position in asked],
            [list(rows["options"].iat[position]) for position in asked],
            [str(rows["language"].iat[position]) for position in asked],
        )
    )
    read = []
    for position, (request, result) in enumerate(zip(requests, results, strict=True)):
        if result.failure:
            read.append(ReadAnswer(result))
            continue
        answer = next(answers)
        display = [int(index) for index in rows["display_to_canonical"].iat[position]]
        placed = _placed(request, result, display, answer.option, answer.outcome)
        read.append(ReadAnswer(placed, answer.rule))
    return read


def _placed(
    request: ScoringRequest,
    result: ScoredPrompt,
    display_to_canonical: list[int],
    option: int | None,
    outcome: str,
) -> ScoredPrompt:
    """A mapped answer one-hot at the display position of its canonical ``option``."""
    if outcome != "answered" or option is None:
        return ScoredPrompt(request.prompt_id, (), 0.0, outcome, result.generated)
    position = display_to_canonical.index(option)
    one_hot = tuple(float(shown == position) for shown in range(len(request.option_labels)))
    return ScoredPrompt(request.prompt_id, one_hot, 1.0, "answered", result.generated, "", position)
