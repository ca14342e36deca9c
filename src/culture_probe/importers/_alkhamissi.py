"""Paraphrase sets of WVS-7 questions (AlKhamissi et al., ACL 2024), joined with country distributions.

``wvs_questions.json`` of the cultural-trends repository maps a question id ("Q1") to a description,
four paraphrases of the question and its options in WVS code order, "Don't know" last. Keys with a
language suffix ("Q3_ar") are translations and are not used here. The options left after dropping the
non-substantive answers ("Don't know", "No answer") must number as many as the options of the
distribution data, code by code; questions where they do not are left out and listed in
``import.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culture_probe.errors import InputError
from culture_probe.importers._countries import RegionResolver
from culture_probe.importers._writer import ImportedStudy
from culture_probe.importers._wvs import (
    CountryDistribution,
    collect,
    ordered_ids,
    reference_table,
    select_questions,
)

QUESTIONS_FILE = "wvs_questions.json"
NON_SUBSTANTIVE = ("don't know", "no answer", "dont know", "refused")
QUESTION_ID = re.compile(r"^Q\d+$")


@dataclass(frozen=True)
class ParaphraseSet:
    question_id: str
    description: str
    paraphrases: tuple[str, ...]
    options: tuple[str, ...]


def read_paraphrase_sets(path: Path) -> tuple[list[ParaphraseSet], list[str]]:
    """Read ``wvs_questions.json`` (or a folder holding it): the sets, and notes on entries left out.

    An entry with options but no ``questions`` (Q249 in the published file) has nothing to
    paraphrase and is left out with a note; any other malformed entry is an error.
    """
    path = Path(path)
    if path.is_dir():
        path = path / QUESTIONS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except json.JSONDecodeError as error:
        raise InputError(f"not a JSON file ({error})", path=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a mapping of question ids", path=path)
    sets, notes = [], []
    for question_id, entry in data.items():
        if not QUESTION_ID.match(str(question_id)):
            continue  # translations such as "Q3_ar"
        if isinstance(entry, dict) and "questions" not in entry and "options" in entry:
            notes.append(f"{question_id}: no paraphrases in {path.name}")
            continue
        sets.append(_paraphrase_set(path, str(question_id), entry))
    return sets, notes


def _paraphrase_set(path: Path, question_id: str, entry: Any) -> ParaphraseSet:
    for name in ("questions", "options"):
        if not isinstance(entry, dict) or not isinstance(entry.get(name), list):
            raise InputError(
                f"{question_id} has no '{name}' list", path=path, key=f"{question_id}.{name}"
            )
    options = [str(o) for o in entry["options"] if str(o).strip().lower() not in NON_SUBSTANTIVE]
    return ParaphraseSet(
        question_id,
        str(entry.get("description", "")),
        tuple(str(q) for q in entry["questions"]),
        tuple(options),
    )


def import_alkhamissi(
    questions_path: Path,
    distribution_paths: Sequence[Path],
    resolver: RegionResolver,
    *,
    study_id: str = "wvs_paraphrases",
    countries: Sequence[str] = (),
    questions: Sequence[str] = (),
    min_countries: int = 1,
    max_questions: int | None = None,
    strict: bool = True,
) -> ImportedStudy:
    """A study of the paraphrased WVS questions, with the distributions as the reference.

    Args:
        questions_path: ``wvs_questions.json`` or its folder.
        distribution_paths: WVS distribution files (Cao et al. 2025 or lilyflower03 format).
        resolver: maps country names to taxonomy regions.
        countries: keep only these region ids.
        questions: keep only these question ids.
        min_countries: keep questions with human data for at least this many countries.
        max_questions: keep the first this many questions (in WVS order).
        strict: raise on the first bad distribution row instead of listing it in ``import.json``.
    """
    paraphrase_sets, notes = read_paraphrase_sets(questions_path)
    sets = {s.question_id: s for s in paraphrase_sets}
    collected = collect(distribution_paths, resolver, strict=strict)
    skipped = notes + collected.skipped
    joinable, mismatched = _joinable(collected.rows, sets)
    skipped.extend(mismatched)
    rows = select_questions(
        joinable,
        countries=countries,
        questions=questions,
        min_countries=min_countries,
        max_questions=max_questions,
    )
    if not rows:
        raise InputError(
            "no paraphrased question has distributions after the filters "
            f"({len(sets)} paraphrase sets, {len(collected.rows)} distribution rows)",
            path=str(questions_path),
        )
    items = [_item(sets[q]) for q in ordered_ids({row.question_id for row in rows})]
    regions = sorted({row.region for row in rows})
    study = {
        "study": study_id,
        "title": "World Values Survey wave 7 in four paraphrases each",
        "description": (
            f"{len(items)} WVS-7 questions, each in the four paraphrases of AlKhamissi et al. "
            f"(ACL 2024), asked as a person from each of {len(regions)} countries and compared "
            "with the country's answer shares."
        ),
        "semantic_proxy": "emotions_and_values",
        "axes": {"region": regions},
        "option_orders": ["canonical", "reversed"],
    }
    log = {
        "source": [str(questions_path), *map(str, distribution_paths)],
        "format": "AlKhamissi et al. (2024) paraphrase sets + WVS-7 country distributions",
        "items": len(items),
        "countries": regions,
        "skipped": skipped,
    }
    return ImportedStudy(study, items, reference_table(rows), log=log)


def _joinable(
    rows: list[CountryDistribution], sets: dict[str, ParaphraseSet]
) -> tuple[list[CountryDistribution], list[str]]:
    kept, skipped = [], []
    for row in rows:
        paraphrased = sets.get(row.question_id)
        if paraphrased is None:
            continue
        if len(paraphrased.options) != len(row.options):
            skipped.append(
                f"{row.question_id} in {row.region}: {len(paraphrased.options)} options in the "
                f"paraphrase set, {len(row.options)} in the distribution"
            )
            continue
        kept.append(row)
    return kept, skipped


def _item(paraphrased: ParaphraseSet) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": paraphrased.question_id,
        "wvs_id": paraphrased.question_id,
        "scale": "ordinal",
        "options": list(paraphrased.options),
        "paraphrases": list(paraphrased.paraphrases),
    }
    if paraphrased.description:
        item["topic"] = paraphrased.description
    return item
