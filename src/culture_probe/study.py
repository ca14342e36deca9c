"""Studies: which probe items to ask, crossed with which proxies, in which wordings, orders and languages.

A study file is a few readable lines of YAML (see ``taxonomy/values.yaml``)::

    study: values
    title: Emotions and Values
    semantic_proxy: emotions_and_values
    items: ../probes/values/items.yaml
    template: ../probes/templates/multiple_choice.{lang}.j2
    framings: ../probes/framings/persona.{lang}.yaml
    use_framings: [imagine]        # optional; default: every framing in the file
    languages: [en, ja]            # optional; default [en] (or the single ``language:``)
    reference: reference.parquet   # optional human answer distributions
    answers: answers.parquet       # optional annotated short answers (short-answer items)
    axes:
      region: [US, DE, JP, ...]
    controls:
      baseline: true
      placebos: [colour_green, ...]
    option_orders: [canonical, reversed]

Paths are relative to the study file. Everything is validated on load, so that a bad file stops the run
before anything is written.

**Prompt language** is an axis of its own, separate from the culture asked about: ``languages: [en, ja]``
crosses every item, proxy and wording with each language, so that "asked in English about Japan" and
"asked in Japanese about Japan" sit side by side in the plan's ``language`` column. A ``{lang}`` in the
``template`` and ``framings`` paths is replaced by each language code (``multiple_choice.ja.j2``).
The language codes are ISO 639-1 values of the taxonomy's Language category.

*Translated items.* An items file is written in one language (``language: en`` at its top, the default)
and each item carries its other languages in a ``translations`` block, with the same number of
paraphrases and options in the same canonical order::

    - id: family_importance
      options: [Very important, Rather important, Not very important, Not at all important]
      paraphrases: [How much does family matter in your life?, ...]
      translations:
        ja:
          options: [とても重要, やや重要, あまり重要でない, まったく重要でない]
          paraphrases: [あなたの人生にとって、家族はどのくらい大切ですか。, ...]

Paraphrase ``p2`` in Japanese translates ``p2`` in English, so a wording keeps its id across languages.

*Localised personas.* A framings file in another language names, in that language, the personas it
puts the model into: ``persona`` maps an axis to a template over the value's local name, ``names`` gives
the local names, and ``personas`` gives whole noun phrases for values a template does not suit::

    language: ja
    persona: {region: "{{ name }}出身の人"}
    names: {JP: 日本, US: アメリカ}
    personas: {colour_green: 好きな色が緑の人}

An English framings file needs none of this: personas come from the taxonomy.

**Short-answer items** (``kind: short_answer``) have no options: the model writes an answer (generate
mode) that is scored by matching it against annotated human answers (BLEnD, Myung et al. 2024). Their
question usually names the culture, so the text is given per proxy and language::

    - id: Al-en-01
      kind: short_answer
      questions_by_proxy:
        DZ: {en: What is a common snack for preschool kids in Algeria?, ar: ...}

Only the (proxy, language) pairs that have a text are planned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    import pandas as pd

SCALES = ("ordinal", "nominal")
ORDERS = ("canonical", "reversed", "cyclic")
LABEL_STYLES = ("letters", "numbers")
ITEM_KINDS = ("choice", "short_answer")
PLACEBO_CATEGORY = "placebo"
LANGUAGE_CATEGORY = "language"
LANGUAGE_PLACEHOLDER = "{lang}"
SHORT_ANSWER_SCALE = "short_answer"  # the plan's ``scale`` for items without options
REFERENCE_TOLERANCE = 1e-3  # shares of a stored reference sum to 1 up to rounding


@dataclass(frozen=True)
class Paraphrase:
    id: str
    text: str


@dataclass(frozen=True)
class ItemText:
    """An item's paraphrases and options in one language (options in canonical order)."""

    paraphrases: tuple[Paraphrase, ...]
    options: tuple[str, ...]


