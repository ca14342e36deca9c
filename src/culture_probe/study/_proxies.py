"""The proxies of a study: its axes, which of them are crossed, what is excluded, and the controls.

``axes`` names each axis's values; axes listed in ``cross`` are crossed (every combination is one
persona, "a Muslim family in India"), the others are asked one value at a time. ``exclude`` drops
combinations that must not be asked; ``persona`` says how a crossed persona reads, from each axis's
phrase forms (see :func:`culture_probe.taxonomy.value_forms`).
"""

from __future__ import annotations

import itertools
from typing import Any

from culture_probe.errors import InputError
from culture_probe.schema import Field, Schema, expected_choice, require_mapping
from culture_probe.study._model import AXIS_JOIN, PLACEBO_CATEGORY, Proxy
from culture_probe.taxonomy import Category, ProxyValue, Taxonomy, persona_phrase, value_forms
from culture_probe.templates import Template
from culture_probe.yamlio import Located, LocatedList

CONTROLS = Schema("controls", {"baseline": Field("bool", default=False), "placebos": Field("list")})
PERSONA = Schema("persona", {"culture": Field(), "placebo": Field()})
#: the most crossed personas a study may have: each is at least one prompt per item, so more than
#: the plan's default limit of prompts (``--max-prompts``) could never be planned whole, and
#: building them alone takes about 0.1 ms and 1.5 kB each
MAX_PERSONAS = 200_000

Axis = tuple[str, Category, list[ProxyValue]]


def load_proxies(
    raw: Located, taxonomy: Taxonomy
) -> tuple[tuple[Proxy, ...], tuple[str, ...], tuple[str, ...]]:
    """The study's proxies, its axes in the order written and the axes it crosses."""
    axes = _axes(raw, taxonomy)
    crossed = _crossed(raw, axes)
    excluded = _excluded(raw, axes, crossed)
    personas = _persona_templates(raw)
    proxies: list[Proxy] = []
    for axis_id, category, values in axes:
        if axis_id in crossed:
            continue
        for value in values:
            proxies.append(_culture(raw, ((axis_id, category, value),), personas))
    if crossed:
        proxies.extend(_crossed_cultures(raw, axes, crossed, excluded, personas))
    proxies.extend(_controls(raw, taxonomy, personas))
    return tuple(proxies), tuple(axis for axis, _, _ in axes), crossed


def _axes(raw: Located, taxonomy: Taxonomy) -> list[Axis]:
    block = require_mapping(raw["axes"], "axes", path=raw.path, line=raw.line_of("axes"))
    if not block:
        raise InputError(
            "a study needs at least one axis", path=raw.path, line=block.line, key="axes"
        )
    out: list[Axis] = []
    for axis_id, value_ids in block.items():
        category = taxonomy.require_category(
            axis_id, "demographic", path=raw.path, line=block.line_of(axis_id)
        )
        if not isinstance(value_ids, LocatedList) or not value_ids:
            raise InputError(
                f"axis '{axis_id}' has no values: expected a non-empty list of {category.label} "
                "value ids",
                path=raw.path,
                line=block.line_of(axis_id),
                key=f"axes.{axis_id}",
                hint=expected_choice("", [v.id for v in category.values]),
            )
        if not category.values:
            raise InputError(
                f"{category.label} has no values of its own to ask about",
                path=raw.path,
                line=block.line_of(axis_id),
                key=f"axes.{axis_id}",
                hint="to ask about combinations, list each axis under 'axes' and cross them: "
                "cross: [region, religion]",
            )
        values = []
        for index, value_id in enumerate(value_ids):
            value = category.value(str(value_id)) if isinstance(value_id, str | int) else None
            if value is None:
                shown = value_id if isinstance(value_id, str | int) else type(value_id).__name__
                raise InputError(
                    f"unknown {category.label} value '{shown}'",
                    path=raw.path,
                    line=value_ids.line_of(index),
                    key=f"axes.{axis_id}",
                    hint=expected_choice(str(shown), [v.id for v in category.values]),
                )
            values.append(value)
        out.append((axis_id, category, values))
    return out


