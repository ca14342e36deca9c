"""Backend options, declared once per backend as a dataclass.

Each backend declares its options as a dataclass whose fields carry a ``help`` text in their
metadata (``field(default=..., metadata={"help": "..."})``) and, for numbers, the ``range`` of
values they take (a :class:`culture_probe.bounds.Range`: counts positive, probabilities from 0 to
1, ...). From that one declaration:

- :func:`parse_options` checks what a user passed (``--option KEY=VALUE``, or keyword arguments):
  an unknown key is an error listing the valid ones, with a "did you mean" when one is spelled
  closely; values given as text are converted to the declared type, or the error names the key and
  the type it expects; a number outside its range (or a NaN or infinite one) is an error naming
  the key and the range; a text option that declares its ``choices`` takes one of them, or the
  error names the key, the choices and the closest one;
- :func:`options_help` writes the help text of a backend's options;
- :func:`options_record` gives the options for the manifest (secrets left out).

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Demo:
    ...     batch_size: int = field(default=16, metadata={"help": "prompts per batch"})
    >>> parse_options(Demo, {"batch_size": "8"})
    Demo(batch_size=8)
    >>> from culture_probe.bounds import POSITIVE
    >>> @dataclass(frozen=True)
    ... class Ranged:
    ...     concurrency: int = field(default=8, metadata={"help": "at once", "range": POSITIVE})
    >>> parse_options(Ranged, {"concurrency": 0})
    Traceback (most recent call last):
    ...
    culture_probe.errors.InputError: --option concurrency must be a number of at least 1, got 0
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from culture_probe.bounds import Range
from culture_probe.errors import InputError, expected_one_of

OptionsT = TypeVar("OptionsT")

#: close enough in spelling to suggest (``batchsize`` for ``batch_size``), not so loose that
#: ``mode`` suggests ``model``'s neighbours at random
SUGGESTION_CUTOFF = 0.8
#: the words a true-or-false option takes (the CLI reads true and false already)
_TRUE = ("true",)
_FALSE = ("false",)
_NONE = ("none", "null", "")


def parse_options(cls: type[OptionsT], raw: Mapping[str, Any]) -> OptionsT:
    """An instance of the options dataclass ``cls`` from user-given keys and values.

    Raises:
        InputError: a key ``cls`` does not declare, or a value that is not of the declared type.
    """
    fields = {spec.name: spec for spec in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise InputError(_unknown_key_message(key, fields), key=key)
        values[key] = coerce(key, value, hints[key])
        check_range(key, values[key], fields[key].metadata.get("range"))
        check_choice(key, values[key], fields[key].metadata.get("choices"))
    return cls(**values)


def check_choice(key: str, value: Any, choices: tuple[str, ...] | None) -> None:
    """Refuse a value outside the option's declared ``choices`` (unset is always allowed).

    Example:
        >>> check_choice("prompt_tokens", "locale", ("server", "local"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        culture_probe.errors.InputError: --option prompt_tokens got 'locale'; did you mean ...
    """
    if choices is not None and value is not None and value not in choices:
        raise InputError(f"--option {key} got {value!r}; {expected_one_of(str(value), choices)}")


def check_range(key: str, value: Any, allowed: Range | None) -> None:
    """Refuse a number outside the option's declared range; NaN and infinity are never allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if allowed is None:
        allowed = Range() if isinstance(value, float) and not math.isfinite(value) else None
    problem = allowed.check(f"--option {key}", value) if allowed is not None else None
    if problem:
        raise InputError(problem)


def _unknown_key_message(key: str, fields: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=SUGGESTION_CUTOFF)
    suggestion = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown option; {suggestion}valid options: {', '.join(sorted(fields))}"


def coerce(key: str, value: Any, declared: Any) -> Any:
    """``value`` as the declared type, converting text; an error naming ``key`` otherwise.

    Example:
        >>> coerce("threads", "4", int | None), coerce("threads", "none", int | None)
        (4, None)
    """
    allowed = _members(declared)
    unset = value is None or (isinstance(value, str) and value.strip().lower() in _NONE)
    if unset and type(None) in allowed:
        return None
    for kind in allowed:
        converted = _convert(value, kind)
        if converted is not _FAILED:
            return converted
    raise InputError(f"--option {key} expects {type_name(declared)}, got {value!r}")


_FAILED = object()


def _members(declared: Any) -> tuple[Any, ...]:
    """The types of a union (``int | None`` -> ``(int, NoneType)``), or the type alone."""
    if isinstance(declared, types.UnionType) or typing.get_origin(declared) is typing.Union:
        return typing.get_args(declared)
    return (declared,)


def _convert(value: Any, kind: Any) -> Any:
    text = value.strip() if isinstance(value, str) else None
    if kind is bool:
        if isinstance(value, bool):
            return value
        lowered = (text or "").lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else _FAILED
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(text) if text is not None else _FAILED
        except ValueError:
            return _FAILED
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(text) if text is not None else _FAILED
        except ValueError:
            return _FAILED
    if kind is str:
        # the CLI reads ``model=123`` as a number; a text option takes it back as written
        return (
            value if isinstance(value, str) else _FAILED if isinstance(value, bool) else str(value)
        )
    return _FAILED


def type_name(declared: Any) -> str:
    """A reader's name for a declared type: 'a whole number', 'true or false', ..."""
    names = {
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        str: "text",
        type(None): "none",
    }
    return " or ".join(
        names.get(kind, getattr(kind, "__name__", str(kind))) for kind in _members(declared)
    )


def describe_options(cls: type[Any]) -> list[tuple[str, str, str, str]]:
    """``(key, type, default, help)`` for each option ``cls`` declares, in declaration order."""
    hints = typing.get_type_hints(cls)
    rows = []
    for spec in dataclasses.fields(cls):
        default = spec.default if spec.default is not dataclasses.MISSING else None
        shown = (
            "unset"
            if default is None
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        kind = type_name(hints[spec.name])
        allowed = spec.metadata.get("range")
        if allowed is not None:
            kind += ", " + allowed.describe().removeprefix("a number ").removeprefix("of ")
        if spec.metadata.get("choices"):
            kind = " or ".join(spec.metadata["choices"])
        rows.append((spec.name, kind, shown, spec.metadata.get("help", "")))
    return rows


def format_options_help(cls: type[Any], title: str) -> str:
    """Plain-text help for an options dataclass: one line per key with type, default and help."""
    lines = [title]
    for key, kind, default, text in describe_options(cls):
        lines.append(f"  {key} ({kind}; default {default}): {text}")
    return "\n".join(lines)


def options_record(options: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The declared options as the manifest records them: secrets and ``leave_out`` dropped."""
    return {
        spec.name: getattr(options, spec.name)
        for spec in dataclasses.fields(options)
        if not spec.metadata.get("secret") and spec.name not in leave_out
    }
