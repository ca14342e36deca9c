"""Studies: which probe items to ask, crossed with which proxies, in which wordings and orders.

A study file is a few readable lines of YAML (see ``taxonomy/values.yaml``)::

    study: values
    title: Emotions and Values
    semantic_proxy: emotions_and_values
    items: ../probes/values/items.yaml
    template: ../probes/templates/multiple_choice.en.j2
    framings: ../probes/framings/persona.en.yaml
    axes:
      region: [US, DE, JP, ...]
    controls:
      baseline: true
      placebos: [colour_green, ...]
    option_orders: [canonical, reversed]

Paths are relative to the study file. Everything is validated on load, so that a bad file stops the run
before anything is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from culture_probe.errors import InputError, expected_one_of
from culture_probe.schema import (
    check_keys,
    optional_str,
    require_list,
    require_mapping,
    require_str,
    string_list,
)
from culture_probe.taxonomy import ProxyValue, Taxonomy, find_taxonomy, load_taxonomy
from culture_probe.templates import Template
from culture_probe.yamlio import Located, LocatedList, load_yaml

SCALES = ("ordinal", "nominal")
ORDERS = ("canonical", "reversed", "cyclic")
LABEL_STYLES = ("letters", "numbers")
PLACEBO_CATEGORY = "placebo"


@dataclass(frozen=True)
class Paraphrase:
    id: str
    text: str


@dataclass(frozen=True)
class ProbeItem:
    """One question with its paraphrases and its answer options in canonical order."""

    id: str
    paraphrases: tuple[Paraphrase, ...]
    options: tuple[str, ...]
    scale: str
    wvs_id: str | None = None
    topic: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Framing:
    """How the question is put to the model: an optional system message and the user message."""

    id: str
    user: Template
    system: Template | None = None


@dataclass(frozen=True)
class Proxy:
    """A value the study asks about, with its role: a culture, a placebo, or the no-proxy baseline."""

    axis: str
    value: ProxyValue | None
    kind: str  # "culture" | "placebo" | "baseline"
    persona: str

    @property
    def id(self) -> str:
        return self.value.id if self.value is not None else "none"

    @property
    def name(self) -> str:
        return self.value.name if self.value is not None else "(no proxy)"


@dataclass(frozen=True)
class Study:
    """A fully loaded and validated study."""

    id: str
    title: str
    description: str
    path: str
    taxonomy: Taxonomy
    semantic_proxy: str
    items: tuple[ProbeItem, ...]
    question_template: Template
    framings: tuple[Framing, ...]
    baseline_framing: Framing | None
    proxies: tuple[Proxy, ...]
    option_orders: tuple[str, ...]
    option_labels: str
    seeds: tuple[int, ...]
    language: str
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 of its bytes

    @property
    def content_hash(self) -> str:
        """A hash of every file the study was built from, taxonomy included."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(Path(path).name.encode())
            digest.update(self.files[path].encode())
        return digest.hexdigest()


def load_study(path: str | Path, taxonomy_path: str | Path | None = None) -> Study:
    """Load a study, its items, template, framings and the taxonomy its proxies come from."""
    path = Path(path)
    raw = require_mapping(load_yaml(path), "a study", path=str(path))
    check_keys(
        raw,
        required=["study", "items", "template", "framings", "axes"],
        optional=[
            "title",
            "description",
            "semantic_proxy",
            "controls",
            "option_orders",
            "option_labels",
            "seeds",
            "language",
            "taxonomy",
            "interaction",
            "method",
        ],
        what="a study",
    )
    taxonomy_file = _resolve_taxonomy(raw, path, taxonomy_path)
    taxonomy = load_taxonomy(taxonomy_file)
    files = {str(path): _sha256(path), str(taxonomy_file): _sha256(taxonomy_file)}

    items_path = _relative_file(raw, "items", path)
    template_path = _relative_file(raw, "template", path)
    framings_path = _relative_file(raw, "framings", path)
    for extra in (items_path, template_path, framings_path):
        files[str(extra)] = _sha256(extra)

    semantic = require_str(raw, "semantic_proxy", default="emotions_and_values")
    taxonomy.require_category(
        semantic, "semantic", path=str(path), line=raw.line_of("semantic_proxy")
    )
    framings, baseline = load_framings(framings_path)
    study = Study(
        id=require_str(raw, "study"),
        title=require_str(raw, "title", default=require_str(raw, "study")),
        description=optional_str(raw, "description") or "",
        path=str(path),
        taxonomy=taxonomy,
        semantic_proxy=semantic,
        items=load_items(items_path),
        question_template=_load_template(template_path),
        framings=framings,
        baseline_framing=baseline,
        proxies=_load_proxies(raw, taxonomy),
        option_orders=_choices(raw, "option_orders", ORDERS, default=("canonical", "reversed")),
        option_labels=_choice(raw, "option_labels", LABEL_STYLES, default="letters"),
        seeds=_seeds(raw),
        language=require_str(raw, "language", default="en"),
        files=files,
    )
    if any(proxy.kind == "baseline" for proxy in study.proxies) and baseline is None:
        raise InputError(
            "the study asks for a no-proxy baseline but the framings file has no 'baseline' entry",
            path=str(framings_path),
            key="baseline",
        )
    return study


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resolve_taxonomy(raw: Located, path: Path, override: str | Path | None) -> Path:
    if override is not None:
        return Path(override)
    if "taxonomy" in raw:
        return _relative_file(raw, "taxonomy", path)
    return find_taxonomy(path.resolve().parent)


