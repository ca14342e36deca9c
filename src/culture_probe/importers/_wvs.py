"""World Values Survey wave-7 country distributions in two public formats.

- Cao et al. (NAACL 2025, SimLLMCultureDist) ``sft_wvs_valid.json``: a list of records with
  ``instruction`` ("How would someone from Andorra answer the following question:"), ``input`` (the
  question, then "Here are the options:"), ``options`` ("(A)Not at all important", ...),
  ``options_dist`` (letter -> percent) and ``id`` (the WVS-7 question number).
- lilyflower03/world-values-survey-datasets ``<cc>_wvs.json``: ``examples`` with ``question_id``,
  ``question_text``, ``options`` ("1. Very important", ...) and ``distribution`` (code -> fraction); the
  country is the file name's prefix (``us``, ``ch`` = China, ``eg``, ``jp``).

Both become :class:`CountryDistribution` rows keyed by WVS question id ("Q164") and taxonomy region.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.errors import InputError
from culture_probe.importers._countries import RegionResolver
from culture_probe.importers._distributions import checked_shares
from culture_probe.importers._writer import ImportedStudy

CAO_COUNTRY = re.compile(r"How would someone from (.+?) answer", re.IGNORECASE)
CAO_OPTION = re.compile(r"^\(([A-Z])\)\s*(.*)$", re.DOTALL)
CODED_OPTION = re.compile(r"^\s*(\d+)\s*\.\s*(.*)$", re.DOTALL)
LILYFLOWER_COUNTRIES = {"us": "US", "ch": "CN", "eg": "EG", "jp": "JP"}


@dataclass(frozen=True)
class CountryDistribution:
    """One question's human answer shares in one country, options in WVS code order."""

    question_id: str
    region: str
    text: str
    options: tuple[str, ...]
    shares: tuple[float, ...]
    topic: str = ""
    where: str = ""


@dataclass
class Collected:
    """Rows read from the files, and messages for the rows left out (when not strict)."""

    rows: list[CountryDistribution] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def keep_or_raise(self, error: InputError, strict: bool) -> None:
        if strict:
            raise error
        self.skipped.append(str(error))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"not a JSON file ({error})", path=path) from None


def read_distribution_file(
    path: Path, resolver: RegionResolver, *, strict: bool = True, country: str | None = None
) -> Collected:
    """Read a Cao et al. (2025) or lilyflower03 file, recognised by its shape."""
    data = _load_json(Path(path))
    if isinstance(data, list):
        return read_cao2025(Path(path), data, resolver, strict=strict)
    if isinstance(data, dict) and "examples" in data:
        return read_lilyflower(Path(path), data, resolver, strict=strict, country=country)
    raise InputError(
        "not a known WVS distribution format: expected a list of records with 'options_dist' "
        "(Cao et al. 2025) or a mapping with 'examples' (lilyflower03)",
        path=path,
    )


def read_cao2025(
    path: Path, records: list[Any], resolver: RegionResolver, *, strict: bool = True
) -> Collected:
    collected = Collected()
    for index, record in enumerate(records):
        try:
            collected.rows.append(_cao_row(path, record, index, resolver))
        except InputError as error:
            collected.keep_or_raise(error, strict)
    return collected


def _cao_row(path: Path, record: Any, index: int, resolver: RegionResolver) -> CountryDistribution:
    key = f"[{index}]"
    for name in ("id", "instruction", "input", "options", "options_dist"):
        if not isinstance(record, dict) or name not in record:
            raise InputError(f"record {index + 1} has no '{name}'", path=path, key=f"{key}.{name}")
    match = CAO_COUNTRY.search(str(record["instruction"]))
    if match is None:
        raise InputError(
            f"record {index + 1}: no 'How would someone from X answer' in the instruction",
            path=path,
            key=f"{key}.instruction",
        )
    region = resolver.resolve(match.group(1), path=str(path), key=f"{key}.instruction")
    letters, options = [], []
    for option in record["options"]:
        parsed = CAO_OPTION.match(str(option))
        if parsed is None:
            raise InputError(
                f"record {index + 1}: option '{option}' does not start with '(A)'",
                path=path,
                key=f"{key}.options",
            )
        letters.append(parsed.group(1))
        options.append(parsed.group(2).strip())
    distribution = record["options_dist"]
    _check_keys_known(distribution, letters, path, f"{key}.options_dist", index)
    percents = [float(distribution.get(letter, 0.0)) for letter in letters]
    question_id = f"Q{record['id']}"
    shares = checked_shares(
        [p / 100 for p in percents],
        path=str(path),
        key=f"{key}.options_dist",
        what=f"record {index + 1} ({question_id}, {match.group(1)})",
    )
    text = str(record["input"]).split("Here are the options:")[0].strip()
    return CountryDistribution(question_id, region, text, tuple(options), tuple(shares))


