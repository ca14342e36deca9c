"""What the scoring stage leaves in a run folder beside its chunks.

Before scoring, the study's human data (``reference.parquet``, ``answers.parquet``); after it,
``responses.parquet``: every prompt's result in plan order, short answers matched against the
annotated ones.
"""

from __future__ import annotations

import pandas as pd

from culture_probe.errors import CultureProbeError, InputError
from culture_probe.scoring._identity import has_short_answers
from culture_probe.scoring._short_answers import with_matches
from culture_probe.store import ANSWERS, RunDirectory
from culture_probe.study import Study, read_reference


def copy_reference(study: Study, run: RunDirectory) -> None:
    """Copy the study's ``reference:`` table (checked) and its annotated ``answers:`` into the run.

    The analysis reads the reference for its alignment tables (1 - JSD, representativeness,
    MaxP/AvgP/CPS, steering, noise-to-human-signal ratio); short answers are matched against
    the annotated answers.
    """
    if study.answers is not None:
        run.write_answers(pd.read_parquet(study.answers))
    if study.reference is not None:
        run.write_reference(read_reference(study.reference, study.items))


def write_responses(run: RunDirectory, plan: pd.DataFrame) -> pd.DataFrame:
    """Write ``responses.parquet`` in plan order once every prompt has a result; returns it.

    Short-answer texts are scored against the annotated answers (``match``, ``matched_answer``,
    ``match_share``: see :func:`culture_probe.scoring.with_matches`).

    Raises:
        CultureProbeError: some prompts have no result yet.
        InputError: the plan has short-answer items but the run no annotated answers.
    """
    scored = run.results()
    missing = set(plan["prompt_id"]) - set(scored["prompt_id"])
    if missing:
        raise CultureProbeError(f"{len(missing)} prompts have no result yet; run again to resume")
    responses = plan[["prompt_id"]].merge(scored, on="prompt_id", how="left", validate="1:1")
    if has_short_answers(plan):
        answers = run.answers()
        if answers is None:
            raise InputError(
                "the study has short-answer items but the run has no annotated answers",
                path=run.path / ANSWERS,
                hint="add 'answers: answers.parquet' to the study "
                "(culture-probe import blend writes it)",
            )
        responses = with_matches(plan, responses, answers)
    run.write_responses(responses)
    return responses
