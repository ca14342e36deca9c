"""Expand a study into its plan: one row per prompt, the factorial design (or a balanced fraction).

items x languages x proxies x paraphrases x framings x option orders x format variants x seeds, plus
the no-proxy baseline (which has no framing). Proxies are the values of each axis, or, for crossed
axes, every combination not excluded ("IN+islam"). Format variants cross the study's ``formats``:
enumerator, separator, instruction and shots. With a ``budget``, a balanced fraction of the cells is
drawn (:func:`culture_probe.budget.balanced_fraction`) before anything is rendered. Each row carries
the rendered messages and a stable content-hash id, so that a run can be resumed and two runs compared
prompt by prompt.

Prompt ids do not depend on whether a study has one language or several, or format factors: the
language enters the id only for prompts not in English, and a format variant only where it is not the
default, so the default prompts keep their ids. When a study has more than one language, the
``wording`` facet is ``paraphrase/framing@language``; format factors have their own columns.

*Labels follow the enumerator.* The plan's ``option_labels`` are what the model answers with: ``A``
for "A.", ``a`` for "(a)", ``1`` for "1.", ``i``, ``ii``... for "i.". With enumerator ``none`` the
options are shown bare and the label is each option's first word, when the first words differ; when
they do not ("Not very important", "Not at all important"), the instruction asks for the option's
position and the labels are ``1``, ``2``, ...

*Few-shot demonstrations* are drawn from the study's other multiple-choice items (never the item
asked), in the same language and format, deterministically from the seed; each shows the first
paraphrase in canonical order with an answer drawn at random among its labels, so that it teaches the
answer format but no opinion. One demonstration is always the first of the three.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from culture_probe.columns import CONTEXT_FACTORS, CULTURE_FACTOR, FACTOR, FORMAT_FACTORS
from culture_probe.errors import InputError
from culture_probe.study import (
    ENUMERATOR_PATTERN,
    MAX_PERMUTED_OPTIONS,
    NO_ENUMERATOR,
    SHORT_ANSWER_SCALE,
    Framing,
    Instruction,
    LanguageSetup,
    ProbeItem,
    Proxy,
    Study,
)

BASE_LANGUAGE = "en"  # prompts in this language keep the ids they had before languages were an axis
DEFAULT_SEPARATOR = "\n"
#: the word before a demonstration's answer, per prompt language (English where not listed)
ANSWER_WORD = {
    "en": "Answer",
    "ja": "答え",
    "zh": "答案",
    "es": "Respuesta",
    "ar": "الإجابة",
    "hi": "उत्तर",
    "id": "Jawaban",
}
#: what the instruction calls a label, per label style (English templates)
LABEL_WORDS = {
    "letters": "letter",
    "numbers": "number",
    "roman": "numeral",
    "words": "first word",
    "positions": "position",
}
FORMAT_COLUMNS = FORMAT_FACTORS


@dataclass(frozen=True)
class OptionOrder:
    """One way of showing the options: ``display_to_canonical[j]`` is the option shown at ``j``."""

    id: str
    display_to_canonical: tuple[int, ...]


def option_orders(order_names: tuple[str, ...], n_options: int) -> list[OptionOrder]:
    """The concrete permutations for some ``option_orders`` names and a number of options.

    ``cyclic`` gives every cyclic shift; ``permutations`` every order when there are at most
    :data:`~culture_probe.study.MAX_PERMUTED_OPTIONS` options, the cyclic shifts otherwise. Which
    names an item gets depends on its scale (:meth:`culture_probe.study.Study.orders_for`).

    Example:
        >>> [o.display_to_canonical for o in option_orders(("canonical", "reversed"), 3)]
        [(0, 1, 2), (2, 1, 0)]
        >>> [o.id for o in option_orders(("permutations",), 3)]
        ['canonical', 'perm021', 'perm102', 'perm120', 'perm201', 'reversed']
    """
    canonical = tuple(range(n_options))
    orders: dict[str, tuple[int, ...]] = {}
    for name in order_names:
        if name == "canonical":
            orders["canonical"] = canonical
        elif name == "reversed":
            orders["reversed"] = canonical[::-1]
        elif name == "cyclic" or (name == "permutations" and n_options > MAX_PERMUTED_OPTIONS):
            orders["canonical"] = canonical
            for shift in range(1, n_options):
                orders[f"cyclic{shift}"] = canonical[shift:] + canonical[:shift]
        elif name == "permutations":
            for permutation in itertools.permutations(canonical):
                orders[_permutation_id(permutation)] = permutation
    return [OptionOrder(order_id, permutation) for order_id, permutation in orders.items()]


def _permutation_id(permutation: tuple[int, ...]) -> str:
    if permutation == tuple(sorted(permutation)):
        return "canonical"
    if permutation == tuple(sorted(permutation, reverse=True)):
        return "reversed"
    return "perm" + "".join(map(str, permutation))


def option_labels(style: str, n_options: int) -> list[str]:
    """Labels shown before the options: A, B, C... or 1, 2, 3..."""
    if style == "numbers":
        return [str(number + 1) for number in range(n_options)]
    return list(string.ascii_uppercase[:n_options])


def roman(number: int) -> str:
    """Lower-case roman numeral: ``roman(4) == 'iv'``."""
    out = ""
    for value, numeral in ((10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while number >= value:
            out += numeral
            number -= value
    return out


@dataclass(frozen=True)
class Enumerated:
    """Options as shown under one enumerator: the labels answered with and the shown lines."""

    labels: list[str]  # display order
    lines: list[str]  # display order
    style: str  # letters, numbers, roman, words or positions


def enumerate_options(enumerator: str, shown: list[str]) -> Enumerated:
    """Label options (already in display order) as ``enumerator`` says.

    Example:
        >>> enumerate_options("(a)", ["Tea", "Coffee"]).lines
        ['(a) Tea', '(b) Coffee']
        >>> enumerate_options("i.", ["x", "y", "z", "w"]).labels
        ['i', 'ii', 'iii', 'iv']
        >>> enumerate_options("none", ["Tea", "Coffee"]).labels
        ['Tea', 'Coffee']
        >>> enumerate_options("none", ["Not at all", "Not much"]).labels
        ['1', '2']
    """
    count = len(shown)
    if enumerator == NO_ENUMERATOR:
        words = [_first_word(text) for text in shown]
        if all(words) and len({word.casefold() for word in words}) == count:
            return Enumerated(words, list(shown), "words")
        return Enumerated([str(n + 1) for n in range(count)], list(shown), "positions")
    match = ENUMERATOR_PATTERN.match(enumerator)
    assert match is not None  # checked when the study was loaded
    before, marker, after = match.groups()
    labels, style = {
        "A": (list(string.ascii_uppercase[:count]), "letters"),
        "a": (list(string.ascii_lowercase[:count]), "letters"),
        "1": ([str(n + 1) for n in range(count)], "numbers"),
        "i": ([roman(n + 1) for n in range(count)], "roman"),
        "I": ([roman(n + 1).upper() for n in range(count)], "roman"),
    }[marker]
    lines = [f"{before}{label}{after} {text}" for label, text in zip(labels, shown, strict=True)]
    return Enumerated(labels, lines, style)


def _first_word(text: str) -> str:
    match = re.match(r"\W*(\w+)", text)
    return match.group(1) if match else ""


@dataclass(frozen=True)
class FormatVariant:
    """One combination of the format factors."""

    enumerator: str
    separator: str
    instruction: Instruction
    shots: int

    def columns(self) -> dict[str, str]:
        return {
            "enumerator": self.enumerator,
            "separator": self.separator,
            "instruction": self.instruction.id,
            "shots": str(self.shots),
        }


def format_variants(study: Study) -> list[FormatVariant]:
    """Every combination of the study's format factors, the default first."""
    formats = study.formats
    return [
        FormatVariant(enumerator, separator, instruction, shots)
        for enumerator, separator, instruction, shots in itertools.product(
            formats.enumerators, formats.separators, formats.instructions, formats.shots
        )
    ]


