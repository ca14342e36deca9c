"""Expand a study into its plan: one row per prompt, the factorial design (or a balanced fraction).

items x languages x proxies x paraphrases x framings x option orders x format variants x seeds, plus
the no-proxy baseline (which has no framing). Proxies are the values of each axis, or, for crossed
axes, every combination not excluded ("IN+islam"). Format variants cross the study's ``formats``:
enumerator, separator, instruction and shots. The design's size is counted from the study's levels
(:func:`design_size`) before anything is expanded, and a design larger than :data:`MAX_PROMPTS` is
refused. With a ``budget``, a balanced fraction of the cells is drawn item by item from the levels
(:func:`culture_probe.budget.draw_unit`), so that only the drawn cells are built. Each row carries
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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.budget import (
    ATTEMPTS,
    UnitGrid,
    all_cells_of,
    draw_unit,
    missing_terms,
    per_proxy_minimum,
    split_evenly,
    unit_minimum,
)
from culture_probe.columns import ELICITATION_LEVELS, FACTOR, FORMAT_FACTORS
from culture_probe.errors import InputError, expected_one_of
from culture_probe.study import (
    ENUMERATOR_PATTERN,
    MAX_PERMUTED_OPTIONS,
    NO_ENUMERATOR,
    SHORT_ANSWER_SCALE,
    Framing,
    Instruction,
    LanguageSetup,
    Paraphrase,
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
#: the answer instruction of the ``written`` level (options shown, a free answer), per prompt
#: language (English where not listed); a study's own instruction replaces it
WRITTEN_INSTRUCTION = {
    "en": "Answer in a sentence or two, and say which option you choose.",
    "ja": "一、二文で答え、どの選択肢を選ぶかを書いてください。",
    "zh": "请用一两句话回答，并说明你选择哪个选项。",
    "es": "Responda en una o dos frases y diga qué opción elige.",
    "ar": "أجب بجملة أو جملتين، وقل أي خيار تختار.",
    "hi": "एक या दो वाक्यों में उत्तर दें, और बताएँ कि आप कौन सा विकल्प चुनते हैं।",
    "id": "Jawab dalam satu atau dua kalimat, dan sebutkan pilihan yang Anda pilih.",
}
#: the answer instruction of the ``open`` level (options hidden), per prompt language
OPEN_INSTRUCTION = {
    "en": "Answer in your own words, in a sentence or two.",
    "ja": "自分の言葉で、一、二文で答えてください。",
    "zh": "请用你自己的话，用一两句话回答。",
    "es": "Responda con sus propias palabras, en una o dos frases.",
    "ar": "أجب بكلماتك الخاصة، في جملة أو جملتين.",
    "hi": "अपने शब्दों में, एक या दो वाक्यों में उत्तर दें।",
    "id": "Jawab dengan kata-kata Anda sendiri, dalam satu atau dua kalimat.",
}
#: the elicitation level whose prompts are those of a study without the ``elicitation`` key
DEFAULT_ELICITATION = ELICITATION_LEVELS[0]
#: the level that hides the options
OPEN_ELICITATION = "open"
#: what the instruction calls a label, per label style (English templates)
LABEL_WORDS = {
    "letters": "letter",
    "numbers": "number",
    "roman": "numeral",
    "words": "first word",
    "positions": "position",
}
FORMAT_COLUMNS = FORMAT_FACTORS
#: the most prompts a plan may have unless ``--max-prompts`` says otherwise: planning takes about
#: 4 kB of memory per prompt at its peak (benchmarks/plan_bounds.py), so about 0.8 GB here
MAX_PROMPTS = 200_000


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
    elicitation: str = DEFAULT_ELICITATION


def build_plan(
    study: Study,
    budget: int | None = None,
    *,
    items: tuple[str, ...] = (),
    proxies: tuple[str, ...] = (),
    max_prompts: int = MAX_PROMPTS,
) -> pd.DataFrame:
    """The study's plan with the columns of :data:`culture_probe.columns.PLAN_COLUMNS`.

    The design's size is counted from the study before anything is expanded: a design larger than
    ``max_prompts`` is refused unless a budget draws from it, and a budget draws cell by cell from
    the factor levels (:func:`culture_probe.budget.draw_unit`), so that only the prompts drawn are
    ever built.

    Args:
        study: a loaded study.
        budget: draw this many prompts (a balanced fraction) instead of the study's ``budget``.
        items: only these item ids (all when empty); chosen before the budget draws.
        proxies: only these proxy ids (``none`` is the baseline); chosen before the budget draws.
        max_prompts: the most prompts a plan may have (``--max-prompts``).

    Raises:
        InputError: an unknown item or proxy, a design larger than ``max_prompts``, or a budget
            too small to estimate every term of the analysis or larger than ``max_prompts``.
    """
    selected = select(study, items, proxies)
    units = design_units(selected)
    size = sum(unit.size for unit in units)
    wanted = budget if budget is not None else (study.budget.prompts if study.budget else None)
    if wanted is not None and wanted < size:
        cells = _drawn_cells(selected, units, wanted, max_prompts)
    else:
        _check_size(selected, units, size, max_prompts)
        cells = [cell for unit in units for cell in unit.cells(unit.every_cell())]
    renderer = _Renderer(study)
    plan = pd.DataFrame([renderer.row(cell) for cell in cells])
    plan.insert(1, "row", range(len(plan)))
    duplicated = plan["prompt_id"].duplicated()
    if duplicated.any():  # two design cells with identical content: make their ids distinct
        plan.loc[duplicated, "prompt_id"] = [
            short_hash(pid, row) for pid, row in plan.loc[duplicated, ["prompt_id", "row"]].values
        ]
    plan.attrs["full_size"] = size
    return plan


def select(study: Study, items: tuple[str, ...] = (), proxies: tuple[str, ...] = ()) -> Study:
    """The study restricted to some items and proxies (all where a tuple is empty).

    Raises:
        InputError: an id the study does not have, naming the option and the close ids.
    """
    chosen_items = _chosen(study, "--items", [item.id for item in study.items], items)
    chosen_proxies = _chosen(study, "--proxies", [proxy.id for proxy in study.proxies], proxies)
    return replace(
        study,
        items=tuple(item for item in study.items if item.id in chosen_items),
        proxies=tuple(proxy for proxy in study.proxies if proxy.id in chosen_proxies),
    )


def _chosen(study: Study, option: str, known: list[str], wanted: tuple[str, ...]) -> set[str]:
    for value in wanted:
        if value not in known:
            raise InputError(
                f"{option} names '{value}', which the study does not have",
                path=study.path,
                key=option,
                hint=expected_one_of(value, known),
            )
    return set(wanted) if wanted else set(known)


# ------------------------------------------------------------------------------------------------
# the design, counted and drawn from its factor levels


#: the context factors of a cell, in the order the plan lists its cells (the registry's factors
#: but language, which each unit holds; tests/test_registry.py keeps the two sets equal)
CONTEXT_FACTORS = ("paraphrase", "order", *FORMAT_COLUMNS, "framing", "seed", "elicitation")


@dataclass(frozen=True)
class DesignUnit:
    """One item in one prompt language: the part of the design a budget draws from.

    Its cells are every proxy x paraphrase x order x format variant x framing x seed (the baseline
    has one framing of its own; a short-answer item asks each proxy that has a question in the
    language, in its own words, with no options to order or format).
    """

    item: ProbeItem
    setup: LanguageSetup
    proxies: tuple[Proxy, ...]
    paraphrases: tuple[Paraphrase, ...]
    orders: tuple[OptionOrder, ...]
    variants: tuple[tuple[Any, ...], ...]  # enumerators, separators, instructions, shots
    seeds: tuple[int, ...]
    elicitations: tuple[str, ...] = (DEFAULT_ELICITATION,)

    def framings(self, proxy: Proxy) -> tuple[Framing, ...]:
        return _framings_for(self.setup, proxy)

    @property
    def factors(self) -> tuple[str, ...]:
        """The context factors the unit's cells are drawn over.

        A single elicitation level stays out, so that a study without the ``elicitation`` key
        draws the very cells (and random numbers) it drew before the factor existed.
        """
        return CONTEXT_FACTORS if len(self.elicitations) > 1 else CONTEXT_FACTORS[:-1]

    def grid(self) -> UnitGrid:
        """The levels of every context factor per proxy, and the proxies' groups and axes."""
        shared = [len(self.paraphrases), len(self.orders), *(len(v) for v in self.variants)]
        elicitations = [len(self.elicitations)] if "elicitation" in self.factors else []
        levels = np.array(
            [
                [*shared, len(self.framings(proxy)), len(self.seeds), *elicitations]
                for proxy in self.proxies
            ],
            dtype=np.int64,
        ).reshape(len(self.proxies), len(self.factors))
        axes = sorted({axis for proxy in self.proxies for axis in proxy.axes})
        return UnitGrid(
            levels=levels,
            factors=self.factors,
            groups=tuple(proxy.axis if proxy.kind == "culture" else None for proxy in self.proxies),
            axes=pd.DataFrame(
                {
                    f"axis_{axis}": [proxy.axis_value(axis) for proxy in self.proxies]
                    for axis in axes
                }
                | {"kind": [proxy.kind for proxy in self.proxies]}
            ),
        )

    @property
    def size(self) -> int:
        """The unit's cells, counted from its levels."""
        per_variant = (
            len(self.paraphrases) * len(self.orders) * len(self.seeds) * len(self.elicitations)
        )
        for values in self.variants:
            per_variant *= len(values)
        return sum(per_variant * len(self.framings(proxy)) for proxy in self.proxies)

    def every_cell(self) -> np.ndarray:
        """The codes of every cell, in the plan's order."""
        grid = self.grid()
        return np.concatenate(
            [np.zeros((0, len(self.factors) + 1), np.int64)]
            + [all_cells_of(proxy, grid.levels[proxy]) for proxy in range(len(self.proxies))]
        )

    def cells(self, codes: np.ndarray) -> Iterator[Cell]:
        """The cells with these codes: the proxy's index, then each context factor's level."""
        language = self.setup.language
        for code in codes.tolist():
            (proxy_at, paraphrase, order, enumerator, separator, instruction, shots, framing,
             seed, *elicitation) = code  # fmt: skip
            proxy = self.proxies[proxy_at]
            chosen = self.paraphrases[paraphrase]
            question = chosen.text
            if self.item.kind == "short_answer":
                question = self.item.questions_by_proxy[proxy.id][language]
            enumerators, separators, instructions, shot_counts = self.variants
            yield Cell(
                self.item,
                proxy,
                chosen.id,
                self.framings(proxy)[framing],
                self.orders[order],
                self.seeds[seed],
                language,
                FormatVariant(
                    enumerators[enumerator],
                    separators[separator],
                    instructions[instruction],
                    shot_counts[shots],
                ),
                question,
                self.elicitations[elicitation[0] if elicitation else 0],
            )


