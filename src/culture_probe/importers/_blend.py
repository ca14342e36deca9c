"""BLEnD (Myung et al., NeurIPS 2024 Datasets and Benchmarks): everyday-culture short-answer questions.

The repository's ``data/`` folder holds, per country or region, ``annotations/<Country>_data.json``
(question id -> local-language question, English question, annotated answers in the local language and
in English with vote counts) and ``prompts/<Country>_prompts.csv`` (instruction templates in English
and in the local language; the paper evaluates with ``inst-4``), and ``questions/<Country>_questions.csv``
with each question's topic. Hub id: ``nayeon212/BLEnD``.

Each question id becomes one short-answer item, asked about each country in English and in the
country's language; the annotated answers become ``answers.parquet`` (``item_id, proxy, language,
answer, votes``), scored by :func:`culture_probe.scoring.score_short_answers`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.errors import InputError
from culture_probe.importers._countries import RegionResolver
from culture_probe.importers._writer import ImportedStudy
from culture_probe.taxonomy import Taxonomy

#: the annotated answers' table (``answers.parquet``); ``group``: the annotation an answer belongs
#: to, whose synonyms and translations share its votes
ANSWER_COLUMNS = ("item_id", "proxy", "language", "group", "answer", "votes")
INSTRUCTION_ID = "inst-4"
PLAIN_FRAMING = """# BLEnD questions name the country themselves: the question is asked as it is.
framings:
  - id: plain
    user: "{{ question }}"
"""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not a JSON file ({error})", path=path) from None


def country_files(folder: Path) -> dict[str, Path]:
    """Country file stem ('South_Korea') -> its annotations file."""
    annotations = Path(folder) / "annotations"
    if not annotations.is_dir():
        raise InputError("expected an 'annotations' folder (BLEnD data/)", path=folder)
    return {p.name.removesuffix("_data.json"): p for p in sorted(annotations.glob("*_data.json"))}


def local_language(region: str, taxonomy: Taxonomy) -> str:
    """The first language of a region value in the taxonomy."""
    for category_id in ("region", "subnational_region"):
        category = taxonomy.category(category_id)
        value = category.value(region) if category is not None else None
        if value is not None:
            return str(value.attributes.get("languages", ["en"])[0])
    return "en"


def instruction_templates(folder: Path, country: str, language: str) -> dict[str, str]:
    """BLEnD's ``inst-4`` in English and in the country's language, as Jinja templates."""
    path = Path(folder) / "prompts" / f"{country}_prompts.csv"
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            rows = {row["id"]: row for row in csv.DictReader(stream)}
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    if INSTRUCTION_ID not in rows:
        raise InputError(f"no '{INSTRUCTION_ID}' prompt", path=path, key="id")
    row = rows[INSTRUCTION_ID]
    templates = {"en": _jinja(row["English"])}
    if language != "en":
        templates[language] = _jinja(row["Translation"])
    return templates


def _jinja(text: str) -> str:
    # Literal braces other than the question slot are escaped so Jinja prints them as they are.
    escaped = text.replace("{{", "{{ '{{' }}").replace("{%", "{{ '{%' }}")
    return escaped.replace("{q}", "{{ question }}") + "\n"


def _topics(folder: Path, country: str) -> dict[str, str]:
    path = Path(folder) / "questions" / f"{country}_questions.csv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as stream:
        return {row["ID"]: row.get("Topic", "") for row in csv.DictReader(stream)}


def import_blend(
    folder: Path,
    resolver: RegionResolver,
    taxonomy: Taxonomy,
    *,
    study_id: str = "blend",
    countries: Sequence[str] = (),
    questions: Sequence[str] = (),
    max_questions: int | None = None,
    local_languages: bool = True,
) -> ImportedStudy:
    """A short-answer study of BLEnD questions, in English and each country's language."""
    files = country_files(folder)
    by_item: dict[str, dict[str, Any]] = {}
    answers: list[tuple[str, str, str, int, str, int]] = []
    templates: dict[str, str] = {}
    regions: list[str] = []
    for stem, path in files.items():
        region = resolver.resolve(stem.replace("_", " "), path=str(path), key="file name")
        if countries and region not in countries:
            continue
        language = local_language(region, taxonomy) if local_languages else "en"
        for code, source in instruction_templates(folder, stem, language).items():
            templates.setdefault(code, source)
        regions.append(region)
        topics = _topics(folder, stem)
        for question_id, entry in _read_json(path).items():
            if questions and question_id not in questions:
                continue
            item = by_item.setdefault(
                question_id,
                {"id": question_id, "kind": "short_answer", "topic": topics.get(question_id, "")},
            )
            texts = {"en": str(entry["en_question"])}
            if language != "en":
                texts[language] = str(entry["question"])
            item.setdefault("questions_by_proxy", {})[region] = texts
            answers.extend(_answers(question_id, region, language, entry, path))
    if not regions:
        raise InputError("no country is left after the filters", path=folder)
    items = sorted(by_item.values(), key=lambda item: item["id"])
    if max_questions is not None:
        items = items[:max_questions]
        kept = {item["id"] for item in items}
        answers = [a for a in answers if a[0] in kept]
    for item in items:
        if not item["topic"]:
            del item["topic"]
    study = {
        "study": study_id,
        "title": "BLEnD: everyday knowledge in diverse cultures and languages",
        "description": (
            f"{len(items)} BLEnD short-answer questions about {len(regions)} countries and "
            "regions, asked in English and in the local language; answers are scored by "
            "matching the annotators' answers."
        ),
        "semantic_proxy": "food_and_drink",
        "axes": {"region": sorted(set(regions))},
        "option_orders": ["canonical"],
    }
    _split_axes(study, taxonomy)
    ordered = {"en": templates.pop("en"), **dict(sorted(templates.items()))}
    frame = pd.DataFrame(answers, columns=list(ANSWER_COLUMNS))
    return ImportedStudy(
        study,
        items,
        frame,
        templates=ordered,
        framings={code: PLAIN_FRAMING for code in ordered},
        log={"source": str(folder), "format": "BLEnD data/", "skipped": []},
        reference_name="answers.parquet",
    )


def _split_axes(study: dict[str, Any], taxonomy: Taxonomy) -> None:
    """Sub-national regions (Assam, West Java, Northern Nigeria) go on their own axis."""
    sub = taxonomy.category("subnational_region")
    ids = study["axes"]["region"]
    inner = [r for r in ids if sub is not None and sub.value(r) is not None]
    if inner:
        study["axes"] = {"region": [r for r in ids if r not in inner], "subnational_region": inner}


def _answers(
    question_id: str, region: str, language: str, entry: Any, path: Path
) -> list[tuple[str, str, str, int, str, int]]:
    out = []
    for index, annotation in enumerate(entry.get("annotations", [])):
        if "count" not in annotation:
            raise InputError(
                f"{question_id}: annotation {index + 1} has no 'count'",
                path=path,
                key=f"{question_id}.annotations",
            )
        votes = int(annotation["count"])
        for answer in annotation.get("answers", []):
            out.append((question_id, region, language, index, str(answer), votes))
        if language != "en":
            for answer in annotation.get("en_answers", []):
                out.append((question_id, region, "en", index, str(answer), votes))
    return out
