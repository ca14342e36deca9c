"""The annotation fields of a literature review, generated from the taxonomy.

A review annotates each paper along the survey's two taxonomies (Adilazuarda, Mukherjee et al.,
EMNLP 2024, "Towards Measuring and Modeling 'Culture' in LLMs: A Survey"): the proxies of culture
it uses (demographic and semantic), the language-culture interaction it studies (Hershcovich et al.,
ACL 2022), and how it probes the model (probing method, black- or white-box access, single- or
multi-turn). Free lists (languages, cultures, models, datasets) and notes complete a row.

Field kinds:

* ``multi``: several labels may apply. In the workbook, one column per label named
  ``field:label_id`` holding ``x`` (applies) or nothing; a single column named after the field,
  holding labels separated by ``;``, is accepted too.
* ``single``: at most one choice, picked from a dropdown.
* ``list``: free items separated by ``;`` (e.g. ``en; ja; sw``).
* ``text``: free text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from culture_probe.errors import did_you_mean
from culture_probe.taxonomy import Category, Taxonomy

FieldKind = Literal["multi", "single", "list", "text"]

CHECK_MARK = "x"
SURVEY_SOURCE = "adilazuarda2024"
SURVEY_CITATION = (
    'Adilazuarda, Mukherjee et al. (2024). Towards Measuring and Modeling "Culture" in LLMs: '
    "A Survey. EMNLP 2024."
)
METADATA_COLUMNS = ("paper_id", "title", "authors", "year", "venue", "url")
REQUIRED_METADATA = ("paper_id", "title")


@dataclass(frozen=True)
class Choice:
    """One label a field allows: a taxonomy category, or a fixed choice such as ``black-box``."""

    id: str
    label: str
    description: str
    citation: str
    status: str = "studied"
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every spelling that resolves to this choice: id, label and aliases."""
        return (self.id, self.label, *self.aliases)


@dataclass(frozen=True)
class Field:
    """One annotated property of a paper."""

    key: str
    label: str
    kind: FieldKind
    description: str
    choices: tuple[Choice, ...] = ()
    aliases: tuple[str, ...] = ()
    dimension: str | None = None

    def choice(self, choice_id: str) -> Choice | None:
        for choice in self.choices:
            if choice.id == choice_id:
                return choice
        return None

    def checkbox_column(self, choice_id: str) -> str:
        """The workbook column of one label of a multi-label field."""
        return f"{self.key}:{choice_id}"

    def columns(self) -> list[str]:
        """The workbook columns this field occupies in a template."""
        if self.kind == "multi":
            return [self.checkbox_column(choice.id) for choice in self.choices]
        return [self.key]

    def resolve(self, text: str) -> Choice | None:
        """The choice ``text`` names (id, label or alias; case and punctuation ignored)."""
        wanted = normalize_label(text)
        for choice in self.choices:
            if any(normalize_label(name) == wanted for name in choice.names()):
                return choice
        return None


def suggest_choice(text: str, choices: tuple[Choice, ...]) -> str | None:
    """'did you mean X?' with X the id of the choice whose id, label or alias is closest."""
    names = {name: choice.id for choice in choices for name in choice.names()}
    suggestion = did_you_mean(text, list(names))
    if suggestion is None:
        return None
    closest = suggestion.removeprefix("did you mean '").removesuffix("'?")
    return f"did you mean '{names[closest]}'?"