@dataclass(frozen=True)
class ProbeItem:
    """One question with its paraphrases and its answer options in canonical order.

    ``paraphrases`` and ``options`` are in the items file's own ``language``; ``translations`` holds
    the same paraphrases and options in other languages. A short-answer item has no options and
    its question text per proxy and language in ``questions_by_proxy``.
    """

    id: str
    paraphrases: tuple[Paraphrase, ...]
    options: tuple[str, ...]
    scale: str
    wvs_id: str | None = None
    topic: str | None = None
    source: str | None = None
    kind: str = "choice"
    language: str = "en"
    translations: dict[str, ItemText] = field(default_factory=dict, compare=False, hash=False)
    questions_by_proxy: dict[str, dict[str, str]] = field(
        default_factory=dict, compare=False, hash=False
    )

    def text(self, language: str) -> ItemText:
        """Paraphrases and options in ``language`` (checked to exist when the study is loaded)."""
        if language == self.language:
            return ItemText(self.paraphrases, self.options)
        return self.translations[language]


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
class LanguageSetup:
    """What a study needs to ask in one language: template, framings and localised personas."""

    language: str
    template: Template
    framings: tuple[Framing, ...]
    baseline: Framing | None
    personas: dict[str, str] = field(default_factory=dict)  # proxy id -> noun phrase

    def persona(self, proxy: Proxy) -> str:
        return self.personas.get(proxy.id, proxy.persona)


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
    languages: tuple[str, ...] = ()
    setups: dict[str, LanguageSetup] = field(default_factory=dict)
    reference: str | None = None  # path of the human reference distributions
    answers: str | None = None  # path of annotated short answers (item_id, proxy, language, ...)

    @property
    def content_hash(self) -> str:
        """A hash of every file the study was built from, taxonomy included."""
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(Path(path).name.encode())
            digest.update(self.files[path].encode())
        return digest.hexdigest()

    def setup(self, language: str) -> LanguageSetup:
        """The template, framings and personas of one prompt language."""
        if language in self.setups:
            return self.setups[language]
        return LanguageSetup(language, self.question_template, self.framings, self.baseline_framing)


def load_study(path: str | Path, taxonomy_path: str | Path | None = None) -> Study:
    """Load a study, its items, templates, framings and the taxonomy its proxies come from."""
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
            "languages",
            "reference",
            "answers",
            "use_framings",
            "taxonomy",
            "interaction",
            "method",
        ],
        what="a study",
    )
    taxonomy_file = _resolve_taxonomy(raw, path, taxonomy_path)
    taxonomy = load_taxonomy(taxonomy_file)
    files = {str(path): _sha256(path), str(taxonomy_file): _sha256(taxonomy_file)}
    languages = _languages(raw, taxonomy)

    items_path = _relative_file(raw, "items", path)
    files[str(items_path)] = _sha256(items_path)
    semantic = require_str(raw, "semantic_proxy", default="emotions_and_values")
    taxonomy.require_category(
        semantic, "semantic", path=str(path), line=raw.line_of("semantic_proxy")
    )
    proxies = _load_proxies(raw, taxonomy)
    setups = {language: _load_setup(raw, path, language, proxies, files) for language in languages}
    items = load_items(items_path)
    _check_item_languages(items, languages, items_path)
    reference = _relative_file(raw, "reference", path) if "reference" in raw else None
    if reference is not None:
        files[str(reference)] = _sha256(reference)
    answers = _relative_file(raw, "answers", path) if "answers" in raw else None
    if answers is not None:
        files[str(answers)] = _sha256(answers)
    first = setups[languages[0]]
    study = Study(
        id=require_str(raw, "study"),
        title=require_str(raw, "title", default=require_str(raw, "study")),
        description=optional_str(raw, "description") or "",
        path=str(path),
        taxonomy=taxonomy,
        semantic_proxy=semantic,
        items=items,
        question_template=first.template,
        framings=first.framings,
        baseline_framing=first.baseline,
        proxies=proxies,
        option_orders=_choices(raw, "option_orders", ORDERS, default=("canonical", "reversed")),
        option_labels=_choice(raw, "option_labels", LABEL_STYLES, default="letters"),
        seeds=_seeds(raw),
        language=languages[0],
        files=files,
        languages=languages,
        setups=setups,
        reference=str(reference) if reference is not None else None,
        answers=str(answers) if answers is not None else None,
    )
    if any(proxy.kind == "baseline" for proxy in study.proxies):
        for language, setup in setups.items():
            if setup.baseline is None:
                raise InputError(
                    "the study asks for a no-proxy baseline but the framings file has no "
                    "'baseline' entry",
                    path=str(_language_file(raw, "framings", path, language)),
                    key="baseline",
                )
    return study


