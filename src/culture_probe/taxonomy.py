"""The taxonomy of cultural proxies as typed objects, loaded from ``taxonomy/taxonomy.yaml``.

The taxonomy follows the survey "Towards Measuring and Modeling 'Culture' in LLMs" (Adilazuarda,
Mukherjee et al., EMNLP 2024): demographic proxies (Region, Language, Religion, ...), semantic proxies
(Emotions and Values, Food and Drink, ...; the domains of Thompson et al. 2020), the language-culture
interaction dimensions of Hershcovich et al. (2022), and the probing methods. Demographic categories
carry *values* (countries, languages, religions, ...) that studies cross their questions with.

*Phrase forms.* A framing that crosses axes composes its persona from each value's own phrases ("a
typical {{ religion.adjective }} family {{ region.in_phrase }}"). Every value has the forms ``id``,
``name`` and ``person`` (its persona phrase); a category's ``forms`` gives templates for more (region:
``in_phrase: "in {{ name }}"``), and a value's own ``forms`` adds or overrides some (``adjective:
Indian``, ``in_phrase: in the United States``). See :func:`value_forms`.

*A study's own values.* A study adds countries, placebos, languages or forms in a taxonomy file of its
own (study key ``taxonomy_extra``), merged over the packaged taxonomy by :func:`extend_taxonomy`, so
that nobody edits the packaged file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from culture_probe.errors import InputError, expected_one_of
from culture_probe.identifiers import check_id, comparison_key, differences
from culture_probe.schema import (
    check_keys,
    optional_str,
    require_list,
    require_mapping,
    require_str,
)
from culture_probe.yamlio import Located, load_yaml

STATUSES = ("studied", "extension", "not_yet_studied")
DIMENSIONS = ("demographic", "semantic", "interaction", "method", "control")
DEFAULT_TAXONOMY = "taxonomy.yaml"


@dataclass(frozen=True)
class ProxyValue:
    """One value of a demographic category, e.g. Japan for Region, or a placebo attribute."""

    id: str
    name: str
    category: str
    persona: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    forms: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Category:
    """One taxonomy cell: a proxy, a semantic domain, an interaction dimension or a method."""

    id: str
    label: str
    dimension: str
    description: str
    citation: str
    status: str = "studied"
    persona: str | None = None
    values: tuple[ProxyValue, ...] = ()
    aliases: tuple[str, ...] = ()
    forms: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def value(self, value_id: str) -> ProxyValue | None:
        for value in self.values:
            if value.id == value_id:
                return value
        return None


@dataclass(frozen=True)
class Source:
    id: str
    citation: str
    url: str | None = None


@dataclass(frozen=True)
class Taxonomy:
    """All categories, by dimension, with the works they are cited from."""

    path: str
    categories: tuple[Category, ...]
    sources: tuple[Source, ...]

    def category(self, category_id: str) -> Category | None:
        for category in self.categories:
            if category.id == category_id:
                return category
        return None

    def in_dimension(self, dimension: str) -> list[Category]:
        return [c for c in self.categories if c.dimension == dimension]

    def require_category(
        self, category_id: str, dimension: str, *, path: str, line: int
    ) -> Category:
        """The category with this id in ``dimension``, or an error naming the choices."""
        category = self.category(category_id)
        if category is None or category.dimension != dimension:
            choices = [c.id for c in self.in_dimension(dimension)]
            raise InputError(
                f"unknown {dimension} category '{category_id}'",
                path=path,
                line=line,
                hint=expected_one_of(category_id, choices),
            )
        return category


def find_taxonomy(start: Path) -> Path:
    """The taxonomy file for a study: ``taxonomy.yaml`` beside it or in a parent folder."""
    for folder in [start, *start.parents]:
        candidate = folder / DEFAULT_TAXONOMY
        if candidate.is_file():
            return candidate
        candidate = folder / "taxonomy" / DEFAULT_TAXONOMY
        if candidate.is_file():
            return candidate
    raise InputError(
        f"no {DEFAULT_TAXONOMY} found beside the study or in a parent folder", path=str(start)
    )


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Load and validate a taxonomy file."""
    raw = require_mapping(load_yaml(path), "a taxonomy", path=str(path))
    check_keys(
        raw, required=["sources", "dimensions"], optional=["name", "version"], what="taxonomy"
    )
    sources = tuple(_load_source(entry) for entry in _mappings(raw, "sources", "a source"))
    known_sources = {source.id for source in sources}
    categories: list[Category] = []
    for dimension in _mappings(raw, "dimensions", "a dimension"):
        categories.extend(_load_dimension(dimension, known_sources))
    _check_unique_ids(categories, str(path))
    return Taxonomy(path=str(path), categories=tuple(categories), sources=sources)


