"""The one test for a missing value that the report's tables, charts and prompt pages share."""

from __future__ import annotations

import math
import numbers
from typing import Any

#: pandas' missing markers, recognised by type name so that the chart code need not import pandas
_PANDAS_MARKERS = frozenset({"NAType", "NaTType"})


def is_missing(value: Any) -> bool:
    """True for None, NaN (Python's or numpy's) and pandas' ``NA`` and ``NaT``.

    Example:
        >>> [is_missing(v) for v in (None, float("nan"), 0.0, 3, "")]
        [True, True, False, False, False]
    """
    if value is None:
        return True
    if isinstance(value, numbers.Real):  # numpy's floating scalars register as Real
        return math.isnan(value)
    return type(value).__name__ in _PANDAS_MARKERS
