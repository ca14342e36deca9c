"""Check YAML mappings against the keys a file format allows: declarative schemas and small helpers.

A :class:`Schema` lists, for one kind of mapping, every key it allows with its :class:`Field`: the type
expected, whether it is required, its default and an optional per-key checker. ``Schema.read`` checks a
mapping and returns its values with the defaults filled in; every error names the file, the line and
the key, and an unknown key lists the valid ones (with "did you mean" only when one is spelt close).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from culture_probe.errors import InputError
from culture_probe.yamlio import Located, LocatedList

#: a per-key checker: (value after the type check, the mapping, the key) -> the value to keep
Checker = Callable[[Any, Located, str], Any]
FIELD_TYPES = ("str", "str_list", "list", "mapping", "int", "bool", "any")


@dataclass(frozen=True)
class Field:
    """One key of a mapping: its type (one of :data:`FIELD_TYPES`), requiredness, default, checker.

    ``choices`` restricts a ``str`` (or each entry of a ``str_list``) to the values listed.
    """

    type: str = "str"
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    check: Checker | None = None


@dataclass(frozen=True)
class Schema:
    """The keys one kind of mapping allows (``what`` names the mapping in messages).

    Example:
        >>> from culture_probe.yamlio import load_yaml_text
        >>> schema = Schema("a probe", {"id": Field(required=True), "seeds": Field("list", default=[])})
        >>> schema.read(load_yaml_text("id: x", "p.yaml"))
        {'id': 'x', 'seeds': []}
        >>> schema.read(load_yaml_text("id: x\\ncross: [a]", "p.yaml"))
        Traceback (most recent call last):
        ...
        culture_probe.errors.InputError: p.yaml:2: key 'cross': unknown key in a probe (valid keys: id, seeds)
    """

    what: str
    fields: Mapping[str, Field]

    def read(self, mapping: Located) -> dict[str, Any]:
        required = [key for key, spec in self.fields.items() if spec.required]
        check_keys(mapping, required=required, optional=self.fields, what=self.what)
        values: dict[str, Any] = {}
        for key, spec in self.fields.items():
            if key not in mapping:
                values[key] = spec.default
                continue
            value = _typed(mapping, key, spec.type)
            _check_choices(mapping, key, value, spec.choices)
            values[key] = spec.check(value, mapping, key) if spec.check is not None else value
        return values


def _typed(mapping: Located, key: str, kind: str) -> Any:
    value = mapping[key]
    if kind == "str":
        return require_str(mapping, key)
    if kind == "str_list":
        return string_list(mapping, key)
    if kind == "list":
        return require_list(mapping, key)
    if kind == "mapping":
        return require_mapping(value, f"'{key}'", path=mapping.path, line=mapping.line_of(key))
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise InputError(
            f"expected a whole number, found {value!r}",
            path=mapping.path,
            line=mapping.line_of(key),
            key=key,
        )
    if kind == "bool" and not isinstance(value, bool):
        raise InputError(
            f"expected true or false, found {value!r}",
            path=mapping.path,
            line=mapping.line_of(key),
            key=key,
        )
    return value


def _check_choices(mapping: Located, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if not choices:
        return
    entries = list(value) if isinstance(value, list) else [value]
    for index, entry in enumerate(entries):
        if entry not in choices:
            line = value.line_of(index) if isinstance(value, LocatedList) else mapping.line_of(key)
            raise InputError(
                f"unknown value '{entry}'",
                path=mapping.path,
                line=line,
                key=key,
                hint=expected_choice(str(entry), choices),
            )


def close_spelling(word: str, choices: Iterable[str]) -> str | None:
    """The choice spelt within a typo or two of ``word`` (a swap counts as one), or None.

    Example:
        >>> close_spelling("optoin_orders", ["option_orders", "controls"])
        'option_orders'
        >>> close_spelling("cross", ["controls", "axes"]) is None
        True
    """
    allowed = max(1, min(2, len(word) // 3))
    best: tuple[int, int, str] | None = None
    for choice in choices:
        distance = _edit_distance(word.lower(), str(choice).lower())
        shared = _shared_start(word.lower(), str(choice).lower())
        rank = (distance, -shared, str(choice))  # ties go to the longer shared start: USA -> US
        if distance <= allowed and (best is None or rank < best):
            best = rank
    return best[2] if best else None


def _shared_start(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def expected_choice(word: str, choices: Iterable[str], limit: int = 20) -> str:
    """'did you mean X? expected one of: ...' with the suggestion only when X is spelt close."""
    options = sorted(str(choice) for choice in choices)
    shown = ", ".join(options[:limit]) + (", ..." if len(options) > limit else "")
    listing = f"expected one of: {shown}" if options else "there are none to choose from"
    close = close_spelling(word, options)
    return f"did you mean '{close}'? {listing}" if close else listing


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
    """Reject unknown keys (listing the valid ones) and name the first missing required key."""
    required = list(required)
    allowed = set(required) | set(optional)
    for key in mapping:
        if key not in allowed:
            suggestion = close_spelling(key, allowed)
            hint = f"valid keys: {', '.join(sorted(allowed))}"
            if suggestion:
                hint = f"did you mean '{suggestion}'? {hint}"
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