def _mappings(raw: Located, key: str, what: str) -> list[Located]:
    entries = require_list(raw, key)
    return [
        require_mapping(entry, what, path=raw.path, line=entries.line_of(index))
        for index, entry in enumerate(entries)
    ]


def _load_source(entry: Located) -> Source:
    check_keys(entry, required=["id", "citation"], optional=["url"], what="a source")
    return Source(
        id=require_str(entry, "id"),
        citation=require_str(entry, "citation"),
        url=optional_str(entry, "url"),
    )


def _load_dimension(entry: Located, known_sources: set[str]) -> list[Category]:
    check_keys(
        entry, required=["id", "label", "categories"], optional=["description"], what="a dimension"
    )
    dimension = require_str(entry, "id")
    if dimension not in DIMENSIONS:
        raise InputError(
            f"unknown dimension '{dimension}'",
            path=entry.path,
            line=entry.line_of("id"),
            key="id",
            hint=expected_one_of(dimension, DIMENSIONS),
        )
    return [
        _load_category(category, dimension, known_sources)
        for category in _mappings(entry, "categories", "a category")
    ]


def _load_category(entry: Located, dimension: str, known_sources: set[str]) -> Category:
    check_keys(
        entry,
        required=["id", "label", "description", "citation"],
        optional=["status", "persona", "values", "aliases", "notes", "forms"],
        what="a category",
    )
    category_id = check_id(
        require_str(entry, "id"), what="category id", path=entry.path, line=entry.line_of("id")
    )
    status = require_str(entry, "status", default="studied")
    if status not in STATUSES:
        raise InputError(
            f"unknown status '{status}'",
            path=entry.path,
            line=entry.line_of("status"),
            key="status",
            hint=expected_one_of(status, STATUSES),
        )
    citation = require_str(entry, "citation")
    for cited in citation.split(";"):
        if cited.strip() not in known_sources:
            raise InputError(
                f"citation '{cited.strip()}' is not among the taxonomy's sources",
                path=entry.path,
                line=entry.line_of("citation"),
                key="citation",
                hint=expected_one_of(cited.strip(), known_sources),
            )
    values = _distinct_values(
        [
            (_load_value(value, category_id), value)
            for value in (_mappings(entry, "values", "a value") if "values" in entry else [])
        ]
    )
    aliases = tuple(str(alias) for alias in entry.get("aliases") or ())
    return Category(
        id=category_id,
        label=require_str(entry, "label"),
        dimension=dimension,
        description=require_str(entry, "description"),
        citation=citation,
        status=status,
        persona=optional_str(entry, "persona"),
        values=values,
        aliases=aliases,
        forms=_forms(entry),
    )


def _load_value(entry: Located, category_id: str) -> ProxyValue:
    if "id" not in entry or "name" not in entry:
        missing = "id" if "id" not in entry else "name"
        raise InputError(
            "missing required key in a value", path=entry.path, line=entry.line, key=missing
        )
    attributes = {
        key: value for key, value in entry.items() if key not in ("id", "name", "persona", "forms")
    }
    # a value id becomes a proxy, and a crossed proxy joins value ids with '+' (IN+islam)
    value_id = check_id(
        require_str(entry, "id"),
        what="value id",
        path=entry.path,
        line=entry.line_of("id"),
        reserved=True,
    )
    return ProxyValue(
        id=value_id,
        name=require_str(entry, "name"),
        category=category_id,
        persona=optional_str(entry, "persona"),
        attributes=attributes,
        forms=_forms(entry),
    )


def _distinct_values(loaded: list[tuple[ProxyValue, Located]]) -> tuple[ProxyValue, ...]:
    """The values of one category, refusing two ids that read the same (``IN`` and ``ＩＮ``)."""
    seen: dict[str, ProxyValue] = {}
    for value, entry in loaded:
        key = comparison_key(value.id)
        if key in seen:
            earlier = seen[key].id
            how = "" if earlier == value.id else f" ('{earlier}': {differences(earlier, value.id)})"
            raise InputError(
                f"value id '{value.id}' of category '{value.category}' is defined twice{how}",
                path=entry.path,
                line=entry.line_of("id"),
                key="id",
            )
        seen[key] = value
    return tuple(value for value, _ in loaded)


