"""GlobalOpinionQA (Durmus et al. 2023): Pew Global Attitudes and WVS questions with country answers.

The dataset (Hugging Face ``Anthropic/llm_global_opinions``, file ``data/global_opinions.csv``) has the
columns ``question, selections, options, source``. ``selections`` is the text of a Python
``defaultdict(<class 'list'>, {'Country': [p1, p2, ...]})`` and ``options`` the text of a Python list;
both are read with :func:`ast.literal_eval` after the ``defaultdict`` wrapper is stripped, never with
``eval``. Answers such as "DK/Refused" are dropped and the remaining shares renormalised, as the
analysis compares substantive answers.
"""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.errors import CultureProbeError, InputError
from culture_probe.importers._countries import RegionResolver
from culture_probe.importers._distributions import checked_shares
from culture_probe.importers._writer import ImportedStudy

HUB_ID = "Anthropic/llm_global_opinions"
COLUMNS = ("question", "selections", "options", "source")
DEFAULTDICT = re.compile(r"^\s*defaultdict\(\s*<class '[^']*'>\s*,\s*(\{.*\})\s*\)\s*$", re.DOTALL)
NON_SUBSTANTIVE = re.compile(r"^(dk|don'?t know|refused|dk/refused|no answer)\b", re.IGNORECASE)


@dataclass(frozen=True)
class OpinionRow:
    """One CSV row: a question, its options and the answer shares per country name."""

    line: int
    question: str
    options: tuple[str, ...]
    selections: dict[str, list[float]]
    source: str


def parse_selections(text: str, *, path: str, line: int) -> dict[str, list[float]]:
    """``defaultdict(<class 'list'>, {'Japan': [0.1, 0.9]})`` -> ``{'Japan': [0.1, 0.9]}``.

    Example:
        >>> parse_selections("defaultdict(<class 'list'>, {'Japan': [0.1, 0.9]})", path="x", line=2)
        {'Japan': [0.1, 0.9]}
    """
    match = DEFAULTDICT.match(text)
    literal = match.group(1) if match else text
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError) as error:
        raise InputError(
            f"not a mapping of countries to shares ({error.__class__.__name__}): {text[:80]!r}",
            path=path,
            line=line,
            key="selections",
        ) from None
    if not isinstance(value, dict) or not all(isinstance(v, list | tuple) for v in value.values()):
        raise InputError(
            "expected a mapping of country names to lists of shares",
            path=path,
            line=line,
            key="selections",
        )
    return {str(k): [float(x) for x in v] for k, v in value.items()}


