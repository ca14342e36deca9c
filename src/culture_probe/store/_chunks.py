"""What a saved result must look like: each chunk is checked as it is read back.

A result row is valid when its ``probs`` are empty (a refusal, an invalid answer, a written short
answer) or finite, each in [0, 1], and sum to 1 within :data:`SUM_TOLERANCE`. A chunk with one
invalid row is set aside whole and its prompts scored again: a row that lies about its
probabilities cannot be told apart from its neighbours written by the same damaged process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.columns import RESPONSE_COLUMNS

#: how far a row's probabilities may sum from 1 (float32 backends round to about 1e-7 per option)
SUM_TOLERANCE = 1e-4
#: ``failure`` of a result the server, not the model, spoiled (a malformed reply): asked again on
#: resume. Empty for the model's own outcome.
SERVER_FAILURE = "server"
#: the column that tells the two apart; chunks written before it existed have none (all model's own)
FAILURE = "failure"
#: the rule or judge that read a written or open answer; chunks written before it have none
MAPPED_BY = "mapped_by"
#: columns added after the first run folders were written, empty in the chunks that lack them
LATER_COLUMNS = (FAILURE, MAPPED_BY)


def with_later_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :data:`LATER_COLUMNS` ("" where it had none): older chunks lack them."""
    missing = {column: "" for column in LATER_COLUMNS if column not in frame.columns}
    return frame.assign(**missing) if missing else frame


def chunk_problem(frame: pd.DataFrame) -> str | None:
    """Why a chunk of results cannot be trusted, or None when every row is valid."""
    missing = [
        column
        for column in RESPONSE_COLUMNS
        if column not in frame.columns and column not in LATER_COLUMNS
    ]
    if missing:
        return f"lacks the columns {', '.join(missing)}"
    found = first_invalid_probabilities(frame["probs"])
    if found is None:
        return None
    row, reason = found
    return f"row {row} (prompt {frame['prompt_id'].iat[row]}): {reason}"


def first_invalid_probabilities(column: Iterable[Any]) -> tuple[int, str] | None:
    """The first row whose probabilities are not a distribution, with what is wrong with it.

    Example:
        >>> first_invalid_probabilities([[0.5, 0.5], [], [0.2, float("nan")]])
        (2, 'probability nan is not a finite number')
        >>> first_invalid_probabilities([[1.5, -0.5]])
        (0, 'probability 1.5 is outside [0, 1]')
        >>> first_invalid_probabilities([[0.25, 0.25]]) is None
        False
    """
    for row, value in enumerate(column):
        reason = distribution_problem(value)
        if reason is not None:
            return row, reason
    return None


def distribution_problem(value: Any) -> str | None:
    """What is wrong with one row's probabilities, or None (an empty row is no distribution)."""
    if value is None:
        return None
    try:
        probs = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return f"probabilities {str(value)[:60]} are not numbers"
    if probs.size == 0:
        return None
    bad = probs[~np.isfinite(probs)]
    if bad.size:
        return f"probability {bad[0]} is not a finite number"
    outside = probs[(probs < 0) | (probs > 1)]
    if outside.size:
        return f"probability {outside[0]:g} is outside [0, 1]"
    total = float(probs.sum())
    if abs(total - 1) > SUM_TOLERANCE:
        return f"probabilities sum to {total:.6g}, not 1"
    return None