def normalize_label(text: str) -> str:
    """A spelling-insensitive key: ``"Emotions & Values"`` and ``emotions_and_values`` agree."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]+", "", ascii_text.casefold().replace("&", "and"))


def _taxonomy_choice(category: Category, taxonomy: Taxonomy) -> Choice:
    return Choice(
        id=category.id,
        label=category.label,
        description=category.description,
        citation=citation_text(category.citation, taxonomy),
        status=category.status,
        aliases=category.aliases,
    )


def citation_text(source_ids: str, taxonomy: Taxonomy) -> str:
    """The full citations behind ``;``-separated source ids of the taxonomy."""
    by_id = {source.id: source.citation for source in taxonomy.sources}
    return " ; ".join(by_id.get(part.strip(), part.strip()) for part in source_ids.split(";"))


# The taxonomy dimensions a review annotates, with the field each becomes. The "control" dimension
# (placebo and baseline personas) belongs to the probe suite, not to the papers reviewed.
_DIMENSION_FIELDS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (
        "demographic",
        "demographic",
        "Demographic proxies",
        "Groups of people the paper uses to stand for a culture.",
        ("demographic proxies", "demographic proxy"),
    ),
    (
        "semantic",
        "semantic",
        "Semantic proxies",
        "Domains of meaning the paper probes (after Thompson et al., 2020).",
        ("semantic proxies", "semantic proxy"),
    ),
    (
        "interaction",
        "interaction",
        "Language-culture interaction",
        "How language and culture interact in the study (Hershcovich et al., 2022).",
        ("linguistic-culture interaction", "language-culture interaction", "linguistic culture"),
    ),
    (
        "method",
        "method",
        "Probing method",
        "How the model is probed.",
        ("methods", "probing method", "black-box approach", "white-box approach"),
    ),
)


def _fixed(choice_id: str, label: str, description: str, *aliases: str) -> Choice:
    return Choice(choice_id, label, description, SURVEY_CITATION, aliases=aliases)


_ACCESS_CHOICES = (
    _fixed(
        "black-box",
        "Black-box",
        "Only the model's inputs and outputs are used.",
        "black box",
        "blackbox",
        "black-box approach",
    ),
    _fixed(
        "white-box",
        "White-box",
        "Internal states or weights are inspected.",
        "white box",
        "whitebox",
        "white-box approach",
    ),
    _fixed("both", "Both", "Black-box and white-box analyses."),
)
_TURN_CHOICES = (
    _fixed("single-turn", "Single-turn", "Each probe is one prompt and one answer.", "single"),
    _fixed("multi-turn", "Multi-turn", "Probes are dialogues of several turns.", "multi"),
    _fixed("both", "Both", "Single-turn and multi-turn probes."),
)


def build_fields(taxonomy: Taxonomy) -> tuple[Field, ...]:
    """The review's fields: one multi-label field per taxonomy dimension, then the fixed ones.

    Example:
        >>> fields = build_fields(load_taxonomy("taxonomy/taxonomy.yaml"))  # doctest: +SKIP
        >>> [field.key for field in fields][:2]  # doctest: +SKIP
        ['demographic', 'semantic']
    """
    fields = [
        Field(
            key,
            label,
            "multi",
            description,
            tuple(_taxonomy_choice(c, taxonomy) for c in taxonomy.in_dimension(dimension)),
            aliases=aliases,
            dimension=dimension,
        )
        for dimension, key, label, description, aliases in _DIMENSION_FIELDS
        if taxonomy.in_dimension(dimension)
    ]
    fields += [
        Field(
            "access",
            "Black/white box",
            "single",
            "Whether the study looks inside the model.",
            _ACCESS_CHOICES,
            aliases=("black/white box", "box"),
        ),
        Field(
            "turns",
            "Single/multi-turn",
            "single",
            "Whether probes are single prompts or dialogues.",
            _TURN_CHOICES,
            aliases=("single/multi-turn", "turn"),
        ),
        Field(
            "languages",
            "Languages studied",
            "list",
            "Languages of the prompts or data, separated by ';' (ISO 639 codes or names).",
        ),
        Field(
            "cultures",
            "Cultures/regions studied",
            "list",
            "Cultures, countries or regions compared, separated by ';'.",
        ),
        Field("models", "Models studied", "list", "Models probed, separated by ';'."),
        Field("datasets", "Datasets", "list", "Datasets and benchmarks used, separated by ';'."),
        Field("notes", "Notes", "text", "Anything the other fields cannot say."),
        Field("annotator", "Annotator", "text", "Who annotated the row (name or initials)."),
    ]
    return tuple(fields)


def field_by_key(fields: tuple[Field, ...], key: str) -> Field | None:
    for field in fields:
        if field.key == key:
            return field
    return None


def resolve_field(fields: tuple[Field, ...], text: str) -> Field | None:
    """The field ``text`` names: key, label or alias, case and punctuation ignored."""
    wanted = normalize_label(text)
    for field in fields:
        if any(
            normalize_label(name) == wanted for name in (field.key, field.label, *field.aliases)
        ):
            return field
    return None


def owner_of(fields: tuple[Field, ...], text: str) -> tuple[Field, Choice] | None:
    """The multi-label field and label ``text`` names, searching every multi-label field."""
    for field in fields:
        if field.kind != "multi":
            continue
        choice = field.resolve(text)
        if choice is not None:
            return field, choice
    return None