def _languages(raw: Located, taxonomy: Taxonomy) -> tuple[str, ...]:
    if "languages" in raw and "language" in raw:
        raise InputError(
            "give either 'language' or 'languages', not both",
            path=raw.path,
            line=raw.line_of("languages"),
            key="languages",
        )
    if "languages" in raw:
        codes = string_list(raw, "languages")
        lines = [raw["languages"].line_of(index) for index in range(len(codes))]
    else:
        codes = [require_str(raw, "language", default="en")]
        lines = [raw.line_of("language")]
    category = taxonomy.category(LANGUAGE_CATEGORY)
    known = [value.id for value in category.values] if category is not None else []
    for code, line in zip(codes, lines, strict=True):
        if known and code not in known:
            raise InputError(
                f"unknown language code '{code}' (ISO 639-1 codes of the taxonomy's Language "
                "category)",
                path=raw.path,
                line=line,
                key="languages" if "languages" in raw else "language",
                hint=_language_hint(code, taxonomy, known),
            )
    return tuple(dict.fromkeys(codes))


def _language_hint(code: str, taxonomy: Taxonomy, known: list[str]) -> str:
    """A suggestion for a wrong language code: a language name, or a country code given instead."""
    language = taxonomy.category(LANGUAGE_CATEGORY)
    region = taxonomy.category("region")
    by_name = {v.name.lower(): v.id for v in language.values} if language else {}
    if code.lower() in by_name:
        return f"did you mean '{by_name[code.lower()]}'? {expected_one_of(code, known)}"
    country = region.value(code.upper()) if region else None
    spoken = country.attributes.get("languages") if country else None
    if country is not None and spoken:
        return (
            f"did you mean '{spoken[0]}'? '{code}' looks like the country code of "
            f"{country.name}, whose main language is '{spoken[0]}'"
        )
    return expected_one_of(code, known)


def _language_file(raw: Located, key: str, study_path: Path, language: str) -> Path:
    """The study's ``key`` file for one language: ``{lang}`` in the path becomes the code."""
    name = require_str(raw, key)
    target = (study_path.parent / name.replace(LANGUAGE_PLACEHOLDER, language)).resolve()
    if not target.is_file():
        where = f" for language '{language}'" if LANGUAGE_PLACEHOLDER in name else ""
        raise InputError(
            f"file not found{where}: {target}", path=raw.path, line=raw.line_of(key), key=key
        )
    return _display_path(target)


def _load_setup(
    raw: Located, path: Path, language: str, proxies: tuple[Proxy, ...], files: dict[str, str]
) -> LanguageSetup:
    template_path = _language_file(raw, "template", path, language)
    framings_path = _language_file(raw, "framings", path, language)
    for extra in (template_path, framings_path):
        files[str(extra)] = _sha256(extra)
    framings, baseline, personas = load_language_framings(framings_path, proxies)
    framings = _used_framings(raw, framings, framings_path)
    return LanguageSetup(language, _load_template(template_path), framings, baseline, personas)


def _used_framings(
    raw: Located, framings: tuple[Framing, ...], framings_path: Path
) -> tuple[Framing, ...]:
    """The framings named by the study's ``use_framings`` (all of them when it is absent)."""
    if "use_framings" not in raw:
        return framings
    known = {framing.id: framing for framing in framings}
    wanted = string_list(raw, "use_framings")
    for index, framing_id in enumerate(wanted):
        if framing_id not in known:
            raise InputError(
                f"framing '{framing_id}' is not in {framings_path}",
                path=raw.path,
                line=raw["use_framings"].line_of(index),
                key="use_framings",
                hint=expected_one_of(framing_id, known),
            )
    return tuple(known[framing_id] for framing_id in dict.fromkeys(wanted))


