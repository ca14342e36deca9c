"""How an estimate and its interval are written, in sentences, tables, tooltips and the terminal.

One way everywhere: ``41% [30%, 52%]`` in running text, ``30-52`` where a table cell is narrow.
A missing bound (None or NaN) leaves the estimate alone; a missing estimate is said in words.
Percentages keep two significant digits below 1% (``0.0083%``), so a tiny share is never written
"0%" beside a test that finds it; ``"{:.0%}"`` is written that way wherever it is passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

#: A format string such as ``"{:.2f}"`` or ``"{:.0%}"``, or a function from a number to text.
ValueFormat = str | Callable[[float], str]

#: the format string that means "a percentage": written by :func:`format_percent`
PERCENT = "{:.0%}"
#: significant digits a percentage below 1% keeps
PERCENT_DIGITS = 2


def format_percent(value: float) -> str:
    """A share as a percentage: whole percents from 1% up, two significant digits below.

    Exactly 0 is "0%" and exactly 1 "100%"; anything else keeps enough digits to show it is
    neither.

    Example:
        >>> format_percent(0.41), format_percent(0.000083), format_percent(0.0), format_percent(1e-4)
        ('41%', '0.0083%', '0%', '0.010%')
        >>> format_percent(0.9969), format_percent(0.999982), format_percent(1.0)
        ('99.69%', '99.9982%', '100%')
    """
    percent = 100.0 * value
    if percent == 0 or not math.isfinite(percent):
        return f"{percent:.0f}%"
    if 99.5 <= percent < 100:
        # just short of all: as many digits as show it is not 100% (99.69% -> "99.69%")
        decimals = PERCENT_DIGITS - 1 - math.floor(math.log10(100 - percent))
        return f"{percent:.{decimals}f}%"
    if abs(round(percent)) >= 1:
        return f"{percent:.0f}%"
    decimals = PERCENT_DIGITS - 1 - math.floor(math.log10(abs(percent)))
    shown = f"{percent:.{decimals}f}"
    # rounding may carry to the next decade (0.0999 -> "0.10"): still two significant digits
    return f"{shown}%"


def format_ratio(value: float) -> str:
    """A ratio or index with two decimals, or two significant digits below 0.01 (never "0.00" for
    a value that is not 0).

    Example:
        >>> format_ratio(2.5), format_ratio(0.0039), format_ratio(0.0), format_ratio(1.2e-5)
        ('2.50', '0.0039', '0.00', '0.000012')
    """
    if value == 0 or not math.isfinite(value) or abs(value) >= 0.01:
        return f"{value:.2f}"
    # fixed notation with two significant digits: 0.000012, never 1.2e-05
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def format_interval(
    estimate: float | None,
    low: float | None,
    high: float | None,
    value_format: ValueFormat = "{:.2f}",
    *,
    missing: str = "undetermined",
) -> str:
    """``estimate [low, high]``; the estimate alone without both bounds; ``missing`` without it.

    Example:
        >>> format_interval(0.41, 0.3, 0.52, "{:.0%}")
        '41% [30%, 52%]'
        >>> format_interval(0.94, None, None), format_interval(None, 0.1, 0.2)
        ('0.94', 'undetermined')
    """
    if _is_missing(estimate):
        return missing
    assert estimate is not None
    shown = _apply(value_format, estimate)
    bounds = format_bounds(low, high, value_format)
    return f"{shown} {bounds}" if bounds else shown


def format_bounds(
    low: float | None,
    high: float | None,
    value_format: ValueFormat = "{:.2f}",
    *,
    compact: bool = False,
) -> str:
    """``[low, high]``, or ``low-high`` when ``compact``; empty when a bound is missing.

    Example:
        >>> format_bounds(0.195, 0.6, "{:.0%}"), format_bounds(0.195, 0.6, "{:.0%}", compact=True)
        ('[20%, 60%]', '20%-60%')
    """
    if _is_missing(low) or _is_missing(high):
        return ""
    assert low is not None and high is not None
    first, second = _apply(value_format, low), _apply(value_format, high)
    return f"{first}-{second}" if compact else f"[{first}, {second}]"


def _apply(value_format: ValueFormat, value: float) -> str:
    if value_format == PERCENT:
        return format_percent(value)
    return value_format.format(value) if isinstance(value_format, str) else value_format(value)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