def _crossed(raw: Located, axes: list[Axis]) -> tuple[str, ...]:
    if "cross" not in raw:
        return ()
    entries = raw["cross"]
    known = [axis for axis, _, _ in axes]
    if entries == "all":
        entries = LocatedList(known)
        entries.path, entries.line, entries.item_lines = raw.path, raw.line_of("cross"), []
    if not isinstance(entries, LocatedList) or len(entries) < 2:
        raise InputError(
            "expected a list of two or more axes of the study to cross (or 'all')",
            path=raw.path,
            line=raw.line_of("cross"),
            key="cross",
            hint=f"the study's axes: {', '.join(known)}",
        )
    for index, axis in enumerate(entries):
        if axis not in known:
            raise InputError(
                f"'{axis}' is not an axis of this study; cross names axes given under 'axes'",
                path=raw.path,
                line=entries.line_of(index),
                key="cross",
                hint=expected_choice(str(axis), known),
            )
    return tuple(dict.fromkeys(str(axis) for axis in entries))


def _excluded(
    raw: Located, axes: list[Axis], crossed: tuple[str, ...]
) -> list[dict[str, set[str]]]:
    """Each ``exclude`` entry as axis -> value ids; a combination matching every axis is dropped."""
    if "exclude" not in raw:
        return []
    if not crossed:
        raise InputError(
            "'exclude' drops combinations of crossed axes, and this study crosses none",
            path=raw.path,
            line=raw.line_of("exclude"),
            key="exclude",
            hint="add 'cross: [axis, axis]'",
        )
    entries = raw["exclude"]
    if not isinstance(entries, LocatedList):
        raise InputError(
            "expected a list of combinations",
            path=raw.path,
            line=raw.line_of("exclude"),
            key="exclude",
        )
    values = {axis: {value.id for value in vals} for axis, _, vals in axes}
    out = []
    for index, entry in enumerate(entries):
        mapping = require_mapping(
            entry, "a combination (axis: value)", path=raw.path, line=entries.line_of(index)
        )
        rule: dict[str, set[str]] = {}
        for axis, chosen in mapping.items():
            if axis not in crossed:
                raise InputError(
                    f"'{axis}' is not a crossed axis of this study",
                    path=raw.path,
                    line=mapping.line_of(axis),
                    key=f"exclude.{axis}",
                    hint=expected_choice(axis, crossed),
                )
            ids = [str(v) for v in chosen] if isinstance(chosen, list) else [str(chosen)]
            for value_id in ids:
                if value_id not in values[axis]:
                    raise InputError(
                        f"exclude names '{value_id}', which axis '{axis}' of the study does not have",
                        path=raw.path,
                        line=mapping.line_of(axis),
                        key=f"exclude.{axis}",
                        hint=expected_choice(value_id, values[axis]),
                    )
            rule[axis] = set(ids)
        out.append(rule)
    return out


def _persona_templates(raw: Located) -> dict[str, Template]:
    if "persona" not in raw:
        return {}
    block = require_mapping(raw["persona"], "persona", path=raw.path, line=raw.line_of("persona"))
    spec = PERSONA.read(block)
    return {
        kind: Template.compile(
            source, path=raw.path, first_line=block.line_of(kind), key=f"persona.{kind}"
        )
        for kind, source in spec.items()
        if source is not None
    }


def _crossed_cultures(
    raw: Located,
    axes: list[Axis],
    crossed: tuple[str, ...],
    excluded: list[dict[str, set[str]]],
    personas: dict[str, Template],
) -> list[Proxy]:
    if "culture" not in personas:
        raise InputError(
            "a crossed study needs 'persona: {culture: ...}', a template that says how one "
            "combination reads",
            path=raw.path,
            line=raw.line_of("cross"),
            key="persona",
            hint='e.g. persona: {culture: "a typical {{ religion.adjective }} family '
            '{{ region.in_phrase }}"}',
        )
    by_axis = {axis: (category, values) for axis, category, values in axes}
    _require_few_personas(raw, by_axis, crossed, excluded)
    # a value's forms compile templates: once per value, not once per combination it is part of
    forms_of = {
        (axis, value.id): value_forms(value, category)
        for axis, (category, values) in by_axis.items()
        for value in values
    }
    proxies = []
    for combination in itertools.product(*(by_axis[axis][1] for axis in crossed)):
        chosen = {axis: value.id for axis, value in zip(crossed, combination, strict=True)}
        if any(all(chosen[axis] in ids for axis, ids in rule.items()) for rule in excluded):
            continue
        parts = tuple(
            (axis, by_axis[axis][0], value)
            for axis, value in zip(crossed, combination, strict=True)
        )
        forms = {axis: forms_of[(axis, value.id)] for axis, _, value in parts}
        proxies.append(_culture(raw, parts, personas, forms))
    if not proxies:
        raise InputError(
            "'exclude' leaves no combination to ask",
            path=raw.path,
            line=raw.line_of("exclude"),
            key="exclude",
        )
    return proxies


