"""Checking human answer distributions from public datasets before they become a reference.

Survey datasets report the shares of the substantive answers and leave out "don't know" and "no
answer", so a row's shares often sum to less than 1; rounding makes others sum to a little more.
The rule here: shares must be finite and non-negative; a row that sums to more than
``1 + SUM_TOLERANCE`` or to less than ``MIN_COVERAGE`` is rejected; every other row is renormalised
over its options, which is how Durmus et al. (2023, GlobalOpinionQA) and Santurkar et al. (2023,
OpinionQA) compare model and human distributions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from culture_probe.errors import InputError

SUM_TOLERANCE = 0.02
MIN_COVERAGE = 0.5


def checked_shares(
    shares: Sequence[float],
    *,
    path: str,
    line: int | None = None,
    key: str,
    what: str,
) -> list[float]:
    """Validate one distribution and renormalise it to sum to 1.

    Args:
        shares: one share per option, as fractions (divide percentages by 100 first).
        path, line, key: where the row is, for the error message.
        what: a readable name of the row (question and country).

    Returns:
        The shares divided by their sum.

    Example:
        >>> checked_shares([0.125, 0.375], path="d.json", key="distribution", what="Q1")
        [0.25, 0.75]
    """
    values = [float(share) for share in shares]
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise InputError(
            f"{what}: shares must be finite and non-negative, got {values}",
            path=path,
            line=line,
            key=key,
        )
    total = sum(values)
    if total > 1 + SUM_TOLERANCE:
        raise InputError(
            f"{what}: the shares sum to {total:.3f}; expected at most 1 + {SUM_TOLERANCE} "
            "(shares of the substantive answers, renormalised on import)",
            path=path,
            line=line,
            key=key,
        )
    if total < MIN_COVERAGE:
        raise InputError(
            f"{what}: the shares sum to {total:.3f}; at least {MIN_COVERAGE} of the answers must "
            "fall on the listed options for the distribution to stand for the population "
            "(the rest are taken as don't-know or no answer and renormalised away)",
            path=path,
            line=line,
            key=key,
        )
    return [v / total for v in values]