def _forms(entry: Located) -> dict[str, str]:
    """A ``forms`` mapping of form name -> text (or template, for a category)."""
    if "forms" not in entry:
        return {}
    block = require_mapping(
        entry["forms"], "phrase forms", path=entry.path, line=entry.line_of("forms")
    )
    for name in block:
        if not name.isidentifier():
            raise InputError(
                "a form name must be a plain identifier (letters, digits, _), so that a "
                "framing can write {{ axis.form }}",
                path=entry.path,
                line=block.line_of(name),
                key=f"forms.{name}",
            )
    return {str(name): require_str(block, name) for name in block}


def persona_phrase(value: ProxyValue, category: Category) -> str:
    """The noun phrase a framing puts the model into, e.g. 'a person from Japan'."""
    from culture_probe.templates import Template

    if value.persona:
        return value.persona
    if category.persona:
        context = {**value.attributes, "name": value.name, "id": value.id}
        return Template.compile(category.persona, path="taxonomy persona").render(**context)
    return f"a person ({value.name})"


def value_forms(value: ProxyValue, category: Category) -> dict[str, str]:
    """The phrase forms of a value: id, name, person, the category's templates, its own forms.

    Example:
        >>> category = Category("region", "Region", "demographic", "", "", persona="a person from {{ name }}",
        ...                     forms={"in_phrase": "in {{ name }}"})
        >>> forms = value_forms(ProxyValue("IN", "India", "region", forms={"adjective": "Indian"}), category)
        >>> forms["in_phrase"], forms["adjective"], forms["person"]
        ('in India', 'Indian', 'a person from India')
    """
    from culture_probe.templates import Template

    forms = {"id": value.id, "name": value.name, "person": persona_phrase(value, category)}
    context = {**value.attributes, "name": value.name, "id": value.id}
    for name, source in category.forms.items():
        if name not in value.forms:
            template = Template.compile(source, path=f"taxonomy forms of {category.id}", key=name)
            forms[name] = template.render(**context)
    forms.update(value.forms)
    return forms


def extend_taxonomy(taxonomy: Taxonomy, path: str | Path) -> Taxonomy:
    """The taxonomy with a study's own additions from ``path`` merged over it.

    The file holds ``categories:``, a mapping from an existing category id to ``values`` (a value
    with a new id is added; one with an existing id has its name, persona, forms and attributes
    replaced by those given) and optionally ``persona`` and ``forms`` for the category itself.
    """
    raw = require_mapping(load_yaml(path), "a taxonomy extension", path=str(path))
    check_keys(raw, required=["categories"], optional=["description"], what="a taxonomy extension")
    block = require_mapping(
        raw["categories"], "categories", path=str(path), line=raw.line_of("categories")
    )
    by_id = {category.id: category for category in taxonomy.categories}
    for category_id, entry in block.items():
        if category_id not in by_id:
            raise InputError(
                f"unknown category '{category_id}': a taxonomy extension adds values to the "
                "categories of the packaged taxonomy",
                path=str(path),
                line=block.line_of(category_id),
                key=f"categories.{category_id}",
                hint=expected_one_of(category_id, by_id),
            )
        mapping = require_mapping(
            entry, f"'{category_id}'", path=str(path), line=block.line_of(category_id)
        )
        by_id[category_id] = _extend_category(by_id[category_id], mapping)
    categories = tuple(by_id[category.id] for category in taxonomy.categories)
    return replace(taxonomy, categories=categories)


def _extend_category(category: Category, entry: Located) -> Category:
    check_keys(entry, required=[], optional=["values", "persona", "forms"], what="a category")
    values = {value.id: value for value in category.values}
    added = [
        (_load_value(new, category.id), new)
        for new in (_mappings(entry, "values", "a value") if "values" in entry else [])
    ]
    # one id twice in the extension itself would let the second silently replace the first
    for value in _distinct_values(added):
        values[value.id] = _merged(values.get(value.id), value)
    return replace(
        category,
        values=tuple(values.values()),
        persona=optional_str(entry, "persona") or category.persona,
        forms={**category.forms, **_forms(entry)},
    )


def _merged(old: ProxyValue | None, new: ProxyValue) -> ProxyValue:
    if old is None:
        return new
    return replace(
        new,
        persona=new.persona or old.persona,
        attributes={**old.attributes, **new.attributes},
        forms={**old.forms, **new.forms},
    )


def _check_unique_ids(categories: list[Category], path: str) -> None:
    seen: set[str] = set()
    for category in categories:
        if category.id in seen:
            raise InputError(f"category id '{category.id}' is defined twice", path=path)
        seen.add(category.id)
        value_ids = [value.id for value in category.values]
        duplicates = {value for value in value_ids if value_ids.count(value) > 1}
        if duplicates:
            raise InputError(
                f"category '{category.id}' defines values {sorted(duplicates)} more than once",
                path=path,
            )
