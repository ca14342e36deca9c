"""The run folder's file names, and the one way to read or write a file inside a run folder.

Every name a run folder holds is declared here once. Reading and writing go through
:func:`read_parquet`, :func:`read_json`, :func:`write_parquet` and :func:`write_json`, so a
missing, damaged or unwritable file gives one kind of message wherever it is met. A path inside a
run folder that is a symbolic link, a FIFO or anything but a regular file (or, for the folders,
a real folder) is refused before it is read or written: a run folder received from someone else
must not be able to point the tool at a file outside it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from culture_probe.atomic import atomic_output, atomic_write_json
from culture_probe.errors import InputError, StorageError

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "manifest.json"
PLAN = "plan.parquet"
CHUNKS = "chunks"
RESPONSES = "responses.parquet"
REFERENCE = "reference.parquet"
ANSWERS = "answers.parquet"
STATS = "stats"
SUMMARY = "summary.json"
REPORT = "report.html"
LOCK = ".lock"
CHUNK_PATTERN = "chunk-*.parquet"
DAMAGED_SUFFIX = ".damaged"
#: where chunks found in a folder with no manifest are moved, so that no run adopts them
ORPHANED_CHUNKS = "chunks.orphaned"
#: what a folder may hold before its manifest is written: a run that stopped while it was created
BEFORE_MANIFEST = frozenset({LOCK, PLAN, REFERENCE, ANSWERS})


@contextmanager
def disk_errors(path: Path, doing: str = "writing") -> Iterator[None]:
    """Turn the disk's OSError (full, read-only, not permitted) into a :class:`StorageError`."""
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        raise StorageError.from_os_error(error, path, doing) from error


def refuse_link_or_special(path: Path, folder: bool = False) -> None:
    """Refuse ``path`` if it exists and is a symbolic link, or not a regular file (or folder).

    Raises:
        InputError: naming the path, what it is, and what to do.
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # absent: whoever needs it says so
    except OSError as error:
        raise StorageError.from_os_error(error, path, "accessing") from error
    wanted = stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)
    if wanted:
        return
    found = _kind_of(mode)
    if stat.S_ISREG(mode):
        raise InputError("is a file, where a run folder was expected", path=path)
    raise InputError(
        f"is {found}, where the run folder holds a {'folder' if folder else 'regular file'}; "
        "culture-probe never follows links out of a run folder",
        path=path,
        hint="remove it (the folder may have come from someone else), then run the same command "
        "again",
    )


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"


def read_parquet(path: Path, missing: str | None) -> pd.DataFrame:
    """Read one Parquet file of a run folder.

    Args:
        path: the file.
        missing: what to do when it is absent (the hint of the error).

    Raises:
        InputError: it is missing, a link or special file, or does not read as Parquet.
    """
    import pandas as pd

    _require_file(path, missing)
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise InputError(
            f"does not read as Parquet ({_first_line(error)})",
            path=path,
            hint="the run is damaged: run the stage that writes it again",
        ) from error


def read_json(path: Path, missing: str | None) -> dict[str, Any]:
    """Read one JSON object of a run folder (the manifest, the summary).

    Raises:
        InputError: it is missing, a link or special file, not JSON, or not an object.
    """
    _require_file(path, missing)
    with disk_errors(path, "reading"):
        text = path.read_text(encoding="utf-8", errors="replace")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"invalid JSON: {error.msg} (column {error.colno})",
            path=path,
            line=error.lineno,
            hint="restore the file, or run the stage that writes it again",
        ) from error
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, found {type(value).__name__}", path=path)
    return value


def _require_file(path: Path, missing: str | None) -> None:
    refuse_link_or_special(path)
    if not path.is_file():
        raise InputError(f"missing {path.name}", path=path.parent, key=path.name, hint=missing)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` (without its index) to ``path`` whole or not at all, disk errors explained.

    The temporary file is created new (``O_EXCL``) and renamed over ``path``: a link at ``path``
    is replaced, never followed.
    """
    refuse_link_or_special(path.parent, folder=True)
    with disk_errors(path), atomic_output(path) as temporary:
        frame.to_parquet(temporary, index=False)


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` whole or not at all, disk errors explained."""
    refuse_link_or_special(path.parent, folder=True)
    with disk_errors(path):
        atomic_write_json(path, payload)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