def _check_item_languages(
    items: tuple[ProbeItem, ...], languages: tuple[str, ...], path: Path
) -> None:
    for item in items:
        if item.kind == "short_answer":
            continue
        for language in languages:
            if language != item.language and language not in item.translations:
                raise InputError(
                    f"item '{item.id}' has no '{language}' translation, which the study asks in",
                    path=str(path),
                    key=f"{item.id}.translations",
                    hint=f"has: {', '.join([item.language, *item.translations])}",
                )


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
        raw,
        required=["items"],
        optional=["description", "source", "language"],
        what="a probe items file",
    )
    language = require_str(raw, "language", default="en")
    entries = require_list(raw, "items")
    items = []
    for index, entry in enumerate(entries):
        mapping = require_mapping(
            entry, "a probe item", path=str(path), line=entries.line_of(index)
        )
        items.append(_load_item(mapping, language))
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


def _load_item(entry: Located, language: str) -> ProbeItem:
    kind = _choice(entry, "kind", ITEM_KINDS, default="choice")
    if kind == "short_answer":
        return _load_short_answer_item(entry, language)
    check_keys(
        entry,
        required=["id", "paraphrases", "options"],
        optional=["scale", "wvs_id", "topic", "source", "notes", "kind", "translations"],
        what="a probe item",
    )
    text = _item_text(entry)
    item_id = require_str(entry, "id")
    return ProbeItem(
        id=item_id,
        paraphrases=text.paraphrases,
        options=text.options,
        scale=_choice(entry, "scale", SCALES, default="ordinal"),
        wvs_id=optional_str(entry, "wvs_id"),
        topic=optional_str(entry, "topic"),
        source=optional_str(entry, "source"),
        kind=kind,
        language=language,
        translations=_translations(entry, text, item_id),
    )


def _item_text(entry: Located) -> ItemText:
    texts = string_list(entry, "paraphrases")
    options = string_list(entry, "options")
    if len(options) < 2:
        raise InputError(
            "an item needs at least two options",
            path=entry.path,
            line=entry.line_of("options"),
            key="options",
        )
    paraphrases = tuple(Paraphrase(f"p{n + 1}", text) for n, text in enumerate(texts))
    return ItemText(paraphrases, tuple(options))


def _translations(entry: Located, original: ItemText, item_id: str) -> dict[str, ItemText]:
    if "translations" not in entry:
        return {}
    block = require_mapping(
        entry["translations"], "translations", path=entry.path, line=entry.line_of("translations")
    )
    out: dict[str, ItemText] = {}
    for language, value in block.items():
        mapping = require_mapping(
            value, f"a '{language}' translation", path=entry.path, line=block.line_of(language)
        )
        check_keys(
            mapping, required=["paraphrases", "options"], optional=["notes"], what="a translation"
        )
        text = _item_text(mapping)
        for what, ours, theirs in (
            ("paraphrases", text.paraphrases, original.paraphrases),
            ("options", text.options, original.options),
        ):
            if len(ours) != len(theirs):
                raise InputError(
                    f"item '{item_id}': the '{language}' translation has {len(ours)} {what}, "
                    f"the original {len(theirs)}; they must match one to one",
                    path=entry.path,
                    line=mapping.line_of(what),
                    key=f"translations.{language}.{what}",
                )
        out[str(language)] = text
    return out


def _load_short_answer_item(entry: Located, language: str) -> ProbeItem:
    check_keys(
        entry,
        required=["id", "kind", "questions_by_proxy"],
        optional=["topic", "source", "notes", "wvs_id"],
        what="a short-answer item",
    )
    block = require_mapping(
        entry["questions_by_proxy"],
        "questions per proxy",
        path=entry.path,
        line=entry.line_of("questions_by_proxy"),
    )
    questions: dict[str, dict[str, str]] = {}
    for proxy_id, texts in block.items():
        mapping = require_mapping(
            texts, "questions per language", path=entry.path, line=block.line_of(proxy_id)
        )
        questions[str(proxy_id)] = {str(code): require_str(mapping, code) for code in mapping}
    return ProbeItem(
        id=require_str(entry, "id"),
        paraphrases=(),
        options=(),
        scale=SHORT_ANSWER_SCALE,
        wvs_id=optional_str(entry, "wvs_id"),
        topic=optional_str(entry, "topic"),
        source=optional_str(entry, "source"),
        kind="short_answer",
        language=language,
        questions_by_proxy=questions,
    )


