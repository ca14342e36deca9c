"""Errors that point at the user's file, line and key, with a "did you mean" where one is close."""

from __future__ import annotations

import difflib
import errno
import re
from collections.abc import Iterable
from pathlib import Path


class CultureProbeError(Exception):
    """An error the user can fix; the CLI prints it without a traceback and exits non-zero."""


class InputError(CultureProbeError):
    """Bad content in a user file: names the file, the line, the key and what was expected.

    Example:
        >>> str(InputError("bad", path="study.yaml", line=3, key="axes"))
        "study.yaml:3: key 'axes': bad"
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path or ""
        if self.path and self.line is not None:
            where = f"{self.path}:{self.line}"
        parts = [where] if where else []
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        prefix = ": ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return 'did you mean X?' for the closest choice, or None when nothing is close."""
    options = [str(choice) for choice in choices]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if not close:
        lowered = {option.lower(): option for option in options}
        close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
        close = [lowered[c] for c in close]
    return f"did you mean '{close[0]}'?" if close else None


def expected_one_of(word: str, choices: Iterable[str], limit: int = 12) -> str:
    """A readable 'expected one of ...' hint with a suggestion first when there is one."""
    options = sorted(str(choice) for choice in choices)
    suggestion = did_you_mean(word, options)
    shown = ", ".join(options[:limit]) + (", ..." if len(options) > limit else "")
    listing = f"expected one of: {shown}"
    return f"{suggestion} {listing}" if suggestion else listing


class RunDirectoryLocked(CultureProbeError):
    """Another process is writing to the run directory (it holds ``RUN_DIR/.lock``)."""


class StorageError(CultureProbeError):
    """The disk refused a read or a write: full, read-only, not permitted, too large.

    Example:
        >>> import errno
        >>> error = OSError(errno.ENOSPC, "No space left on device")
        >>> print(StorageError.from_os_error(error, "reports/run/plan.parquet", "writing"))
        ... # doctest: +NORMALIZE_WHITESPACE
        writing reports/run/plan.parquet: no space left on the device (free some space, or give
        --out a folder on another disk; the same command then resumes what was saved)
    """

    def __init__(self, message: str, *, errno_code: int | None = None) -> None:
        self.errno_code = errno_code
        super().__init__(message)

    @classmethod
    def from_os_error(
        cls, error: OSError, path: str | Path | None = None, doing: str = "writing"
    ) -> StorageError:
        """The user's message for ``error``: what failed, where, and what to do."""
        code = os_error_code(error)
        filename = path if path is not None else error.filename
        what, todo = _DISK_ADVICE.get(code, (None, None)) if code is not None else (None, None)
        what = what or (error.strerror or str(error)).rstrip(".")
        where = f"{doing} {filename}: " if filename is not None else f"{doing}: "
        text = where + what + (f" ({todo})" if todo else "")
        return cls(text, errno_code=code)


# errno -> (what happened, what to do); the codes a disk, a mount or a permission can cause
_DISK_ADVICE: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (
        "no space left on the device",
        "free some space, or give --out a folder on another disk; the same command then resumes "
        "what was saved",
    ),
    errno.EDQUOT: (
        "disk quota exceeded",
        "free some space within your quota, or give --out a folder on another disk",
    ),
    errno.EFBIG: (
        "file larger than this process may write",
        "raise the file-size limit (ulimit -f unlimited) and run the same command again",
    ),
    errno.EACCES: (
        "permission denied",
        "give --out a folder you can write to, or fix the folder's permissions",
    ),
    errno.EPERM: (
        "operation not permitted",
        "give --out a folder you can write to, or fix the folder's permissions",
    ),
    errno.EROFS: ("read-only file system", "give --out a folder on a writable disk"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EISDIR: ("is a folder, where a file was expected", "give the path of a file"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) and run again"),
}

_ERRNO_IN_TEXT = re.compile(r"\[?errno[ :]*(\d+)", re.IGNORECASE)


def os_error_code(error: OSError) -> int | None:
    """The errno of ``error``; pyarrow puts it only in its message (``... [errno 28] ...``)."""
    if error.errno is not None:
        return int(error.errno)
    found = _ERRNO_IN_TEXT.search(str(error))
    return int(found.group(1)) if found else None
