"""Limits on what an input may ask of the machine, checked before the work starts.

Two kinds of input come from users and colleagues: files (studies, items, reference tables, paper
lists, spreadsheets) and numbers (options, arguments, counts). Both are bounded here, in one place:

- :func:`read_input_file` reads a file only if it is a regular file (a FIFO, a device such as
  ``/dev/zero`` or a socket is refused at once instead of being read forever) and only up to a
  limit, checked before the read and again while reading (the file may grow in between);
- :class:`Range` is the allowed range of a number, declared once beside the option or argument
  it belongs to (:mod:`culture_probe.backends.options`, :mod:`culture_probe.arguments`) and
  checked wherever that option is read.

Example:
    >>> Range(low=1).check("concurrency", 0)
    'concurrency must be a number of at least 1, got 0'
    >>> Range(low=0, high=1).describe()
    'a number from 0 to 1'
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from culture_probe.errors import InputError

#: a study, items, framings, taxonomy or template file (the packaged taxonomy is about 70 kB)
MAX_TEXT_FILE_BYTES = 4 * 1024 * 1024
#: a data file: a reference table, annotated answers, a paper list or a spreadsheet
MAX_DATA_FILE_BYTES = 256 * 1024 * 1024


def require_regular_file(path: str | Path, what: str = "a file") -> os.stat_result:
    """The ``stat`` of ``path`` if it is a regular file; an :class:`InputError` otherwise.

    The check follows symlinks (a link to a study file is fine) but never opens the path, so a
    FIFO, whose ``open`` would wait for a writer, is refused without blocking.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"expected {what}, found a folder", path=path)
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"expected {what}, found {_file_kind(info.st_mode)}; give a regular file", path=path
        )
    return info


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "something that is not a regular file"


def read_input_file(
    path: str | Path, limit: int = MAX_TEXT_FILE_BYTES, what: str = "a file"
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        InputError: not a regular file, or larger than ``limit`` (the message gives both sizes).
    """
    info = require_regular_file(path, what)
    if info.st_size > limit:
        raise _too_large(path, info.st_size, limit, what)
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)  # a file that grew since the stat is still bounded
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", path=path) from None
    if len(data) > limit:
        raise _too_large(path, len(data), limit, what)
    return data


def read_input_text(
    path: str | Path, limit: int = MAX_TEXT_FILE_BYTES, what: str = "a text file"
) -> str:
    """:func:`read_input_file` decoded as UTF-8 (a byte-order mark is dropped)."""
    data = read_input_file(path, limit, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", path=path) from None


def _too_large(path: str | Path, size: int, limit: int, what: str) -> InputError:
    return InputError(
        f"file is {size:,} bytes; {what} may be at most {limit:,} bytes ({_mebibytes(limit)})",
        path=path,
    )


def _mebibytes(size: int) -> str:
    return f"{size / 2**20:g} MiB"


@dataclass(frozen=True)
class Range:
    """The values a number may take: ``low <= value <= high`` (``low < value`` when ``open_low``).

    Floats must also be finite: NaN and infinity are never in a range.
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def describe(self) -> str:
        """The range in words: 'a number of at least 1', 'a number from 0 to 1', ..."""
        low = _number(self.low) if self.low is not None else None
        high = _number(self.high) if self.high is not None else None
        if low is not None and high is not None and not self.open_low:
            return f"a number from {low} to {high}"
        parts = []
        if low is not None:
            parts.append(f"above {low}" if self.open_low else f"of at least {low}")
        if high is not None:
            parts.append(f"at most {high}" if parts else f"of at most {high}")
        return "a number " + (" and ".join(parts) if parts else "that is finite")

    def check(self, name: str, value: float) -> str | None:
        """None when ``value`` is in the range, else a message naming ``name`` and the range."""
        if self.contains(value):
            return None
        return f"{name} must be {self.describe()}, got {value!r}"

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


#: counts that must be 1 or more (batch sizes, tokens, concurrency, replicas)
POSITIVE = Range(low=1)
#: counts and durations that may be 0 (retries, seconds of backoff)
NON_NEGATIVE = Range(low=0)
#: a probability or a share
PROBABILITY = Range(low=0, high=1)
#: a sampling seed: stored in the plan as a signed 64-bit integer
SEED_RANGE = Range(low=0, high=2**63 - 1)