def design_units(study: Study) -> list[DesignUnit]:
    """The study's items in each of its languages, in the plan's order; nothing is expanded."""
    formats = study.formats
    variants = (formats.enumerators, formats.separators, formats.instructions, formats.shots)
    units = []
    for item in study.items:
        for language in study.languages or (study.language,):
            setup = study.setup(language)
            if item.kind == "short_answer":
                asked = tuple(
                    proxy
                    for proxy in study.proxies
                    if language in item.questions_by_proxy.get(proxy.id, {})
                )
                first = tuple((values[0],) for values in variants)
                unit = DesignUnit(
                    item,
                    setup,
                    asked,
                    (Paraphrase("p1", ""),),
                    (OptionOrder("canonical", ()),),
                    first,
                    study.seeds,
                    # written whatever the level: asked once, at the study's first level
                    study.elicitations[:1],
                )
            else:
                text = item.text(language)
                orders = tuple(option_orders(study.orders_for(item), len(text.options)))
                unit = DesignUnit(
                    item,
                    setup,
                    study.proxies,
                    text.paraphrases,
                    orders,
                    variants,
                    study.seeds,
                    study.elicitations,
                )
            units.append(unit)
    return units


def design_size(study: Study) -> int:
    """How many prompts the whole design has, counted from its levels without expanding it."""
    return sum(unit.size for unit in design_units(study))


