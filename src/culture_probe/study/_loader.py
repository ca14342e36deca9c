"""Load a study file: check every key against :data:`STUDY`, then load what it points to.

Everything is validated here, so that a bad file stops the run before anything is written; each error
names the file, the line and the key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from culture_probe.bounds import (
    MAX_DATA_FILE_BYTES,
    SEED_RANGE,
    read_input_file,
    read_input_text,
    require_regular_file,
)
from culture_probe.errors import InputError
from culture_probe.identifiers import check_id
from culture_probe.schema import (
    Field,
    Schema,
    expected_choice,
    require_mapping,
    require_str,
    string_list,
)
from culture_probe.study._formats import (
    load_budget,
    load_elicitations,
    load_formats,
    load_order_policy,
)
from culture_probe.study._framings import load_language_framings
from culture_probe.study._items import load_items
from culture_probe.study._model import (
    LABEL_STYLES,
    LANGUAGE_CATEGORY,
    LANGUAGE_PLACEHOLDER,
    Framing,
    LanguageSetup,
    ProbeItem,
    Proxy,
    Study,
)
from culture_probe.study._proxies import load_proxies
from culture_probe.study._reference import read_reference
from culture_probe.taxonomy import Taxonomy, extend_taxonomy, find_taxonomy, load_taxonomy
from culture_probe.templates import Template
from culture_probe.yamlio import Located, load_yaml

#: every key a study file accepts (docs/studies.md describes each)
STUDY = Schema(
    "a study",
    {
        "study": Field(required=True),
        "items": Field(required=True),
        "template": Field(required=True),
        "framings": Field(required=True),
        "axes": Field("mapping", required=True),
        "title": Field(),
        "description": Field(),
        "semantic_proxy": Field(default="emotions_and_values"),
        "cross": Field("any"),
        "exclude": Field("any"),
        "persona": Field("mapping"),
        "controls": Field("mapping"),
        "option_orders": Field("any"),
        "option_labels": Field(default="letters", choices=LABEL_STYLES),
        "formats": Field("mapping"),
        "budget": Field("any"),
        "elicitation": Field("any"),
        "seeds": Field("list"),
        "language": Field(),
        "languages": Field("str_list"),
        "reference": Field(),
        "answers": Field(),
        "use_framings": Field("str_list"),
        "taxonomy": Field(),
        "taxonomy_extra": Field(),
        "interaction": Field(),
        "method": Field(),
    },
)


def load_study(
    path: str | Path, taxonomy_path: str | Path | None = None, *, budget: int | None = None
) -> Study:
    """Load a study, its items, templates, framings and the taxonomy its proxies come from.

    Args:
        path: the study file.
        taxonomy_path: a taxonomy to use instead of the study's own (``taxonomy`` key or the
            nearest ``taxonomy.yaml``).
        budget: draw this many prompts (a balanced fraction) instead of the study's ``budget``.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("expected a study file (YAML), found a folder", path=path)
    raw = require_mapping(load_yaml(path), "a study", path=str(path))
    spec = STUDY.read(raw)
    # the id names the run's folder, reports/<study>/: it must stay one plain folder name
    check_id(str(spec["study"]), what="study id", path=str(path), line=raw.line_of("study"),
             key="study")  # fmt: skip
    files = {str(path): _sha256(path)}
    taxonomy = _taxonomy(raw, path, taxonomy_path, files)
    languages = _languages(raw, taxonomy)
    items_path = _relative_file(raw, "items", path)
    files[str(items_path)] = _sha256(items_path)
    semantic = spec["semantic_proxy"]
    taxonomy.require_category(
        semantic, "semantic", path=str(path), line=raw.line_of("semantic_proxy")
    )
    proxies, axes, crossed = load_proxies(raw, taxonomy)
    setups = {language: _load_setup(raw, path, language, proxies, files) for language in languages}
    _check_crossed_languages(raw, path, languages, crossed, setups)
    items = load_items(items_path)
    _check_item_languages(items, languages, items_path)
    reference = _optional_file(raw, "reference", path, files)
    if reference is not None:
        read_reference(reference, items)  # checked now: a bad cell must not wait for scoring
    answers = _optional_file(raw, "answers", path, files)
    option_orders, order_policy = load_order_policy(raw)
    first = setups[languages[0]]
    study = Study(
        id=spec["study"],
        title=spec["title"] or spec["study"],
        description=spec["description"] or "",
        path=str(path),
        taxonomy=taxonomy,
        semantic_proxy=semantic,
        items=items,
        question_template=first.template,
        framings=first.framings,
        baseline_framing=first.baseline,
        proxies=proxies,
        option_orders=option_orders,
        option_labels=spec["option_labels"],
        seeds=_seeds(raw),
        language=languages[0],
        files=files,
        languages=languages,
        setups=setups,
        reference=reference,
        answers=answers,
        axes=axes,
        crossed=crossed,
        order_policy=order_policy,
        formats=load_formats(raw, items, spec["option_labels"]),
        budget=load_budget(raw, budget, str(path)),
        elicitations=load_elicitations(raw),
    )
    _check_baseline(raw, path, study)
    return study