def _load_template(path: Path) -> Template:
    try:
        source = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", path=path) from None
    return Template.compile(source, path=str(path))


def load_framings(path: Path) -> tuple[tuple[Framing, ...], Framing | None]:
    """Load the framings file: persona framings and the optional no-proxy ``baseline``."""
    framings, baseline, _ = load_language_framings(path, ())
    return framings, baseline


def load_language_framings(
    path: Path, proxies: tuple[Proxy, ...]
) -> tuple[tuple[Framing, ...], Framing | None, dict[str, str]]:
    """Load a framings file with its localised personas for ``proxies`` (see the module docs)."""
    raw = require_mapping(load_yaml(path), "a framings file", path=str(path))
    check_keys(
        raw,
        required=["framings"],
        optional=["baseline", "description", "language", "persona", "names", "personas"],
        what="a framings file",
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
    return framings, baseline, _localised_personas(raw, proxies)


def _localised_personas(raw: Located, proxies: tuple[Proxy, ...]) -> dict[str, str]:
    """Noun phrases in the framings file's language for each proxy; {} for taxonomy personas."""
    if not any(key in raw for key in ("persona", "names", "personas")):
        return {}
    templates = _string_mapping(raw, "persona")
    names = _string_mapping(raw, "names")
    phrases = _string_mapping(raw, "personas")
    out: dict[str, str] = {}
    for proxy in proxies:
        if proxy.kind == "baseline":
            continue
        if proxy.id in phrases:
            out[proxy.id] = phrases[proxy.id]
        elif proxy.axis in templates and proxy.id in names:
            source = templates[proxy.axis]
            template = Template.compile(source, path=raw.path, first_line=raw.line_of("persona"))
            out[proxy.id] = template.render(name=names[proxy.id], id=proxy.id)
        else:
            raise InputError(
                f"no persona for {proxy.axis} value '{proxy.id}' in this language: add it to "
                f"'names' (with a 'persona' template for axis '{proxy.axis}') or to 'personas'",
                path=raw.path,
                line=raw.line,
                key="names",
            )
    return out


def _string_mapping(raw: Located, key: str) -> dict[str, str]:
    if key not in raw:
        return {}
    block = require_mapping(raw[key], key, path=raw.path, line=raw.line_of(key))
    return {str(name): require_str(block, name) for name in block}


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


def read_reference(path: str | Path) -> pd.DataFrame:
    """Read human reference distributions (parquet or CSV) in the tidy format of ``columns.py``.

    Columns ``item_id, proxy, option, share``: ``option`` is the canonical option index and the
    shares of one (item_id, proxy) sum to 1 (checked to within :data:`REFERENCE_TOLERANCE`).
    """
    import pandas as pd

    from culture_probe.columns import REFERENCE_COLUMNS

    path = Path(path)
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as error:  # pyarrow and the csv parser raise several types
        raise InputError(f"not a readable reference table ({error})", path=path) from error
    for column in REFERENCE_COLUMNS:
        if column not in frame.columns:
            raise InputError(
                f"missing column; has: {', '.join(map(str, frame.columns))}",
                path=path,
                key=column,
                hint=expected_one_of(column, map(str, frame.columns)),
            )
    frame = frame.loc[:, list(REFERENCE_COLUMNS)].astype(
        {"item_id": str, "proxy": str, "option": int, "share": float}
    )
    totals = frame.groupby(["item_id", "proxy"])["share"].sum()
    off = totals[(totals - 1).abs() > REFERENCE_TOLERANCE]
    if len(off):
        (item_id, proxy), total = next(iter(off.items()))
        raise InputError(
            f"the shares of item '{item_id}', proxy '{proxy}' sum to {total:.4f}, not 1 "
            f"(tolerance {REFERENCE_TOLERANCE})",
            path=path,
            key="share",
        )
    return frame