def parse_options(text: str, *, path: str, line: int) -> tuple[str, ...]:
    """``"['Yes', 'No']"`` -> ``('Yes', 'No')``."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InputError(
            f"not a Python list of options: {text[:80]!r}", path=path, line=line, key="options"
        ) from None
    if not isinstance(value, list | tuple) or len(value) < 2:
        raise InputError(
            "expected a list of at least two options", path=path, line=line, key="options"
        )
    return tuple(str(option) for option in value)


def read_csv_rows(path: Path) -> Iterator[OpinionRow]:
    """The rows of a GlobalOpinionQA CSV, with the line each starts on."""
    if not Path(path).is_file():
        raise InputError("file not found", path=path)
    with Path(path).open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        header = reader.fieldnames or []
        for column in COLUMNS:
            if column not in header:
                from culture_probe.errors import expected_one_of

                raise InputError(
                    f"missing column '{column}'; the file has: {', '.join(header)}",
                    path=path,
                    line=1,
                    key=column,
                    hint=expected_one_of(column, header),
                )
        start = reader.line_num + 1
        for record in reader:
            yield _row(record, str(path), start)
            start = reader.line_num + 1


def _row(record: dict[str, Any], path: str, line: int) -> OpinionRow:
    return OpinionRow(
        line=line,
        question=str(record["question"]).strip(),
        options=parse_options(str(record["options"]), path=path, line=line),
        selections=parse_selections(str(record["selections"]), path=path, line=line),
        source=str(record.get("source") or ""),
    )


def hub_rows(hub_id: str = HUB_ID) -> Iterator[OpinionRow]:
    """Rows from the Hugging Face hub (needs the ``datasets`` package and a network)."""
    try:
        import datasets
    except ImportError:
        raise CultureProbeError(
            "reading from the hub needs the datasets package: pip install datasets "
            "(or download data/global_opinions.csv and pass the file)"
        ) from None
    table = datasets.load_dataset(hub_id, split="train").to_pandas()
    for index, record in enumerate(table.to_dict("records")):
        yield _row(record, hub_id, index + 2)


def import_globalopinionqa(
    source: str | Path,
    resolver: RegionResolver,
    *,
    study_id: str = "globalopinionqa",
    countries: Sequence[str] = (),
    sources: Sequence[str] = (),
    min_countries: int = 1,
    max_questions: int | None = None,
    strict: bool = True,
) -> ImportedStudy:
    """A study of GlobalOpinionQA questions asked as each country with answers, and its reference.

    Args:
        source: a CSV file in the dataset's format, or a hub id (``Anthropic/llm_global_opinions``).
        resolver: maps the dataset's country names to taxonomy regions.
        countries: keep only these region ids.
        sources: keep only these ``source`` values ("GAS", "WVS").
        min_countries: keep questions with shares for at least this many kept countries.
        max_questions: keep the first this many questions.
        strict: raise on the first bad row instead of listing it in ``import.json``.
    """
    path = Path(source)
    rows = read_csv_rows(path) if path.exists() else hub_rows(str(source))
    items: list[dict[str, Any]] = []
    records: list[tuple[str, str, int, float]] = []
    skipped: list[str] = []
    for row in rows:
        if sources and row.source not in sources:
            continue
        if max_questions is not None and len(items) >= max_questions:
            break
        item_id = f"goqa{row.line:05d}"
        try:
            shares = _country_shares(row, str(source), resolver, countries, strict, skipped)
        except InputError as error:
            if strict:
                raise
            skipped.append(str(error))
            continue
        if len(shares) < max(min_countries, 1):
            continue
        kept = [k for k, option in enumerate(row.options) if not NON_SUBSTANTIVE.match(option)]
        items.append(_item(item_id, row, kept))
        for region, values in shares.items():
            total = sum(values[k] for k in kept)
            for position, k in enumerate(kept):
                records.append((item_id, region, position, values[k] / total if total else 0.0))
    if not items:
        raise InputError("no question is left after the filters", path=str(source))
    regions = sorted({record[1] for record in records})
    study = {
        "study": study_id,
        "title": "GlobalOpinionQA: Pew Global Attitudes and WVS questions",
        "description": (
            f"{len(items)} GlobalOpinionQA questions (Durmus et al. 2023) asked as a person from "
            f"each of {len(regions)} countries, compared with the country's answer shares."
        ),
        "semantic_proxy": "social_and_political_relations",
        "axes": {"region": regions},
        "option_orders": ["canonical", "reversed"],
    }
    log = {"source": str(source), "format": "GlobalOpinionQA CSV", "skipped": skipped}
    reference = pd.DataFrame(records, columns=["item_id", "proxy", "option", "share"])
    return ImportedStudy(study, items, reference, log=log)


def _country_shares(
    row: OpinionRow,
    path: str,
    resolver: RegionResolver,
    countries: Sequence[str],
    strict: bool,
    skipped: list[str],
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name, values in row.selections.items():
        try:
            region = resolver.resolve(name, path=path, line=row.line, key="selections")
        except InputError as error:
            if strict:
                raise
            skipped.append(str(error))
            continue
        if countries and region not in countries:
            continue
        if len(values) != len(row.options):
            raise InputError(
                f"'{name}' has {len(values)} shares for {len(row.options)} options",
                path=path,
                line=row.line,
                key="selections",
            )
        checked_shares(values, path=path, line=row.line, key="selections", what=f"'{name}'")
        out[region] = values
    return out


def _item(item_id: str, row: OpinionRow, kept: list[int]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "scale": "nominal",
        "options": [row.options[k] for k in kept],
        "paraphrases": [row.question],
    }
    if row.source:
        item["source"] = f"GlobalOpinionQA ({row.source})"
    return item
