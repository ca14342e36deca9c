"""Expand a study into its plan: one row per prompt, the full factorial design.

items x languages x proxies x paraphrases x framings x option orders x seeds, plus the no-proxy baseline
(which has no framing). Each row carries the rendered messages and a stable content-hash id, so that a run
can be resumed and two runs compared prompt by prompt.

Prompt ids do not depend on whether a study has one language or several: the language enters the id only
for prompts not in English, and a prompt's text differs between languages anyway. When a study has more
than one language, the ``wording`` facet is ``paraphrase/framing@language``, so that the culture-vs-wording
decomposition counts the prompt language as part of the wording; the language effect itself is reported
by a proxy x language decomposition.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from culture_probe.study import (
    SHORT_ANSWER_SCALE,
    Framing,
    LanguageSetup,
    ProbeItem,
    Proxy,
    Study,
)

BASE_LANGUAGE = "en"  # prompts in this language keep the ids they had before languages were an axis


@dataclass(frozen=True)
class OptionOrder:
    """One way of showing the options: ``display_to_canonical[j]`` is the option shown at ``j``."""

    id: str
    display_to_canonical: tuple[int, ...]


def option_orders(order_names: tuple[str, ...], n_options: int) -> list[OptionOrder]:
    """The concrete permutations for a study's ``option_orders`` and an item's number of options.

    Example:
        >>> [o.display_to_canonical for o in option_orders(("canonical", "reversed"), 3)]
        [(0, 1, 2), (2, 1, 0)]
    """
    canonical = tuple(range(n_options))
    orders: dict[str, tuple[int, ...]] = {}
    for name in order_names:
        if name == "canonical":
            orders["canonical"] = canonical
        elif name == "reversed":
            orders["reversed"] = canonical[::-1]
        elif name == "cyclic":
            orders["canonical"] = canonical
            for shift in range(1, n_options):
                orders[f"cyclic{shift}"] = canonical[shift:] + canonical[:shift]
    return [OptionOrder(order_id, permutation) for order_id, permutation in orders.items()]


def option_labels(style: str, n_options: int) -> list[str]:
    """Labels shown before the options: A, B, C... or 1, 2, 3..."""
    if style == "numbers":
        return [str(number + 1) for number in range(n_options)]
    return list(string.ascii_uppercase[:n_options])


def short_hash(*parts: Any) -> str:
    """A 16-hex-digit SHA-256 of the JSON of ``parts``: stable across runs and machines."""
    payload = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def build_plan(study: Study) -> pd.DataFrame:
    """The study's plan as a DataFrame with the columns of :data:`culture_probe.columns.PLAN_COLUMNS`."""
    rows = list(_plan_rows(study))
    plan = pd.DataFrame(rows)
    plan.insert(1, "row", range(len(plan)))
    duplicated = plan["prompt_id"].duplicated()
    if duplicated.any():  # two design cells with identical content: make their ids distinct
        plan.loc[duplicated, "prompt_id"] = [
            short_hash(pid, row) for pid, row in plan.loc[duplicated, ["prompt_id", "row"]].values
        ]
    return plan


def _plan_rows(study: Study) -> Iterator[dict[str, Any]]:
    for item in study.items:
        for language in study.languages or (study.language,):
            setup = study.setup(language)
            if item.kind == "short_answer":
                yield from _short_answer_rows(study, setup, item)
            else:
                yield from _choice_rows(study, setup, item)


def _choice_rows(study: Study, setup: LanguageSetup, item: ProbeItem) -> Iterator[dict[str, Any]]:
    text = item.text(setup.language)
    labels = option_labels(study.option_labels, len(text.options))
    for proxy in study.proxies:
        framings = _framings_for(setup, proxy)
        for paraphrase in text.paraphrases:
            for order in option_orders(study.option_orders, len(text.options)):
                question = _question_block(
                    study, setup, item, paraphrase.text, text.options, order, labels
                )
                for framing in framings:
                    system, user = _frame(framing, question, proxy, setup.persona(proxy))
                    for seed in study.seeds:
                        cell = Cell(item, proxy, paraphrase.id, framing.id, order, seed)
                        yield _row(study, setup.language, cell, text.options, labels, system, user)