def short_hash(*parts: Any) -> str:
    """A 16-hex-digit SHA-256 of the JSON of ``parts``: stable across runs and machines."""
    payload = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One cell of the design, before rendering."""

    item: ProbeItem
    proxy: Proxy
    paraphrase: str
    framing: Framing
    order: OptionOrder
    seed: int
    language: str
    variant: FormatVariant
    question: str  # the paraphrase's text (or a short-answer item's question)


def build_plan(study: Study, budget: int | None = None) -> pd.DataFrame:
    """The study's plan with the columns of :data:`culture_probe.columns.PLAN_COLUMNS`.

    Args:
        study: a loaded study.
        budget: draw this many prompts (a balanced fraction) instead of the study's ``budget``.
    """
    cells = list(_cells(study))
    full_size = len(cells)
    cells = _within_budget(study, cells, budget)
    renderer = _Renderer(study)
    plan = pd.DataFrame([renderer.row(cell) for cell in cells])
    plan.insert(1, "row", range(len(plan)))
    duplicated = plan["prompt_id"].duplicated()
    if duplicated.any():  # two design cells with identical content: make their ids distinct
        plan.loc[duplicated, "prompt_id"] = [
            short_hash(pid, row) for pid, row in plan.loc[duplicated, ["prompt_id", "row"]].values
        ]
    plan.attrs["full_size"] = full_size
    return plan


def _cells(study: Study) -> Iterator[Cell]:
    variants = format_variants(study)
    for item in study.items:
        for language in study.languages or (study.language,):
            setup = study.setup(language)
            if item.kind == "short_answer":
                yield from _short_answer_cells(study, setup, item, variants[0])
            else:
                yield from _choice_cells(study, setup, item, variants)


def _choice_cells(
    study: Study, setup: LanguageSetup, item: ProbeItem, variants: list[FormatVariant]
) -> Iterator[Cell]:
    text = item.text(setup.language)
    orders = option_orders(study.orders_for(item), len(text.options))
    for proxy in study.proxies:
        for paraphrase in text.paraphrases:
            for order in orders:
                for variant in variants:
                    for framing in _framings_for(setup, proxy):
                        for seed in study.seeds:
                            yield Cell(
                                item,
                                proxy,
                                paraphrase.id,
                                framing,
                                order,
                                seed,
                                setup.language,
                                variant,
                                paraphrase.text,
                            )


def _short_answer_cells(
    study: Study, setup: LanguageSetup, item: ProbeItem, variant: FormatVariant
) -> Iterator[Cell]:
    """Short-answer items: one question per proxy in its own words, no options to order."""
    order = OptionOrder("canonical", ())
    for proxy in study.proxies:
        question = item.questions_by_proxy.get(proxy.id, {}).get(setup.language)
        if question is None:
            continue
        for framing in _framings_for(setup, proxy):
            for seed in study.seeds:
                yield Cell(
                    item, proxy, "p1", framing, order, seed, setup.language, variant, question
                )


def _framings_for(setup: LanguageSetup, proxy: Proxy) -> tuple[Framing, ...]:
    if proxy.kind == "baseline":
        assert setup.baseline is not None  # checked when the study was loaded
        return (setup.baseline,)
    return setup.framings


# ------------------------------------------------------------------------------------------------
# budget


def design_factors(frame: pd.DataFrame) -> list[str]:
    """The columns that vary in a plan (or cell table): what a balanced fraction balances."""
    candidates = [CULTURE_FACTOR, *CONTEXT_FACTORS]
    return [column for column in candidates if column in frame and frame[column].nunique() > 1]


def cells_needed(frame: pd.DataFrame) -> int:
    """Cells needed to estimate every factor's main effect within every item: the items times
    (1 + the sum over varying factors of their levels - 1)."""
    per_item = 1 + sum(int(frame[factor].nunique()) - 1 for factor in design_factors(frame))
    return int(frame["item_id"].nunique()) * per_item


def _within_budget(study: Study, cells: list[Cell], override: int | None) -> list[Cell]:
    budget = study.budget
    wanted = override if override is not None else (budget.prompts if budget else None)
    if wanted is None or wanted >= len(cells):
        return cells
    frame = pd.DataFrame(
        {
            "item_id": [cell.item.id for cell in cells],
            "proxy": [cell.proxy.id for cell in cells],
            "paraphrase": [cell.paraphrase for cell in cells],
            "framing": [cell.framing.id for cell in cells],
            "order": [cell.order.id for cell in cells],
            "language": [cell.language for cell in cells],
            "seed": [cell.seed for cell in cells],
            **{
                column: [cell.variant.columns()[column] for cell in cells]
                for column in FORMAT_COLUMNS
            },
        }
    )
    needed = cells_needed(frame)
    if wanted < needed:
        factors = design_factors(frame)
        raise InputError(
            f"a budget of {wanted:,} prompts cannot estimate every factor: the design needs at "
            f"least {needed:,} ({frame['item_id'].nunique()} items x (1 + the levels - 1 of "
            f"{', '.join(factors)}))",
            path=budget.path if budget and override is None else study.path,
            line=budget.line if budget and override is None else None,
            key=budget.key if budget and override is None else "--budget",
            hint=f"the full design has {len(cells):,} prompts",
        )
    from culture_probe.budget import balanced_fraction

    frame["_cell"] = range(len(frame))
    seed = study.seeds[0] if study.seeds else 0
    picked = balanced_fraction(frame, ["item_id", *design_factors(frame)], wanted, seed)
    return [cells[index] for index in sorted(picked["_cell"])]


# ------------------------------------------------------------------------------------------------
# rendering


class _Renderer:
    """Renders cells into plan rows, caching question blocks and demonstrations."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.default = format_variants(study)[0]
        self.choice_items = [item for item in study.items if item.kind == "choice"]
        self.blocks: dict[tuple[Any, ...], tuple[str, list[str]]] = {}

    def row(self, cell: Cell) -> dict[str, Any]:
        setup = self.study.setup(cell.language)
        options = cell.item.text(cell.language).options if cell.item.kind == "choice" else ()
        question, labels = self._question(setup, cell, options)
        system, user = _frame(cell.framing, question, cell.proxy, setup)
        return _row(self.study, cell, options, labels, system, user, cell.variant != self.default)

    def _question(
        self, setup: LanguageSetup, cell: Cell, options: tuple[str, ...]
    ) -> tuple[str, list[str]]:
        block, labels = self._block(
            setup, cell.item, cell.question, options, cell.order, cell.variant
        )
        if cell.variant.shots == 0:
            return block, labels
        demos = [
            self._demonstration(setup, other, cell.variant, cell.seed, cell.item)
            for other in self._demonstration_items(cell.item, cell.variant.shots, cell.seed)
        ]
        return "\n\n".join([*demos, block]), labels

    def _block(
        self,
        setup: LanguageSetup,
        item: ProbeItem,
        question: str,
        options: tuple[str, ...],
        order: OptionOrder,
        variant: FormatVariant,
    ) -> tuple[str, list[str]]:
        key = (setup.language, item.id, question, order.id, variant)
        if key not in self.blocks:
            self.blocks[key] = _question_block(setup, item, question, options, order, variant)
        return self.blocks[key]

    def _demonstration_items(self, item: ProbeItem, shots: int, seed: int) -> list[ProbeItem]:
        others = [other for other in self.choice_items if other.id != item.id]
        others.sort(key=lambda other: short_hash("shot", seed, item.id, other.id))
        return others[:shots]

    def _demonstration(
        self,
        setup: LanguageSetup,
        item: ProbeItem,
        variant: FormatVariant,
        seed: int,
        asked: ProbeItem,
    ) -> str:
        text = item.text(setup.language)
        canonical = OptionOrder("canonical", tuple(range(len(text.options))))
        plain = FormatVariant(variant.enumerator, variant.separator, variant.instruction, 0)
        block, labels = self._block(
            setup, item, text.paraphrases[0].text, text.options, canonical, plain
        )
        answer = labels[int(short_hash("answer", seed, asked.id, item.id), 16) % len(labels)]
        return f"{block}\n{ANSWER_WORD.get(setup.language, ANSWER_WORD['en'])}: {answer}"