def smallest_budget(units: list[DesignUnit]) -> int:
    """The fewest prompts a budget may draw: every item and language asks each proxy often enough
    for every term of the analysis to be estimable (:func:`culture_probe.budget.unit_minimum`)."""
    return sum(unit_minimum(unit.grid()) for unit in units)


def _framings_for(setup: LanguageSetup, proxy: Proxy) -> tuple[Framing, ...]:
    if proxy.kind == "baseline":
        assert setup.baseline is not None  # checked when the study was loaded
        return (setup.baseline,)
    return setup.framings


def _check_size(study: Study, units: list[DesignUnit], size: int, max_prompts: int) -> None:
    if size <= max_prompts:
        return
    smallest = smallest_budget(units)
    budget = (
        f"draw a balanced fraction with --budget N (N from {smallest:,} to {max_prompts:,})"
        if smallest <= max_prompts
        else f"even the smallest budget that estimates every factor needs {smallest:,} prompts"
    )
    raise InputError(
        f"the design has {size:,} prompts, more than the limit of {max_prompts:,} (--max-prompts)",
        path=study.path,
        hint=f"{budget}; ask fewer items or proxies (--items, --proxies); or raise --max-prompts",
    )


def _drawn_cells(
    study: Study, units: list[DesignUnit], wanted: int, max_prompts: int
) -> list[Cell]:
    """A budget's cells: shared out evenly over items, then languages, then drawn per unit."""
    where = _budget_source(study, wanted)
    if wanted > max_prompts:
        raise InputError(
            f"a budget of {wanted:,} prompts is more than the limit of {max_prompts:,} "
            "(--max-prompts)",
            **where,
            hint="draw fewer prompts, or raise --max-prompts",
        )
    grids = [unit.grid() for unit in units]
    minimums = [unit_minimum(grid) for grid in grids]
    if wanted < sum(minimums):
        raise InputError(
            f"a budget of {wanted:,} prompts cannot estimate every factor: the design needs at "
            f"least {sum(minimums):,} ({_minimum_reason(units, grids)})",
            **where,
            hint=f"the full design has {sum(unit.size for unit in units):,} prompts",
        )
    seed = study.seeds[0] if study.seeds else 0
    cells: list[Cell] = []
    for position, quota in enumerate(_unit_quotas(units, minimums, wanted)):
        codes = _estimable_draw(units[position], grids[position], quota, [seed, position], where)
        cells.extend(units[position].cells(codes))
    return cells