def _check_keys_known(
    distribution: Any, known: Sequence[str], path: Path, key: str, index: int
) -> None:
    if not isinstance(distribution, dict):
        raise InputError(f"record {index + 1}: expected a mapping", path=path, key=key)
    unknown = [k for k in distribution if str(k) not in known]
    if unknown:
        raise InputError(
            f"record {index + 1}: answer codes {unknown} are not among the options "
            f"({', '.join(known)})",
            path=path,
            key=key,
        )


def read_lilyflower(
    path: Path,
    data: dict[str, Any],
    resolver: RegionResolver,
    *,
    strict: bool = True,
    country: str | None = None,
) -> Collected:
    region = _lilyflower_region(path, resolver, country)
    collected = Collected()
    for index, example in enumerate(data["examples"]):
        try:
            collected.rows.append(_lilyflower_row(path, example, index, region))
        except InputError as error:
            collected.keep_or_raise(error, strict)
    return collected


def _lilyflower_region(path: Path, resolver: RegionResolver, country: str | None) -> str:
    if country is not None:
        return resolver.resolve(country, path=str(path), key="country")
    prefix = path.stem.split("_")[0].lower()
    if prefix in LILYFLOWER_COUNTRIES:
        return LILYFLOWER_COUNTRIES[prefix]
    raise InputError(
        f"cannot tell the country from the file name '{path.name}' (known prefixes: "
        f"{', '.join(sorted(LILYFLOWER_COUNTRIES))}); give the country explicitly",
        path=path,
        key="country",
    )


def _lilyflower_row(path: Path, example: Any, index: int, region: str) -> CountryDistribution:
    key = f"examples[{index}]"
    for name in ("question_id", "question_text", "options", "distribution"):
        if not isinstance(example, dict) or name not in example:
            raise InputError(f"example {index + 1} has no '{name}'", path=path, key=f"{key}.{name}")
    coded = []
    for option in example["options"]:
        parsed = CODED_OPTION.match(str(option))
        if parsed is None:
            raise InputError(
                f"example {index + 1}: option '{option}' does not start with its code ('1. ...')",
                path=path,
                key=f"{key}.options",
            )
        coded.append((int(parsed.group(1)), parsed.group(2).strip()))
    coded.sort()
    codes = [code for code, _ in coded]
    question_id = f"Q{example['question_id']}"
    if codes != list(range(1, len(codes) + 1)):
        raise InputError(
            f"example {index + 1} ({question_id}): the options list codes {codes}, not the full "
            "scale 1..K, so the distribution cannot be placed on the scale",
            path=path,
            key=f"{key}.options",
        )
    distribution = example["distribution"]
    _check_keys_known(distribution, [str(c) for c in codes], path, f"{key}.distribution", index)
    text = example["question_text"]
    if isinstance(text, dict):
        text = text.get("en") or next(iter(text.values()))
    shares = checked_shares(
        [float(distribution.get(str(code), 0.0)) for code in codes],
        path=str(path),
        key=f"{key}.distribution",
        what=f"example {index + 1} ({question_id}, {region})",
    )
    return CountryDistribution(
        question_id,
        region,
        str(text).strip(),
        tuple(option for _, option in coded),
        tuple(shares),
        topic=str(example.get("topic", "")),
    )


def collect(paths: Iterable[Path], resolver: RegionResolver, *, strict: bool = True) -> Collected:
    """Read every file; later files do not override a (question, country) already read."""
    out = Collected()
    seen: set[tuple[str, str]] = set()
    for path in paths:
        part = read_distribution_file(Path(path), resolver, strict=strict)
        out.skipped.extend(part.skipped)
        for row in part.rows:
            if (row.question_id, row.region) not in seen:
                seen.add((row.question_id, row.region))
                out.rows.append(row)
    return out