def _require_few_personas(
    raw: Located,
    by_axis: dict[str, tuple[Category, list[ProxyValue]]],
    crossed: tuple[str, ...],
    excluded: list[dict[str, set[str]]],
) -> None:
    """Count the combinations (ids only, stopping past the limit) before any persona is built."""
    count = 0
    for combination in itertools.product(*([v.id for v in by_axis[a][1]] for a in crossed)):
        chosen = dict(zip(crossed, combination, strict=True))
        if any(all(chosen[axis] in ids for axis, ids in rule.items()) for rule in excluded):
            continue
        count += 1
        if count > MAX_PERSONAS:
            sizes = " x ".join(f"{len(by_axis[axis][1])} {axis}" for axis in crossed)
            raise InputError(
                f"crossing {sizes} gives more than {MAX_PERSONAS:,} personas, each asked at "
                "least once per item",
                path=raw.path,
                line=raw.line_of("cross"),
                key="cross",
                hint="cross fewer axes or values, or exclude combinations",
            )


def _culture(
    raw: Located,
    parts: tuple[tuple[str, Category, ProxyValue], ...],
    personas: dict[str, Template],
    forms: dict[str, dict[str, Any]] | None = None,
) -> Proxy:
    if forms is None:
        forms = {axis: value_forms(value, category) for axis, category, value in parts}
    if "culture" in personas:
        persona = _render_persona(personas["culture"], forms)
    else:
        _, category, value = parts[0]
        persona = persona_phrase(value, category)
    return Proxy(
        axis=AXIS_JOIN.join(axis for axis, _, _ in parts),
        value=parts[0][2] if len(parts) == 1 else None,
        kind="culture",
        persona=persona,
        components=tuple((axis, value) for axis, _, value in parts),
        forms=forms,
    )


def _render_persona(template: Template, forms: dict[str, dict[str, Any]]) -> str:
    try:
        return template.render(**forms)
    except InputError as error:
        available = "; ".join(f"{slot}: {', '.join(sorted(f))}" for slot, f in forms.items())
        raise InputError(
            error.message,
            path=error.path,
            line=error.line,
            key=error.key,
            hint=f"forms available for {', '.join(str(f['id']) for f in forms.values())}: "
            f"{available} (add more in the study's taxonomy_extra file)",
        ) from None


def _controls(raw: Located, taxonomy: Taxonomy, personas: dict[str, Template]) -> list[Proxy]:
    if "controls" not in raw:
        return []
    controls = require_mapping(
        raw["controls"], "controls", path=raw.path, line=raw.line_of("controls")
    )
    spec = CONTROLS.read(controls)
    proxies: list[Proxy] = []
    if spec["baseline"]:
        proxies.append(Proxy("none", None, "baseline", ""))
    if spec["placebos"] is None:
        return proxies
    placebo = taxonomy.require_category(
        PLACEBO_CATEGORY, "control", path=raw.path, line=controls.line_of("placebos")
    )
    if "culture" in personas and "placebo" not in personas:
        raise InputError(
            "the study writes its personas with 'persona.culture'; its placebos need the same "
            "shape in 'persona.placebo'",
            path=raw.path,
            line=raw.line_of("persona"),
            key="persona.placebo",
            hint='e.g. placebo: "a typical family {{ placebo.clause }}"',
        )
    entries: LocatedList = spec["placebos"]
    for index, value_id in enumerate(entries):
        value = placebo.value(str(value_id)) if isinstance(value_id, str | int) else None
        if value is None:
            raise InputError(
                f"unknown placebo '{value_id}'",
                path=raw.path,
                line=entries.line_of(index),
                key="controls.placebos",
                hint=expected_choice(str(value_id), [v.id for v in placebo.values]),
            )
        forms = {PLACEBO_CATEGORY: value_forms(value, placebo)}
        persona = (
            _render_persona(personas["placebo"], forms)
            if "placebo" in personas
            else persona_phrase(value, placebo)
        )
        proxies.append(Proxy(PLACEBO_CATEGORY, value, "placebo", persona, forms=forms))
    return proxies
