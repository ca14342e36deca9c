"""Scoring: the plan's prompts sent to a backend, results saved to the run folder resumably.

- :mod:`._identity`: what identifies a run (the run key, the manifest, the default folder);
- :mod:`._loop`: requests, the scoring loop, results in canonical option order;
- :mod:`._levels`: how each elicitation level is asked and its answers read back;
- :mod:`._short_answers`: written short answers matched against annotated ones (BLEnD);
- :mod:`._responses`: the study's human data copied in, ``responses.parquet`` written out.
"""

from culture_probe.scoring._identity import (
    build_manifest,
    default_run_dir,
    has_short_answers,
    plan_hash,
)
from culture_probe.scoring._levels import levels_asked, prompts_per_level
from culture_probe.scoring._loop import (
    ProgressCallback,
    first_line,
    requests_for,
    score_plan,
    to_canonical,
)
from culture_probe.scoring._responses import copy_reference, write_responses
from culture_probe.scoring._short_answers import (
    MATCH_COLUMNS,
    Match,
    answer_matches,
    best_match,
    normalise_answer,
    score_short_answers,
    with_matches,
)

__all__ = [
    "MATCH_COLUMNS",
    "Match",
    "ProgressCallback",
    "answer_matches",
    "best_match",
    "build_manifest",
    "copy_reference",
    "default_run_dir",
    "first_line",
    "has_short_answers",
    "levels_asked",
    "normalise_answer",
    "plan_hash",
    "prompts_per_level",
    "requests_for",
    "score_plan",
    "score_short_answers",
    "to_canonical",
    "with_matches",
    "write_responses",
]