def _question_block(
    setup: LanguageSetup,
    item: ProbeItem,
    question: str,
    options: tuple[str, ...],
    order: OptionOrder,
    variant: FormatVariant,
) -> tuple[str, list[str]]:
    shown = [options[canonical] for canonical in order.display_to_canonical]
    enumerated = (
        enumerate_options(variant.enumerator, shown) if shown else Enumerated([], [], "letters")
    )
    context: dict[str, Any] = {
        "label_style": enumerated.style,
        "label_word": LABEL_WORDS[enumerated.style],
        "labels": enumerated.labels,
        "first_label": enumerated.labels[0] if shown else "",
        "last_label": enumerated.labels[-1] if shown else "",
    }
    instruction = variant.instruction.text.render(**context) if variant.instruction.text else ""
    rendered = setup.template.render(
        question=question,
        options=[
            {"label": label, "text": text, "line": line}
            for label, text, line in zip(enumerated.labels, shown, enumerated.lines, strict=True)
        ],
        options_block=variant.separator.join(enumerated.lines),
        enumerator=variant.enumerator,
        separator=variant.separator,
        instruction=instruction,
        scale=item.scale,
        kind=item.kind,
        language=setup.language,
        item_id=item.id,
        **context,
    )
    return rendered, enumerated.labels