def _short_answer_rows(
    study: Study, setup: LanguageSetup, item: ProbeItem
) -> Iterator[dict[str, Any]]:
    """Short-answer items: one question per proxy in its own words, no options to order."""
    order = OptionOrder("canonical", ())
    for proxy in study.proxies:
        question_text = item.questions_by_proxy.get(proxy.id, {}).get(setup.language)
        if question_text is None:
            continue
        question = _question_block(study, setup, item, question_text, (), order, [])
        for framing in _framings_for(setup, proxy):
            system, user = _frame(framing, question, proxy, setup.persona(proxy))
            for seed in study.seeds:
                cell = Cell(item, proxy, "p1", framing.id, order, seed)
                yield _row(study, setup.language, cell, (), [], system, user)


def _framings_for(setup: LanguageSetup, proxy: Proxy) -> tuple[Framing, ...]:
    if proxy.kind == "baseline":
        assert setup.baseline is not None  # checked when the study was loaded
        return (setup.baseline,)
    return setup.framings


def _question_block(
    study: Study,
    setup: LanguageSetup,
    item: ProbeItem,
    question: str,
    options: tuple[str, ...],
    order: OptionOrder,
    labels: list[str],
) -> str:
    shown = [
        {"label": labels[position], "text": options[canonical]}
        for position, canonical in enumerate(order.display_to_canonical)
    ]
    return setup.template.render(
        question=question,
        options=shown,
        scale=item.scale,
        kind=item.kind,
        label_style=study.option_labels,
        language=setup.language,
        item_id=item.id,
    )


def _frame(framing: Framing, question: str, proxy: Proxy, persona: str) -> tuple[str, str]:
    proxy_fields = {"id": proxy.id, "name": proxy.name, "axis": proxy.axis}
    if proxy.value is not None:
        proxy_fields.update(proxy.value.attributes)
    context = {"question": question, "persona": persona, "proxy": proxy_fields}
    system = framing.system.render(**context) if framing.system is not None else ""
    return system, framing.user.render(**context)


@dataclass(frozen=True)
class Cell:
    """One cell of the design, before rendering."""

    item: ProbeItem
    proxy: Proxy
    paraphrase: str
    framing: str
    order: OptionOrder
    seed: int


def _row(
    study: Study,
    language: str,
    cell: Cell,
    options: tuple[str, ...],
    labels: list[str],
    system: str,
    user: str,
) -> dict[str, Any]:
    item, proxy = cell.item, cell.proxy
    key: tuple[Any, ...] = (
        study.id,
        item.id,
        proxy.axis,
        proxy.id,
        cell.paraphrase,
        cell.framing,
        cell.order.id,
        cell.seed,
    )
    if language != BASE_LANGUAGE:
        key = (*key, language)
    wording = f"{cell.paraphrase}/{cell.framing}"
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
        "paraphrase": cell.paraphrase,
        "framing": cell.framing,
        "wording": wording,
        "order": cell.order.id,
        "display_to_canonical": list(cell.order.display_to_canonical),
        "option_labels": labels,
        "options": list(options),
        "seed": cell.seed,
        "language": language,
        "system": system,
        "user": user,
        "text_hash": short_hash(system, user),
    }


def describe_design(plan: pd.DataFrame) -> str:
    """One line that multiplies out the design, e.g. '14 items x 12 proxies x ... = 4,144 prompts'."""
    proxies = plan.drop_duplicates("proxy")["proxy_kind"].value_counts()
    cultures, placebos = int(proxies.get("culture", 0)), int(proxies.get("placebo", 0))
    framed = plan[plan["proxy_kind"] != "baseline"]
    per_item = plan.groupby("item_id")
    paraphrases = sorted(set(per_item["paraphrase"].nunique()))
    orders = sorted(set(per_item["order"].nunique()))
    parts = [
        f"{plan['item_id'].nunique()} items",
        f"({cultures} cultures + {placebos} placebos)" if placebos else f"{cultures} cultures",
        f"{'/'.join(map(str, paraphrases))} paraphrases",
        f"{framed['framing'].nunique()} framings",
        f"{'/'.join(map(str, orders))} option orders",
    ]
    if plan["language"].nunique() > 1:
        parts.append(f"{plan['language'].nunique()} languages")
    if plan["seed"].nunique() > 1:
        parts.append(f"{plan['seed'].nunique()} seeds")
    line = " x ".join(parts)
    if cultures + placebos == 0:
        line = f"{plan['item_id'].nunique()} items x no-proxy baseline only"
    elif "baseline" in set(plan["proxy_kind"]):
        line += " + no-proxy baseline"
    return f"{line} = {len(plan):,} prompts"
