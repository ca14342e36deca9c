"""Probe items files: questions with paraphrases, options and translations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from culture_probe.errors import InputError
from culture_probe.identifiers import check_id, comparison_key, differences
from culture_probe.schema import Field, Schema, require_mapping, require_str
from culture_probe.study._model import (
    ITEM_KINDS,
    SCALES,
    SHORT_ANSWER_SCALE,
    ItemText,
    Paraphrase,
    ProbeItem,
)
from culture_probe.yamlio import Located, LocatedList, load_yaml

ITEMS_FILE = Schema(
    "a probe items file",
    {
        "items": Field("list", required=True),
        "description": Field(),
        "source": Field(),
        "language": Field(default="en"),
    },
)
CHOICE_ITEM = Schema(
    "a probe item",
    {
        "id": Field(required=True),
        "paraphrases": Field("str_list", required=True),
        "options": Field("str_list", required=True),
        "scale": Field(default="ordinal", choices=SCALES),
        "kind": Field(default="choice", choices=ITEM_KINDS),
        "wvs_id": Field(),
        "topic": Field(),
        "source": Field(),
        "notes": Field("any"),
        "translations": Field("mapping", default={}),
    },
)
SHORT_ANSWER_ITEM = Schema(
    "a short-answer item",
    {
        "id": Field(required=True),
        "kind": Field(required=True, choices=ITEM_KINDS),
        "questions_by_proxy": Field("mapping", required=True),
        "topic": Field(),
        "source": Field(),
        "notes": Field("any"),
        "wvs_id": Field(),
    },
)
TRANSLATION = Schema(
    "a translation",
    {
        "paraphrases": Field("str_list", required=True),
        "options": Field("str_list", required=True),
        "notes": Field("any"),
    },
)


def load_items(path: Path) -> tuple[ProbeItem, ...]:
    """Load a probe items file: ``items:`` a list of questions with paraphrases and options."""
    raw = require_mapping(load_yaml(path), "a probe items file", path=str(path))
    spec = ITEMS_FILE.read(raw)
    entries: LocatedList = spec["items"]
    items = []
    for index, entry in enumerate(entries):
        mapping = require_mapping(
            entry, "a probe item", path=str(path), line=entries.line_of(index)
        )
        items.append(_load_item(mapping, spec["language"]))
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        key = comparison_key(item.id)
        if key in seen:
            earlier = items[seen[key]].id
            how = "" if earlier == item.id else f" ('{earlier}': {differences(earlier, item.id)})"
            raise InputError(
                f"item id '{item.id}' is used twice{how}",
                path=str(path),
                line=entries.line_of(index),
                key="id",
            )
        seen[key] = index
    return tuple(items)


def _load_item(entry: Located, language: str) -> ProbeItem:
    if isinstance(entry.get("id"), str):
        check_id(entry["id"], what="item id", path=entry.path, line=entry.line_of("id"))
    if entry.get("kind") == "short_answer":
        return _load_short_answer_item(entry, language)
    spec = CHOICE_ITEM.read(entry)
    text = _item_text(entry)
    return ProbeItem(
        id=spec["id"],
        paraphrases=text.paraphrases,
        options=text.options,
        scale=spec["scale"],
        wvs_id=spec["wvs_id"],
        topic=spec["topic"],
        source=spec["source"],
        kind=spec["kind"],
        language=language,
        translations=_translations(entry, spec["translations"], text, spec["id"]),
    )


def _item_text(entry: Located) -> ItemText:
    texts = _distinct(entry, "paraphrases", "paraphrase")
    options = _distinct(entry, "options", "option")
    if len(options) < 2:
        raise InputError(
            "an item needs at least two options",
            path=entry.path,
            line=entry.line_of("options"),
            key="options",
        )
    paraphrases = tuple(Paraphrase(f"p{n + 1}", text) for n, text in enumerate(texts))
    return ItemText(paraphrases, tuple(options))


def _distinct(entry: Located, key: str, what: str) -> list[str]:
    """The strings under ``key``, refusing one written twice (it would count as two wordings)."""
    values: LocatedList = entry[key]
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        text = comparison_key(str(value))
        if text in seen:
            earlier = str(values[seen[text]])
            how = "" if earlier == str(value) else f"; {differences(earlier, str(value))}"
            raise InputError(
                f"{what} {index + 1} repeats {what} {seen[text] + 1} ('{value}'{how}); each "
                "must differ, or the design counts one wording twice",
                path=entry.path,
                line=values.line_of(index),
                key=key,
            )
        seen[text] = index
    return [str(value) for value in values]


def _translations(
    entry: Located, block: dict[str, Any], original: ItemText, item_id: str
) -> dict[str, ItemText]:
    out: dict[str, ItemText] = {}
    if not block:
        return out
    located = entry["translations"]
    for language, value in block.items():
        mapping = require_mapping(
            value, f"a '{language}' translation", path=entry.path, line=located.line_of(language)
        )
        TRANSLATION.read(mapping)
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
    spec = SHORT_ANSWER_ITEM.read(entry)
    block: Located = spec["questions_by_proxy"]
    questions: dict[str, dict[str, str]] = {}
    for proxy_id, texts in block.items():
        mapping = require_mapping(
            texts, "questions per language", path=entry.path, line=block.line_of(proxy_id)
        )
        questions[str(proxy_id)] = {str(code): require_str(mapping, code) for code in mapping}
    return ProbeItem(
        id=spec["id"],
        paraphrases=(),
        options=(),
        scale=SHORT_ANSWER_SCALE,
        wvs_id=spec["wvs_id"],
        topic=spec["topic"],
        source=spec["source"],
        kind="short_answer",
        language=language,
        questions_by_proxy=questions,
    )