def _frame(framing: Framing, question: str, proxy: Proxy, setup: LanguageSetup) -> tuple[str, str]:
    proxy_fields: dict[str, Any] = {"id": proxy.id, "name": proxy.name, "axis": proxy.axis}
    if proxy.value is not None:
        proxy_fields.update(proxy.value.attributes)
    context = {
        **setup.proxy_forms(proxy),
        "question": question,
        "persona": setup.persona(proxy),
        "proxy": proxy_fields,
    }
    system = framing.system.render(**context) if framing.system is not None else ""
    return system, framing.user.render(**context)


def _row(
    study: Study,
    cell: Cell,
    options: tuple[str, ...],
    labels: list[str],
    system: str,
    user: str,
    varied_format: bool,
) -> dict[str, Any]:
    item, proxy, language = cell.item, cell.proxy, cell.language
    key: tuple[Any, ...] = (
        study.id,
        item.id,
        proxy.axis,
        proxy.id,
        cell.paraphrase,
        cell.framing.id,
        cell.order.id,
        cell.seed,
    )
    if language != BASE_LANGUAGE:
        key = (*key, language)
    if varied_format:
        key = (*key, cell.variant.columns())
    wording = f"{cell.paraphrase}/{cell.framing.id}"
    if len(study.languages) > 1:
        wording = f"{wording}@{language}"
    return {
        "prompt_id": short_hash(*key, system, user),
        "study": study.id,
        "item_id": item.id,
        "wvs_id": item.wvs_id or "",
        "topic": item.topic or "",
        "scale": item.scale if item.kind != "short_answer" else SHORT_ANSWER_SCALE,
        "n_options": len(options),
        "axis": proxy.axis,
        "proxy": proxy.id,
        "proxy_name": proxy.name,
        "proxy_kind": proxy.kind,
        **{f"axis_{axis}": proxy.axis_value(axis) for axis in study.axes},
        "paraphrase": cell.paraphrase,
        "framing": cell.framing.id,
        "wording": wording,
        "order": cell.order.id,
        **cell.variant.columns(),
        "display_to_canonical": list(cell.order.display_to_canonical),
        "option_labels": labels,
        "options": list(options),
        "seed": cell.seed,
        "language": language,
        "system": system,
        "user": user,
        "text_hash": short_hash(system, user),
    }


