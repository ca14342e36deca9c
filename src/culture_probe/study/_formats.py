"""Format factors, option-order policy and budget of a study, read from its YAML.

``formats`` is a small grammar: each key lists the variants of one factor, and the plan crosses them::

    formats:
      enumerator: ["A.", "(a)", "1.", "i.", none]   # how options are labelled
      separator: ["\\n", "; "]                       # the text between two options
      instruction: [default, "Reply with one {{ label_word }} only."]
      shots: [0, 1, 3]                               # demonstrations from other items

``option_orders`` is a list (every scale) or a mapping per scale, ``{ordinal: [canonical, reversed],
nominal: [cyclic]}``. A cyclic shift or a permutation would break an ordinal scale's order, so ordinal
items take only ``canonical`` and ``reversed`` (from a list, they take those it names, or both).
"""

from __future__ import annotations

import re
from typing import Any

from culture_probe.columns import ELICITATION_LEVELS
from culture_probe.errors import InputError
from culture_probe.schema import Field, Schema, expected_choice, require_mapping
from culture_probe.study._model import (
    ORDERS,
    ORDINAL_ORDERS,
    SCALES,
    Budget,
    Formats,
    Instruction,
    ProbeItem,
)
from culture_probe.templates import Template
from culture_probe.yamlio import Located, LocatedList

NO_ENUMERATOR = "none"
DEFAULT_INSTRUCTION = "default"
ENUMERATOR_PATTERN = re.compile(r"^([^A-Za-z0-9]*)([Aa1iI])([^A-Za-z0-9]*)$")
FORMATS = Schema(
    "formats",
    {
        "enumerator": Field("any"),
        "separator": Field("any"),
        "instruction": Field("any"),
        "shots": Field("any"),
    },
)


def load_formats(raw: Located, items: tuple[ProbeItem, ...], label_style: str) -> Formats:
    """The study's format factors (defaults where a factor is not varied)."""
    default = Formats(enumerators=("1.",) if label_style == "numbers" else ("A.",))
    if "formats" not in raw:
        return default
    block = require_mapping(raw["formats"], "formats", path=raw.path, line=raw.line_of("formats"))
    FORMATS.read(block)
    enumerators = _variants(block, "enumerator", default.enumerators)
    for index, enumerator in enumerate(enumerators):
        _check_enumerator(block, index, enumerator)
    separators = _variants(block, "separator", default.separators)
    instructions = tuple(
        _instruction(block, index, text)
        for index, text in enumerate(_variants(block, "instruction", (DEFAULT_INSTRUCTION,)))
    )
    return Formats(
        enumerators=enumerators,
        separators=separators,
        instructions=instructions,
        shots=_shots(block, items),
    )