def _unit_quotas(units: list[DesignUnit], minimums: list[int], wanted: int) -> list[int]:
    """Prompts per unit: even over the items, then even over each item's languages."""
    by_item: dict[str, list[int]] = {}
    for position, unit in enumerate(units):
        by_item.setdefault(unit.item.id, []).append(position)
    groups = list(by_item.values())
    per_item = split_evenly(
        wanted,
        [sum(minimums[k] for k in group) for group in groups],
        [sum(units[k].size for k in group) for group in groups],
    )
    quotas = [0] * len(units)
    for group, total in zip(groups, per_item, strict=True):
        shares = split_evenly(total, [minimums[k] for k in group], [units[k].size for k in group])
        for position, share in zip(group, shares, strict=True):
            quotas[position] = share
    return quotas


def _estimable_draw(
    unit: DesignUnit, grid: UnitGrid, quota: int, seed: list[int], where: dict[str, Any]
) -> np.ndarray:
    """A draw in which every term of the analysis is estimable; the next seed where one is not."""
    if quota == unit.size:
        return unit.every_cell()
    missing: list[str] = []
    for attempt in range(ATTEMPTS):
        codes = draw_unit(grid, quota, [*seed, attempt])
        missing = missing_terms(grid, codes)
        if not missing:
            return codes
    raise InputError(
        f"no balanced draw of {quota:,} prompts for item '{unit.item.id}' "
        f"({unit.setup.language}) estimates {', '.join(missing)}",
        **where,
        hint="draw a larger budget",
    )