# ------------------------------------------------------------------------------------------------
# what the CLI shows


def describe_design(plan: pd.DataFrame) -> str:
    """One line that multiplies out the design, e.g. '14 items x 12 proxies x ... = 4,144 prompts'."""
    proxies = plan.drop_duplicates("proxy")
    kinds = proxies["proxy_kind"].value_counts()
    cultures, placebos = int(kinds.get("culture", 0)), int(kinds.get("placebo", 0))
    framed = plan[plan["proxy_kind"] != "baseline"]
    per_item = plan.groupby("item_id")
    paraphrases = sorted(set(per_item["paraphrase"].nunique()))
    orders = sorted(set(per_item["order"].nunique()))
    persona_part = _personas_part(proxies[proxies["proxy_kind"] == "culture"], cultures)
    parts = [
        _count(plan["item_id"].nunique(), "item"),
        f"({persona_part} + {_count(placebos, 'placebo')})" if placebos else persona_part,
        f"{'/'.join(map(str, paraphrases))} paraphrases",
        f"{framed['framing'].nunique()} framing{'s' if framed['framing'].nunique() != 1 else ''}",
        f"{'/'.join(map(str, orders))} option orders",
    ]
    for column in FORMAT_COLUMNS:
        if column in plan and plan[column].nunique() > 1:
            parts.append(f"{plan[column].nunique()} {FACTOR[column].plural}")
    if plan["language"].nunique() > 1:
        parts.append(f"{plan['language'].nunique()} languages")
    if plan["seed"].nunique() > 1:
        parts.append(f"{plan['seed'].nunique()} seeds")
    line = " x ".join(parts)
    if cultures + placebos == 0:
        line = f"{_count(plan['item_id'].nunique(), 'item')} x no-proxy baseline only"
    elif "baseline" in set(plan["proxy_kind"]):
        line += " + no-proxy baseline"
    full = plan.attrs.get("full_size")
    if full and full > len(plan):
        return f"{line} = {full:,} cells; budget: a balanced {len(plan):,} prompts ({len(plan) / full:.1%})"
    return f"{line} = {len(plan):,} prompts"