def _variants(block: Located, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A factor's variants: a list (or one value) of non-empty strings, each given once."""
    if key not in block:
        return default
    entries = block[key]
    if not isinstance(entries, LocatedList):
        entries = [entries]
    if not entries:
        raise InputError(
            f"factor '{key}' has no variants",
            path=block.path,
            line=block.line_of(key),
            key=f"formats.{key}",
        )
    out: list[str] = []
    for index, entry in enumerate(entries):
        line = entries.line_of(index) if isinstance(entries, LocatedList) else block.line_of(key)
        if not isinstance(entry, str) or entry == "":
            raise InputError(
                f"variant {index + 1} of '{key}' must be a non-empty string",
                path=block.path,
                line=line,
                key=f"formats.{key}",
            )
        if entry in out:
            raise InputError(
                f"variant {entry!r} of '{key}' is given twice",
                path=block.path,
                line=line,
                key=f"formats.{key}",
            )
        out.append(entry)
    return tuple(out)


def _check_enumerator(block: Located, index: int, enumerator: str) -> None:
    if enumerator == NO_ENUMERATOR or ENUMERATOR_PATTERN.match(enumerator):
        return
    entries = block["enumerator"]
    raise InputError(
        f"unknown enumerator {enumerator!r}: write one of the markers A, a, 1, i or I with the "
        "punctuation around it, or 'none'",
        path=block.path,
        line=entries.line_of(index)
        if isinstance(entries, LocatedList)
        else block.line_of("enumerator"),
        key="formats.enumerator",
        hint='e.g. "A.", "(a)", "1)", "[i]", none',
    )


def _instruction(block: Located, index: int, text: str) -> Instruction:
    if text == DEFAULT_INSTRUCTION:
        return Instruction(DEFAULT_INSTRUCTION, None)
    entries = block["instruction"]
    line = (
        entries.line_of(index) if isinstance(entries, LocatedList) else block.line_of("instruction")
    )
    return Instruction(
        f"i{index + 1}",
        Template.compile(text, path=block.path, first_line=line, key="formats.instruction"),
    )


def _shots(block: Located, items: tuple[ProbeItem, ...]) -> tuple[int, ...]:
    if "shots" not in block:
        return (0,)
    entries = block["shots"] if isinstance(block["shots"], LocatedList) else [block["shots"]]
    choice_items = sum(item.kind == "choice" for item in items)
    out: list[int] = []
    for index, value in enumerate(entries):
        line = (
            entries.line_of(index) if isinstance(entries, LocatedList) else block.line_of("shots")
        )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(
                f"shots {index + 1} must be a whole number 0 or more, found {value!r}",
                path=block.path,
                line=line,
                key="formats.shots",
            )
        if value > choice_items - 1:
            raise InputError(
                f"{value} demonstrations need {value + 1} multiple-choice items (they are drawn "
                f"from the other items), and the study has {choice_items}",
                path=block.path,
                line=line,
                key="formats.shots",
            )
        out.append(value)
    return tuple(dict.fromkeys(out))


def load_elicitations(raw: Located) -> tuple[str, ...]:
    """The study's ``elicitation`` levels: a list (or one name) of known levels, each once.

    Example: ``elicitation: [first_token, written]``. Without the key, ``first_token`` alone.
    """
    if "elicitation" not in raw:
        return ELICITATION_LEVELS[:1]
    value = raw["elicitation"]
    entries = value if isinstance(value, LocatedList) else [value]
    if not entries:
        raise InputError(
            "expected a non-empty list of elicitation levels",
            path=raw.path,
            line=raw.line_of("elicitation"),
            key="elicitation",
            hint=f"expected some of: {', '.join(ELICITATION_LEVELS)}",
        )
    levels: list[str] = []
    for index, level in enumerate(entries):
        line = entries.line_of(index) if isinstance(entries, LocatedList) else None
        problem = _elicitation_problem(level, levels)
        if problem:
            raise InputError(
                problem,
                path=raw.path,
                line=line or raw.line_of("elicitation"),
                key="elicitation",
                hint=expected_choice(str(level), ELICITATION_LEVELS),
            )
        levels.append(level)
    return tuple(levels)


def _elicitation_problem(level: object, earlier: list[str]) -> str | None:
    if not isinstance(level, str) or level not in ELICITATION_LEVELS:
        return f"unknown elicitation level {level!r}"
    if level in earlier:
        return f"elicitation level '{level}' is given twice"
    return None


def load_order_policy(raw: Located) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``option_orders`` as the names given (a list) and the orders per scale."""
    if "option_orders" not in raw:
        names: tuple[str, ...] = ("canonical", "reversed")
        return names, {"ordinal": names, "nominal": names}
    value = raw["option_orders"]
    if isinstance(value, Located):
        return _orders_per_scale(raw, value)
    names = _order_names(raw, "option_orders", value, ORDERS)
    ordinal = tuple(name for name in names if name in ORDINAL_ORDERS) or ORDINAL_ORDERS
    return names, {"ordinal": ordinal, "nominal": names}


def _orders_per_scale(
    raw: Located, block: Located
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    policy: dict[str, tuple[str, ...]] = {}
    for scale, entries in block.items():
        if scale not in SCALES:
            raise InputError(
                f"unknown scale '{scale}'",
                path=raw.path,
                line=block.line_of(scale),
                key=f"option_orders.{scale}",
                hint=expected_choice(scale, SCALES),
            )
        allowed = ORDINAL_ORDERS if scale == "ordinal" else ORDERS
        policy[scale] = _order_names(block, scale, entries, allowed, prefix="option_orders.")
    names = tuple(dict.fromkeys(name for names in policy.values() for name in names))
    policy.setdefault("ordinal", ORDINAL_ORDERS)
    policy.setdefault("nominal", ("canonical", "reversed"))
    return names, policy


def _order_names(
    mapping: Located, key: str, entries: Any, allowed: tuple[str, ...], prefix: str = ""
) -> tuple[str, ...]:
    if not isinstance(entries, LocatedList) or not entries:
        raise InputError(
            "expected a non-empty list of option orders",
            path=mapping.path,
            line=mapping.line_of(key),
            key=prefix + key,
            hint=f"expected some of: {', '.join(allowed)}",
        )
    for index, name in enumerate(entries):
        if name not in allowed:
            message = f"unknown value '{name}'"
            if name in ORDERS:  # a known order, refused for an ordinal scale
                message = (
                    f"'{name}' is not an order for this scale (a cyclic shift or a permutation "
                    "breaks an ordinal scale's order)"
                )
            raise InputError(
                message,
                path=mapping.path,
                line=entries.line_of(index),
                key=prefix + key,
                hint=expected_choice(str(name), allowed),
            )
    return tuple(dict.fromkeys(str(name) for name in entries))


def load_budget(raw: Located, override: int | None, path: str) -> Budget | None:
    """The study's ``budget`` (or the one given on the command line, which wins)."""
    if override is not None:
        if override < 1:
            raise InputError(
                f"the budget must be a positive number of prompts, not {override}",
                path=path,
                key="--budget",
            )
        return Budget(override, path, None, "--budget")
    if "budget" not in raw:
        return None
    value = raw["budget"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(
            f"expected a positive number of prompts, found {value!r}",
            path=raw.path,
            line=raw.line_of("budget"),
            key="budget",
        )
    return Budget(value, raw.path, raw.line_of("budget"), "budget")
