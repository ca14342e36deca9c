"""The arguments of the public functions, checked once for the command line and the Python API.

``culture-probe run``, ``compare`` and ``export`` and their Python twins (``cp.run``,
``cp.load_run``, ``cp.compare``, ``cp.export``) end in the same functions; those check their
arguments here, so that a wrong type or a number out of range gets the same :class:`InputError`
from both, naming the argument (and the command-line option it comes from) and what was expected,
instead of a ``TypeError`` from deep inside or, worse, a silent misreading (a string given where a
list of runs is expected would be read one character at a time).

Each range is declared once, here, and read by the command line's options as well.

Example:
    >>> count(1000, BOOTSTRAP)
    1000
    >>> count(10**9, BOOTSTRAP)
    Traceback (most recent call last):
    ...
    culture_probe.errors.InputError: argument bootstrap (--bootstrap) must be a number from 1 to ...
    >>> path_list("runs/ref", RUNS)
    Traceback (most recent call last):
    ...
    culture_probe.errors.InputError: argument runs: expected a list of run directories, got the ...
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culture_probe.bounds import NON_NEGATIVE, POSITIVE, Range
from culture_probe.errors import InputError

#: bootstrap replicates at most: at the default 1,000 the intervals' Monte Carlo error is already
#: below a percentage point; 100 times more costs minutes and memory for nothing
MAX_BOOTSTRAP = 100_000


@dataclass(frozen=True)
class Argument:
    """One argument: its Python name, the command-line option it comes from, its range."""

    name: str
    option: str | None = None
    allowed: Range | None = None

    def label(self) -> str:
        return f"{self.name} ({self.option})" if self.option else self.name

    def error(self, expected: str, value: Any) -> InputError:
        shown = _shown(value)
        return InputError(f"argument {self.label()}: expected {expected}, got {shown}")


BOOTSTRAP = Argument("bootstrap", "--bootstrap", Range(low=1, high=MAX_BOOTSTRAP))
N_BOOTSTRAP = Argument("n_bootstrap", "--bootstrap", Range(low=1, high=MAX_BOOTSTRAP))
N_PERMUTATIONS = Argument("n_permutations", None, Range(low=1, high=MAX_BOOTSTRAP))
MIN_DIFFERENCE = Argument("min_difference", "--min-difference", Range(low=0, high=1))
BUDGET = Argument("budget", "--budget", POSITIVE)
CHUNK_SIZE = Argument("chunk_size", "--chunk-size", POSITIVE)
SEED = Argument("seed", None, NON_NEGATIVE)
STUDY = Argument("study")
OUT = Argument("out", "--out")
RUN = Argument("path")
RUNS = Argument("runs")
ITEMS = Argument("items", "--items")
PROXIES = Argument("proxies", "--proxies")
OPTIONS = Argument("options", "--option")


def count(value: Any, argument: Argument) -> int:
    """``value`` as a whole number within the argument's range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise argument.error("a whole number", value)
    _check_range(value, argument)
    return value


def number(value: Any, argument: Argument) -> float:
    """``value`` as a finite number within the argument's range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise argument.error("a number", value)
    _check_range(value, argument)
    return float(value)


def _check_range(value: float, argument: Argument) -> None:
    if argument.allowed is not None and not argument.allowed.contains(value):
        raise InputError(
            f"argument {argument.label()} must be {argument.allowed.describe()}, got {value!r}"
        )


def flag(value: Any, argument: Argument) -> bool:
    """``value`` as True or False (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise argument.error("True or False", value)
    return value


def path(value: Any, argument: Argument) -> Path:
    """``value`` as a path: a string or an ``os.PathLike``, not empty."""
    if isinstance(value, str | os.PathLike) and str(os.fspath(value)).strip():
        return Path(value)
    raise argument.error("a path (a string or a pathlib.Path)", value)


def optional_path(value: Any, argument: Argument) -> Path | None:
    return None if value is None else path(value, argument)


def run_path(value: Any, argument: Argument = RUN) -> Path:
    """A run directory given as a path or as an object with a ``.path`` (a ``Run``)."""
    if isinstance(value, str | os.PathLike):
        return path(value, argument)
    found = getattr(value, "path", None)
    if isinstance(found, str | os.PathLike):
        return Path(found)
    raise argument.error(
        "a run directory or a run (an object with a .path to its directory)", value
    )


def path_list(values: Any, argument: Argument) -> list[Any]:
    """A list of runs; a single string or path is refused, not read a character at a time."""
    if isinstance(values, str | os.PathLike):
        text = os.fspath(values)
        raise InputError(
            f"argument {argument.label()}: expected a list of run directories, got the single "
            f"text {str(text)!r} (give [{str(text)!r}, ...])"
        )
    if not isinstance(values, Sequence):
        raise argument.error("a list of run directories", values)
    for value in values:
        run_path(value, argument)
    return list(values)


def id_list(values: Any, argument: Argument) -> tuple[str, ...]:
    """Ids as a list of strings or one comma-separated string; None is no filter."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, Sequence) or not all(isinstance(value, str) for value in values):
        raise argument.error("a list of ids or a comma-separated string", values)
    return tuple(value.strip() for value in values if value.strip())


def mapping(value: Any, argument: Argument) -> dict[str, Any]:
    """A dictionary with string keys (None is empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise argument.error("a dict with text keys, e.g. {'batch_size': 8}", value)
    return dict(value)


def text(value: Any, argument: Argument) -> str:
    if not isinstance(value, str) or not value.strip():
        raise argument.error("a non-empty string", value)
    return value


def _shown(value: Any) -> str:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{type(value).__name__} {shown}"