def _taxonomy(
    raw: Located, path: Path, override: str | Path | None, files: dict[str, str]
) -> Taxonomy:
    if override is not None:
        taxonomy_file = Path(override)
    elif "taxonomy" in raw:
        taxonomy_file = _relative_file(raw, "taxonomy", path)
    else:
        taxonomy_file = find_taxonomy(path.resolve().parent)
    files[str(taxonomy_file)] = _sha256(taxonomy_file)
    taxonomy = load_taxonomy(taxonomy_file)
    if "taxonomy_extra" in raw:
        extra = _relative_file(raw, "taxonomy_extra", path)
        files[str(extra)] = _sha256(extra)
        taxonomy = extend_taxonomy(taxonomy, extra)
    return taxonomy


def _check_baseline(raw: Located, path: Path, study: Study) -> None:
    if not any(proxy.kind == "baseline" for proxy in study.proxies):
        return
    for language, setup in study.setups.items():
        if setup.baseline is None:
            raise InputError(
                "the study asks for a no-proxy baseline but the framings file has no "
                "'baseline' entry",
                path=str(_language_file(raw, "framings", path, language)),
                key="baseline",
            )


def _check_crossed_languages(
    raw: Located,
    path: Path,
    languages: tuple[str, ...],
    crossed: tuple[str, ...],
    setups: dict[str, LanguageSetup],
) -> None:
    """A crossed persona is written per language: the study's ``persona`` is in the first one."""
    if not crossed:
        return
    for language in languages[1:]:
        if not setups[language].personas:
            raise InputError(
                f"the study crosses {' x '.join(crossed)} and asks in '{language}', whose "
                "framings file does not say how a crossed persona reads in that language",
                path=str(_language_file(raw, "framings", path, language)),
                key="compose",
                hint="add 'compose: {culture: ..., placebo: ...}' and local 'forms' to it",
            )


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
        return f"did you mean '{by_name[code.lower()]}'? {expected_choice(code, known)}"
    country = region.value(code.upper()) if region else None
    spoken = country.attributes.get("languages") if country else None
    if country is not None and spoken:
        return (
            f"did you mean '{spoken[0]}'? '{code}' looks like the country code of "
            f"{country.name}, whose main language is '{spoken[0]}'"
        )
    return expected_choice(code, known)


def _language_file(raw: Located, key: str, study_path: Path, language: str) -> Path:
    """The study's ``key`` file for one language: ``{lang}`` in the path becomes the code."""
    name = require_str(raw, key)
    target = (study_path.parent / name.replace(LANGUAGE_PLACEHOLDER, language)).resolve()
    if not target.exists():
        where = f" for language '{language}'" if LANGUAGE_PLACEHOLDER in name else ""
        raise InputError(
            f"file not found{where}: {target}", path=raw.path, line=raw.line_of(key), key=key
        )
    _require_regular(raw, key, target)
    return _display_path(target)


def _load_setup(
    raw: Located, path: Path, language: str, proxies: tuple[Proxy, ...], files: dict[str, str]
) -> LanguageSetup:
    template_path = _language_file(raw, "template", path, language)
    framings_path = _language_file(raw, "framings", path, language)
    for extra in (template_path, framings_path):
        files[str(extra)] = _sha256(extra)
    framings, baseline, personas, forms = load_language_framings(framings_path, proxies)
    framings = _used_framings(raw, framings, framings_path)
    return LanguageSetup(
        language, _load_template(template_path), framings, baseline, personas, forms
    )


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
                hint=expected_choice(framing_id, known),
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


def _load_template(path: Path) -> Template:
    return Template.compile(read_input_text(path, what="a template"), path=str(path))


def _seeds(raw: Located) -> tuple[int, ...]:
    """The study's sampling seeds: distinct whole numbers that fit the plan's 64-bit column."""
    if "seeds" not in raw:
        return (0,)
    values = raw["seeds"]
    seeds: list[int] = []
    for index, value in enumerate(values):
        problem = _seed_problem(index, value, seeds)
        if problem:
            raise InputError(problem, path=raw.path, line=values.line_of(index), key="seeds")
        seeds.append(value)
    return tuple(seeds)


def _seed_problem(index: int, value: object, earlier: list[int]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"seed {index + 1} must be an integer"
    if not SEED_RANGE.contains(value):
        return f"seed {index + 1} is {value}; a seed must be {SEED_RANGE.describe()}"
    if value in earlier:
        return (
            f"seed {index + 1} repeats seed {earlier.index(value) + 1} ({value}): every prompt "
            "would be asked twice with the same seed"
        )
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(read_input_file(path, MAX_DATA_FILE_BYTES)).hexdigest()


def _optional_file(raw: Located, key: str, study_path: Path, files: dict[str, str]) -> str | None:
    if key not in raw:
        return None
    target = _relative_file(raw, key, study_path)
    files[str(target)] = _sha256(target)
    return str(target)


def _relative_file(raw: Located, key: str, study_path: Path) -> Path:
    target = (study_path.parent / require_str(raw, key)).resolve()
    if not target.exists():
        raise InputError(f"file not found: {target}", path=raw.path, line=raw.line_of(key), key=key)
    _require_regular(raw, key, target)
    return _display_path(target)


def _require_regular(raw: Located, key: str, target: Path) -> None:
    """A file the study names must be a regular file: a FIFO or a device would be read forever."""
    try:
        require_regular_file(target)
    except InputError as error:
        raise InputError(
            f"{target}: {error.message}", path=raw.path, line=raw.line_of(key), key=key
        ) from None


def _display_path(target: Path) -> Path:
    """A path relative to the working directory when it lies below it, for shorter messages."""
    try:
        return target.relative_to(Path.cwd())
    except ValueError:
        return target