def _budget_source(study: Study, wanted: int) -> dict[str, Any]:
    """Where a budget was given: the study's ``budget`` line, or the command line."""
    budget = study.budget
    if budget is not None and budget.prompts == wanted:
        return {"path": budget.path, "line": budget.line, "key": budget.key}
    return {"path": study.path, "key": "--budget"}


def _minimum_reason(units: list[DesignUnit], grids: list[UnitGrid]) -> str:
    """Why the smallest budget is what it is, in one parenthesis."""
    items = len({unit.item.id for unit in units})
    factors = [
        name
        for name in CONTEXT_FACTORS
        if any(
            int(grid.levels[:, grid.factors.index(name)].max(initial=1)) > 1
            for grid in grids
            if name in grid.factors
        )
    ]
    per_proxy = max(per_proxy_minimum(grid) for grid in grids)
    return (
        f"{items} item{'s' if items != 1 else ''}, each proxy asked {per_proxy} times per item "
        f"and language, so that the cultures, {', '.join(factors) or 'no other factor'}, their "
        "culture x and two-way interactions and the residual each keep a degree of freedom"
    )


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
            setup, cell.item, cell.question, options, cell.order, cell.variant, cell.elicitation
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
        elicitation: str = DEFAULT_ELICITATION,
    ) -> tuple[str, list[str]]:
        key = (setup.language, item.id, question, order.id, variant, elicitation)
        if key not in self.blocks:
            self.blocks[key] = _question_block(
                setup, item, question, options, order, variant, elicitation
            )
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
    elicitation: str = DEFAULT_ELICITATION,
) -> tuple[str, list[str]]:
    """The question with its options and instruction, as the template renders it.

    ``first_token`` and ``constrained`` render the same prompt. ``written`` shows the options and
    asks for a free answer; ``open`` hides them (the blank lines the template kept for them
    collapse to one) and asks for an answer in the model's own words. The template sees the level
    as ``elicitation``, and may add an answer prefix for it (docs/studies.md, "Elicitation").
    """
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
        "elicitation": elicitation,
    }
    hidden = elicitation == OPEN_ELICITATION
    lines = [] if hidden else enumerated.lines
    rendered = setup.template.render(
        question=question,
        options=[
            {"label": label, "text": text, "line": line}
            # none under ``open``: ``lines`` is empty there
            for label, text, line in zip(enumerated.labels, shown, lines, strict=False)
        ],
        options_block=variant.separator.join(lines),
        enumerator=variant.enumerator,
        separator=variant.separator,
        instruction=_instruction(variant.instruction, setup.language, context),
        scale=item.scale,
        kind=item.kind,
        language=setup.language,
        item_id=item.id,
        answer_word=ANSWER_WORD.get(setup.language, ANSWER_WORD["en"]),
        **context,
    )
    if hidden:
        rendered = re.sub(r"\n{3,}", "\n\n", rendered)
    return rendered, enumerated.labels


def _instruction(instruction: Instruction, language: str, context: dict[str, Any]) -> str:
    """The answer instruction: the study's own, else the level's (empty: the template's own)."""
    if instruction.text is not None:
        return instruction.text.render(**context)
    asked = {"written": WRITTEN_INSTRUCTION, OPEN_ELICITATION: OPEN_INSTRUCTION}.get(
        str(context["elicitation"])
    )
    return asked.get(language, asked["en"]) if asked else ""


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
    if cell.elicitation != DEFAULT_ELICITATION:
        key = (*key, {"elicitation": cell.elicitation})
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
        "elicitation": cell.elicitation,
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
    if "elicitation" in plan and plan["elicitation"].nunique() > 1:
        parts.append(f"{plan['elicitation'].nunique()} {FACTOR['elicitation'].plural}")
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
    for column in (*FORMAT_COLUMNS, "elicitation"):
        if column not in plan or plan[column].nunique() < 2:
            continue
        for value in plan[column].unique():
            rows = anchor[anchor[column] == value]
            rows = rows if len(rows) else plan[plan[column] == value]
            row = rows.iloc[0]
            out.append((f"{column} {value!r}", row["system"], row["user"]))
    return out
