"""Expand a study into its plan: one row per prompt, the full factorial design.

items x proxies x paraphrases x framings x option orders x seeds, plus the no-proxy baseline (which has
no framing). Each row carries the rendered messages and a stable content-hash id, so that a run can be
resumed and two runs compared prompt by prompt.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from culture_probe.study import Framing, ProbeItem, Proxy, Study


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
        labels = option_labels(study.option_labels, len(item.options))
        for proxy in study.proxies:
            framings = _framings_for(study, proxy)
            for paraphrase in item.paraphrases:
                for order in option_orders(study.option_orders, len(item.options)):
                    question = _question_block(study, item, paraphrase.text, order, labels)
                    for framing in framings:
                        system, user = _frame(framing, question, proxy)
                        for seed in study.seeds:
                            yield _row(
                                study,
                                item,
                                proxy,
                                paraphrase.id,
                                framing.id,
                                order,
                                labels,
                                seed,
                                system,
                                user,
                            )


def _framings_for(study: Study, proxy: Proxy) -> tuple[Framing, ...]:
    if proxy.kind == "baseline":
        assert study.baseline_framing is not None  # checked when the study was loaded
        return (study.baseline_framing,)
    return study.framings


def _question_block(
    study: Study, item: ProbeItem, question: str, order: OptionOrder, labels: list[str]
) -> str:
    shown = [
        {"label": labels[position], "text": item.options[canonical]}
        for position, canonical in enumerate(order.display_to_canonical)
    ]
    return study.question_template.render(
        question=question,
        options=shown,
        scale=item.scale,
        label_style=study.option_labels,
        language=study.language,
        item_id=item.id,
    )


def _frame(framing: Framing, question: str, proxy: Proxy) -> tuple[str, str]:
    proxy_fields = {"id": proxy.id, "name": proxy.name, "axis": proxy.axis}
    if proxy.value is not None:
        proxy_fields.update(proxy.value.attributes)
    context = {"question": question, "persona": proxy.persona, "proxy": proxy_fields}
    system = framing.system.render(**context) if framing.system is not None else ""
    return system, framing.user.render(**context)


def _row(
    study: Study,
    item: ProbeItem,
    proxy: Proxy,
    paraphrase: str,
    framing: str,
    order: OptionOrder,
    labels: list[str],
    seed: int,
    system: str,
    user: str,
) -> dict[str, Any]:
    cell = (study.id, item.id, proxy.axis, proxy.id, paraphrase, framing, order.id, seed)
    return {
        "prompt_id": short_hash(*cell, system, user),
        "study": study.id,
        "item_id": item.id,
        "wvs_id": item.wvs_id or "",
        "topic": item.topic or "",
        "scale": item.scale,
        "n_options": len(item.options),
        "axis": proxy.axis,
        "proxy": proxy.id,
        "proxy_name": proxy.name,
        "proxy_kind": proxy.kind,
        "paraphrase": paraphrase,
        "framing": framing,
        "wording": f"{paraphrase}/{framing}",
        "order": order.id,
        "display_to_canonical": list(order.display_to_canonical),
        "option_labels": labels,
        "options": list(item.options),
        "seed": seed,
        "language": study.language,
        "system": system,
        "user": user,
        "text_hash": short_hash(system, user),
    }


def describe_design(plan: pd.DataFrame) -> str:
    """One line that multiplies out the design, e.g. '14 items x 15 proxies x ... = 5,152 prompts'."""
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
    if plan["seed"].nunique() > 1:
        parts.append(f"{plan['seed'].nunique()} seeds")
    line = " x ".join(parts)
    if cultures + placebos == 0:
        line = f"{plan['item_id'].nunique()} items x no-proxy baseline only"
    elif "baseline" in set(plan["proxy_kind"]):
        line += " + no-proxy baseline"
    return f"{line} = {len(plan):,} prompts"