def _count(number: int, noun: str) -> str:
    """'1 item', '3 items'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _personas_part(cultures: pd.DataFrame, count: int) -> str:
    """'10 cultures', '(3 region x 5 religion - 2 excluded = 13 personas)', '6 region + 6 religion'."""
    crossed = cultures[cultures["axis"].str.contains(" x ", regex=False)]
    pieces: list[str] = []
    if len(crossed):
        axes = str(crossed["axis"].iat[0]).split(" x ")
        levels = [
            crossed[f"axis_{axis}"].nunique() if f"axis_{axis}" in crossed else 0 for axis in axes
        ]
        product = 1
        for level in levels:
            product *= level
        grid = " x ".join(f"{level} {axis}" for level, axis in zip(levels, axes, strict=True))
        excluded = product - len(crossed)
        pieces.append(
            f"[{grid}{f' - {excluded} excluded' if excluded else ''} = {len(crossed)} personas]"
        )
    single = cultures[~cultures["axis"].str.contains(" x ", regex=False)]
    by_axis = single["axis"].value_counts(sort=False)
    if len(by_axis) > 1:
        pieces.append(
            " + ".join(f"{n} {axis}" for axis, n in by_axis.items()) + " (added, not crossed)"
        )
    elif len(by_axis) == 1:
        pieces.append(f"{len(single)} cultures")
    return " + ".join(pieces) if pieces else f"{count} cultures"


def example_prompts(plan: pd.DataFrame) -> list[tuple[str, str, str]]:
    """One rendered prompt per kind of cell, as ``(kind, system, user)``.

    Kinds: a culture (crossed persona where the study crosses axes), a placebo, the baseline, and
    one per variant of each format factor the study varies (the rest of the prompt as in the first).
    """
    if plan.empty:
        return []
    out: list[tuple[str, str, str]] = []
    first = plan.iloc[0]
    for kind in ("culture", "placebo", "baseline"):
        rows = plan[plan["proxy_kind"] == kind]
        if len(rows):
            row = rows.iloc[0]
            label = {"culture": "persona", "placebo": "placebo", "baseline": "baseline"}[kind]
            out.append(
                (
                    f"{label} {row['proxy']}" if kind != "baseline" else label,
                    row["system"],
                    row["user"],
                )
            )
    anchor = plan[(plan["item_id"] == first["item_id"]) & (plan["proxy"] == first["proxy"])]
    for column in FORMAT_COLUMNS:
        if column not in plan or plan[column].nunique() < 2:
            continue
        for value in plan[column].unique():
            rows = anchor[anchor[column] == value]
            rows = rows if len(rows) else plan[plan[column] == value]
            row = rows.iloc[0]
            out.append((f"{column} {value!r}", row["system"], row["user"]))
    return out
