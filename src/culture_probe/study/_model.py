"""The data model of a loaded study: items, framings, proxies, format factors and the study itself.

Everything here is plain frozen data; :mod:`culture_probe.study._loader` builds it from YAML and checks
it, :mod:`culture_probe.design` expands it into the plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from culture_probe.taxonomy import ProxyValue, Taxonomy
from culture_probe.templates import Template

SCALES = ("ordinal", "nominal")
ORDERS = ("canonical", "reversed", "cyclic", "permutations")
ORDINAL_ORDERS = ("canonical", "reversed")  # a cyclic shift would break the scale's order
MAX_PERMUTED_OPTIONS = 4  # "permutations" lists all K! orders up to this K, cyclic ones above it
LABEL_STYLES = ("letters", "numbers")
ITEM_KINDS = ("choice", "short_answer")
PLACEBO_CATEGORY = "placebo"
LANGUAGE_CATEGORY = "language"
LANGUAGE_PLACEHOLDER = "{lang}"
SHORT_ANSWER_SCALE = "short_answer"  # the plan's ``scale`` for items without options
CROSS_JOIN = "+"  # a crossed proxy's id joins its values' ids: "IN+islam"
AXIS_JOIN = " x "  # and its axis their axes' ids: "region x religion"


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
    """What a prompt puts the model into: a culture, a placebo, or the no-proxy baseline.

    A culture has one component per axis it belongs to: one for a study with a single axis (or
    axes that are not crossed), two or more for a crossed study ("a Muslim family in India" is
    ``(("region", India), ("religion", Islam))``). ``forms`` holds, per axis (and ``placebo``), the
    variables a framing can use: ``{{ region.in_phrase }}``, ``{{ religion.adjective }}``, ...
    """

    axis: str
    value: ProxyValue | None
    kind: str  # "culture" | "placebo" | "baseline"
    persona: str
    components: tuple[tuple[str, ProxyValue], ...] = ()
    forms: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def id(self) -> str:
        if len(self.components) > 1:
            return CROSS_JOIN.join(value.id for _, value in self.components)
        return self.value.id if self.value is not None else "none"

    @property
    def name(self) -> str:
        if len(self.components) > 1:
            # a crossed persona, read as one: "India × Buddhism", never a list "India, Buddhism"
            return " × ".join(value.name for _, value in self.components)
        return self.value.name if self.value is not None else "(no proxy)"

    @property
    def axes(self) -> tuple[str, ...]:
        """The taxonomy axes of a culture (empty for placebos and the baseline)."""
        return tuple(axis for axis, _ in self.components)

    def axis_value(self, axis: str) -> str:
        """This proxy's value id on ``axis``, "" where it has none (placebos, the baseline)."""
        return next((value.id for name, value in self.components if name == axis), "")


@dataclass(frozen=True)
class LanguageSetup:
    """What a study needs to ask in one language: template, framings and localised personas.

    ``forms`` holds localised framing variables per proxy id (axis -> form -> text), where the
    framings file of the language gives them.
    """

    language: str
    template: Template
    framings: tuple[Framing, ...]
    baseline: Framing | None
    personas: dict[str, str] = field(default_factory=dict)  # proxy id -> noun phrase
    forms: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def persona(self, proxy: Proxy) -> str:
        return self.personas.get(proxy.id, proxy.persona)

    def proxy_forms(self, proxy: Proxy) -> dict[str, dict[str, Any]]:
        return self.forms.get(proxy.id, proxy.forms)


@dataclass(frozen=True)
class Instruction:
    """One answer instruction: ``default`` is the template's own, otherwise a text of the study."""

    id: str
    text: Template | None


@dataclass(frozen=True)
class Formats:
    """The format factors of a study: each a tuple of the variants the plan crosses.

    ``enumerators`` are patterns such as ``"A."``, ``"(a)"``, ``"1."``, ``"i."`` or ``"none"``;
    ``separators`` the text between two options; ``instructions`` the answer instructions; ``shots``
    how many demonstrations from other items go before the question.
    """

    enumerators: tuple[str, ...] = ("A.",)
    separators: tuple[str, ...] = ("\n",)
    instructions: tuple[Instruction, ...] = (Instruction("default", None),)
    shots: tuple[int, ...] = (0,)

    def varied(self) -> list[str]:
        """The names of the factors with more than one variant."""
        counts = {
            "enumerator": len(self.enumerators),
            "separator": len(self.separators),
            "instruction": len(self.instructions),
            "shots": len(self.shots),
        }
        return [name for name, count in counts.items() if count > 1]


@dataclass(frozen=True)
class Budget:
    """How many prompts to draw from the full design, and where that number was given."""

    prompts: int
    path: str
    line: int | None
    key: str


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
    axes: tuple[str, ...] = ()  # every proxy axis of the study, in the order written
    crossed: tuple[str, ...] = ()  # the axes crossed with each other (none or two and more)
    order_policy: dict[str, tuple[str, ...]] = field(default_factory=dict)  # scale -> orders
    formats: Formats = field(default_factory=Formats)
    budget: Budget | None = None
    #: how the answer is asked for, one level of :data:`culture_probe.columns.ELICITATION_LEVELS`
    #: each (the study's ``elicitation`` key; ``first_token`` alone when it has none)
    elicitations: tuple[str, ...] = ("first_token",)

    @property
    def content_hash(self) -> str:
        """A hash of every file the study's prompts are built from, taxonomy included.

        The ``reference`` file is left out: it changes what the answers are compared with, not
        the answers, so correcting it must not make the run folder "a different run".
        """
        digest = hashlib.sha256()
        for path in sorted(set(self.files) - {self.reference}):
            digest.update(Path(path).name.encode())
            digest.update(self.files[path].encode())
        return digest.hexdigest()

    def setup(self, language: str) -> LanguageSetup:
        """The template, framings and personas of one prompt language."""
        if language in self.setups:
            return self.setups[language]
        return LanguageSetup(language, self.question_template, self.framings, self.baseline_framing)

    def orders_for(self, item: ProbeItem) -> tuple[str, ...]:
        """The option-order policy for an item's scale (see :func:`culture_probe.design.option_orders`)."""
        return self.order_policy.get(item.scale, self.option_orders)
