"""Writing a file (or a folder) whole or not at all: the one atomic write of the package.

Every writer goes through :func:`atomic_output`: the content goes to a temporary file with a unique
name in the target's folder (so the final rename never crosses a file system), created as a plain
``open(path, "w")`` would create it (``0o666`` less the umask), flushed to disk and renamed over
the target. Readers see the old content or the new, never a part; a failure or an
interrupt leaves the target as it was and no temporary file behind.

The model cache and the backends use it at every start, so it needs nothing beyond the standard
library. A run folder's Parquet files are written by :func:`culture_probe.store.write_parquet`, on
top of :func:`atomic_output`.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "note.txt", "whole or nothing\\n")
    >>> (folder / "note.txt").read_text()
    'whole or nothing\\n'
    >>> with atomic_output(folder / "note.txt") as temporary:
    ...     _ = temporary.write_text("replaced")
    >>> (folder / "note.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('replaced', ['note.txt'])
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Temporary names start with this, so that a cleanup after ``kill -9`` can find them.
TEMPORARY_PREFIX = "."
TEMPORARY_SUFFIX = ".tmp"


def _unique_name(target: Path, kind: str = "") -> Path:
    """A new hidden name beside ``target``: ``.<name>.<kind><random>.tmp``."""
    token = secrets.token_hex(6)
    return target.with_name(f"{TEMPORARY_PREFIX}{target.name}.{kind}{token}{TEMPORARY_SUFFIX}")


def _new_file(target: Path) -> Path:
    """Create an empty file with a unique name beside ``target``.

    Created with mode 0o666 so that the kernel applies the umask, as it does for any new file;
    reading the umask instead would mean changing it, for every thread of the process.
    """
    while True:
        candidate = _unique_name(target)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            os.close(os.open(candidate, flags, 0o666))
        except FileExistsError:
            continue
        return candidate


def _new_folder(target: Path, kind: str = "") -> Path:
    """Create an empty folder with a unique name beside ``target`` (mode 0o777 less the umask)."""
    while True:
        candidate = _unique_name(target, kind)
        try:
            candidate.mkdir(0o777)
        except FileExistsError:
            continue
        return candidate


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block completes.

    The block writes the temporary file by any means (a library's ``save``, a compiler's ``-o``);
    it may also replace it with a new file. On success the file is synced to disk and renamed
    onto ``path``; on any exception it is removed and ``path`` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_file(target)
    try:
        yield temporary
        _sync(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_folder(target.parent)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write`` on a temporary file and move it onto ``path`` once it is complete."""
    with atomic_output(path) as temporary:
        write(temporary)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path``: readers see the old content or the new, never a part."""
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path``, whole or not at all."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON (UTF-8, not ASCII-escaped), whole or not at all.

    NaN and infinities are refused (``ValueError``): they are not JSON and other readers choke.
    """
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(path, text)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` that takes the place of ``path`` when the block completes.

    An existing ``path`` is moved aside first and removed once the new folder is in place. The
    two renames are not one atomic step: a crash between them leaves the old folder under a
    hidden name beside ``path``, never a half-filled ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_folder(target)
    try:
        yield staging
        for file in staging.rglob("*"):
            if file.is_file():
                _sync(file)
        _swap_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_folder(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    retired = _new_folder(target, "old.")
    os.replace(target, retired)  # replaces the empty placeholder
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _sync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot open a folder, which is fine."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