def reference_table(rows: Iterable[CountryDistribution]) -> pd.DataFrame:
    """The tidy reference: one row per (item_id, proxy, option)."""
    records = [
        {"item_id": row.question_id, "proxy": row.region, "option": k, "share": share}
        for row in rows
        for k, share in enumerate(row.shares)
    ]
    return pd.DataFrame(records, columns=["item_id", "proxy", "option", "share"])


def select_questions(
    rows: list[CountryDistribution],
    *,
    countries: Sequence[str] = (),
    questions: Sequence[str] = (),
    min_countries: int = 1,
    max_questions: int | None = None,
) -> list[CountryDistribution]:
    """Keep the rows of the wanted countries and questions with data for ``min_countries``."""
    if countries:
        rows = [row for row in rows if row.region in set(countries)]
    if questions:
        rows = [row for row in rows if row.question_id in set(questions)]
    per_question: dict[str, set[str]] = {}
    for row in rows:
        per_question.setdefault(row.question_id, set()).add(row.region)
    kept = [q for q in ordered_ids(per_question) if len(per_question[q]) >= min_countries]
    if max_questions is not None:
        kept = kept[:max_questions]
    wanted = set(kept)
    return [row for row in rows if row.question_id in wanted]


def ordered_ids(ids: Iterable[str]) -> list[str]:
    def number(question_id: str) -> tuple[int, str]:
        digits = re.sub(r"\D", "", question_id)
        return (int(digits) if digits else 0, question_id)

    return sorted(ids, key=number)


def import_wvs(
    paths: Sequence[Path],
    resolver: RegionResolver,
    *,
    study_id: str = "wvs",
    countries: Sequence[str] = (),
    questions: Sequence[str] = (),
    min_countries: int = 1,
    max_questions: int | None = None,
    strict: bool = True,
) -> ImportedStudy:
    """A study of the questions in WVS distribution files, asked as each country with data.

    Each question is one item with the file's wording as its only paraphrase (the persona framings
    give the wording variation); the reference holds the renormalised country shares.
    """
    collected = collect(paths, resolver, strict=strict)
    rows = select_questions(
        collected.rows,
        countries=countries,
        questions=questions,
        min_countries=min_countries,
        max_questions=max_questions,
    )
    if not rows:
        raise InputError(
            "no question is left after the filters (countries, questions, min_countries)",
            path=", ".join(map(str, paths)),
        )
    items, dropped = _wvs_items(rows)
    rows = [row for row in rows if (row.question_id, row.region) not in dropped]
    regions = sorted({row.region for row in rows})
    study = {
        "study": study_id,
        "title": "World Values Survey wave 7: questions and country distributions",
        "description": (
            f"{len(items)} WVS-7 questions asked as a person from each of {len(regions)} "
            "countries, compared with the country's answer shares. Imported from "
            + ", ".join(Path(p).name for p in paths)
            + "."
        ),
        "semantic_proxy": "emotions_and_values",
        "axes": {"region": regions},
        "option_orders": ["canonical", "reversed"],
    }
    log = {
        "source": [str(p) for p in paths],
        "format": "WVS-7 country distributions (Cao et al. 2025 / lilyflower03)",
        "items": len(items),
        "countries": regions,
        "skipped": collected.skipped
        + [f"{q} in {r}: options differ from the other countries" for q, r in sorted(dropped)],
    }
    return ImportedStudy(study, items, reference_table(rows), log=log)


def _wvs_items(
    rows: list[CountryDistribution],
) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """One item per question; text and options from the first English-looking row."""
    by_question: dict[str, list[CountryDistribution]] = {}
    for row in rows:
        by_question.setdefault(row.question_id, []).append(row)
    items, dropped = [], set()
    for question_id in ordered_ids(by_question):
        group = by_question[question_id]
        model = next((r for r in group if r.text.isascii()), group[0])
        for row in group:
            if len(row.options) != len(model.options):
                dropped.add((question_id, row.region))
        item: dict[str, Any] = {
            "id": question_id,
            "wvs_id": question_id,
            "scale": "ordinal",
            "options": list(model.options),
            "paraphrases": [model.text],
        }
        if model.topic:
            item["topic"] = model.topic
        items.append(item)
    return items, dropped