def _relative_file(raw: Located, key: str, study_path: Path) -> Path:
    target = (study_path.parent / require_str(raw, key)).resolve()
    if not target.is_file():
        raise InputError(f"file not found: {target}", path=raw.path, line=raw.line_of(key), key=key)
    return _display_path(target)


def _display_path(target: Path) -> Path:
    """A path relative to the working directory when it lies below it, for shorter messages."""
    try:
        return target.relative_to(Path.cwd())
    except ValueError:
        return target


def _choice(raw: Located, key: str, choices: tuple[str, ...], default: str) -> str:
    value = require_str(raw, key, default=default)
    if value not in choices:
        raise InputError(
            f"unknown value '{value}'",
            path=raw.path,
            line=raw.line_of(key),
            key=key,
            hint=expected_one_of(value, choices),
        )
    return value


def _choices(
    raw: Located, key: str, choices: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    if key not in raw:
        return default
    values = string_list(raw, key)
    entries = raw[key]
    for index, value in enumerate(values):
        if value not in choices:
            raise InputError(
                f"unknown value '{value}'",
                path=raw.path,
                line=entries.line_of(index),
                key=key,
                hint=expected_one_of(value, choices),
            )
    return tuple(dict.fromkeys(values))


def _seeds(raw: Located) -> tuple[int, ...]:
    if "seeds" not in raw:
        return (0,)
    values = require_list(raw, "seeds")
    seeds: list[int] = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(
                f"seed {index + 1} must be an integer",
                path=raw.path,
                line=values.line_of(index),
                key="seeds",
            )
        seeds.append(value)
    return tuple(seeds)


def load_items(path: Path) -> tuple[ProbeItem, ...]:
    """Load a probe items file: ``items:`` a list of questions with paraphrases and options."""
    raw = require_mapping(load_yaml(path), "a probe items file", path=str(path))
    check_keys(
        raw, required=["items"], optional=["description", "source"], what="a probe items file"
    )
    entries = require_list(raw, "items")
    items = []
    for index, entry in enumerate(entries):
        mapping = require_mapping(
            entry, "a probe item", path=str(path), line=entries.line_of(index)
        )
        items.append(_load_item(mapping))
    ids = [item.id for item in items]
    for index, item_id in enumerate(ids):
        if ids.index(item_id) != index:
            raise InputError(
                f"item id '{item_id}' is used twice",
                path=str(path),
                line=entries.line_of(index),
                key="id",
            )
    return tuple(items)


def _load_item(entry: Located) -> ProbeItem:
    check_keys(
        entry,
        required=["id", "paraphrases", "options"],
        optional=["scale", "wvs_id", "topic", "source", "notes"],
        what="a probe item",
    )
    texts = string_list(entry, "paraphrases")
    options = string_list(entry, "options")
    if len(options) < 2:
        raise InputError(
            "an item needs at least two options",
            path=entry.path,
            line=entry.line_of("options"),
            key="options",
        )
    return ProbeItem(
        id=require_str(entry, "id"),
        paraphrases=tuple(Paraphrase(f"p{n + 1}", text) for n, text in enumerate(texts)),
        options=tuple(options),
        scale=_choice(entry, "scale", SCALES, default="ordinal"),
        wvs_id=optional_str(entry, "wvs_id"),
        topic=optional_str(entry, "topic"),
        source=optional_str(entry, "source"),
    )


def _load_template(path: Path) -> Template:
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", path=path) from None
    return Template.compile(source, path=str(path))


def load_framings(path: Path) -> tuple[tuple[Framing, ...], Framing | None]:
    """Load the framings file: persona framings and the optional no-proxy ``baseline``."""
    raw = require_mapping(load_yaml(path), "a framings file", path=str(path))
    check_keys(
        raw, required=["framings"], optional=["baseline", "description"], what="a framings file"
    )
    entries = require_list(raw, "framings")
    framings = tuple(
        _load_framing(
            require_mapping(entry, "a framing", path=str(path), line=entries.line_of(index)),
            framing_id=None,
        )
        for index, entry in enumerate(entries)
    )
    baseline = None
    if "baseline" in raw:
        mapping = require_mapping(
            raw["baseline"], "a framing", path=str(path), line=raw.line_of("baseline")
        )
        baseline = _load_framing(mapping, framing_id="none")
    return framings, baseline


def _load_framing(entry: Located, framing_id: str | None) -> Framing:
    required = ["user"] if framing_id else ["id", "user"]
    check_keys(entry, required=required, optional=["id", "system", "notes"], what="a framing")
    return Framing(
        id=framing_id or require_str(entry, "id"),
        user=_inline_template(entry, "user"),
        system=_inline_template(entry, "system") if "system" in entry else None,
    )


def _inline_template(entry: Located, key: str) -> Template:
    source = require_str(entry, key)
    # A block scalar starts on the line after its key.
    first_line = entry.line_of(key) + (1 if "\n" in source else 0)
    return Template.compile(source, path=entry.path, first_line=first_line, key=key)


def _load_proxies(raw: Located, taxonomy: Taxonomy) -> tuple[Proxy, ...]:
    axes = require_mapping(raw["axes"], "axes", path=raw.path, line=raw.line_of("axes"))
    if not axes:
        raise InputError(
            "a study needs at least one axis", path=raw.path, line=axes.line, key="axes"
        )
    proxies: list[Proxy] = []
    for axis_id, value_ids in axes.items():
        category = taxonomy.require_category(
            axis_id, "demographic", path=raw.path, line=axes.line_of(axis_id)
        )
        if not isinstance(value_ids, LocatedList) or not value_ids:
            raise InputError(
                "expected a non-empty list of value ids",
                path=raw.path,
                line=axes.line_of(axis_id),
                key=f"axes.{axis_id}",
            )
        for index, value_id in enumerate(value_ids):
            value = category.value(str(value_id))
            if value is None:
                raise InputError(
                    f"unknown {category.label} value '{value_id}'",
                    path=raw.path,
                    line=value_ids.line_of(index),
                    key=f"axes.{axis_id}",
                    hint=expected_one_of(str(value_id), [v.id for v in category.values]),
                )
            proxies.append(Proxy(axis_id, value, "culture", _persona(value, category.persona)))
    proxies.extend(_load_controls(raw, taxonomy))
    return tuple(proxies)


def _load_controls(raw: Located, taxonomy: Taxonomy) -> list[Proxy]:
    if "controls" not in raw:
        return []
    controls = require_mapping(
        raw["controls"], "controls", path=raw.path, line=raw.line_of("controls")
    )
    check_keys(controls, required=[], optional=["baseline", "placebos"], what="controls")
    proxies: list[Proxy] = []
    if controls.get("baseline"):
        proxies.append(Proxy("none", None, "baseline", ""))
    if "placebos" in controls:
        placebo = taxonomy.require_category(
            PLACEBO_CATEGORY, "control", path=raw.path, line=controls.line_of("placebos")
        )
        entries = require_list(controls, "placebos")
        for index, value_id in enumerate(entries):
            value = placebo.value(str(value_id))
            if value is None:
                raise InputError(
                    f"unknown placebo '{value_id}'",
                    path=raw.path,
                    line=entries.line_of(index),
                    key="controls.placebos",
                    hint=expected_one_of(str(value_id), [v.id for v in placebo.values]),
                )
            proxies.append(
                Proxy(PLACEBO_CATEGORY, value, "placebo", _persona(value, placebo.persona))
            )
    return proxies


def _persona(value: ProxyValue, category_persona: str | None) -> str:
    """The noun phrase a framing puts the model into, e.g. 'a person from Japan'."""
    if value.persona:
        return value.persona
    if category_persona:
        context = {"name": value.name, "id": value.id, **value.attributes}
        return Template.compile(category_persona, path="taxonomy persona").render(**context)
    return f"a person ({value.name})"
