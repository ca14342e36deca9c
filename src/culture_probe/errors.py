"""Errors that point at the user's file, line and key, with a "did you mean" where one is close."""

from __future__ import annotations

import difflib
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
