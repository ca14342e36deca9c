"""Small helpers that check YAML mappings against the keys a file format allows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from culture_probe.errors import InputError, did_you_mean
from culture_probe.yamlio import Located, LocatedList


def require_mapping(value: Any, what: str, *, path: str, line: int | None = None) -> Located:
    """Check that ``value`` is a YAML mapping; name ``what`` was expected otherwise."""
    if not isinstance(value, Located):
        found = type(value).__name__ if value is not None else "nothing"
        raise InputError(f"expected {what} (a mapping), found {found}", path=path, line=line)
    return value


def require_list(mapping: Located, key: str, *, allow_empty: bool = False) -> LocatedList:
    """The list under ``key``: present, a YAML list, and not empty unless allowed."""
    value = mapping.get(key)
    if not isinstance(value, LocatedList):
        found = "nothing" if value is None else type(value).__name__
        raise InputError(
            f"expected a list, found {found}",
            path=mapping.path,
            line=mapping.line_of(key),
            key=key,
        )
    if not value and not allow_empty:
        raise InputError("expected a non-empty list", path=mapping.path, line=value.line, key=key)
    return value


def check_keys(
    mapping: Located,
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    what: str,
) -> None:
    """Reject unknown keys (with a suggestion) and name the first missing required key."""
    required = list(required)
    allowed = set(required) | set(optional)
    for key in mapping:
        if key not in allowed:
            suggestion = did_you_mean(key, allowed)
            hint = suggestion or f"allowed keys in {what}: {', '.join(sorted(allowed))}"
            raise InputError(
                f"unknown key in {what}",
                path=mapping.path,
                line=mapping.line_of(key),
                key=key,
                hint=hint,
            )
    for key in required:
        if key not in mapping:
            raise InputError(
                f"missing required key in {what}", path=mapping.path, line=mapping.line, key=key
            )


def require_str(mapping: Located, key: str, default: str | None = None) -> str:
    """A non-empty string under ``key`` (or ``default`` when absent and a default is given)."""
    if key not in mapping and default is not None:
        return default
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value) == "":
        raise InputError(
            "expected a non-empty string",
            path=mapping.path,
            line=mapping.line_of(key),
            key=key,
        )
    return str(value)


def optional_str(mapping: Located, key: str) -> str | None:
    """A string under ``key`` or None when absent."""
    if key not in mapping or mapping[key] is None:
        return None
    return require_str(mapping, key)


def string_list(mapping: Located, key: str, *, allow_empty: bool = False) -> list[str]:
    """A list of non-empty strings under ``key``."""
    values = require_list(mapping, key, allow_empty=allow_empty)
    out: list[str] = []
    for index, value in enumerate(values):
        if isinstance(value, Located | LocatedList) or value is None or str(value) == "":
            raise InputError(
                f"entry {index + 1} must be a non-empty string",
                path=mapping.path,
                line=values.line_of(index),
                key=key,
            )
        out.append(str(value))
    return out
