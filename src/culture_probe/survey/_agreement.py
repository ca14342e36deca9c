"""Agreement between annotators of the same papers, field by field.

For every field: Cohen's kappa (two annotators) or Fleiss' kappa (more), with a paper's whole
annotation of the field as one nominal category; Krippendorff's alpha with the nominal distance;
and, for fields that hold a set of labels, Krippendorff's alpha with the MASI distance (Passonneau
2006) and with the Jaccard distance, which give partial credit for overlapping sets. Each label of a
multi-label field is also scored on its own, as a yes/no judgement. The statistics themselves are
those of :mod:`culture_probe.agreement`; this module turns sheets into ratings and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial

import pandas as pd

from culture_probe.agreement import Value, cohen_kappa, fleiss_kappa, ratings_alpha
from culture_probe.errors import InputError
from culture_probe.survey._fields import Field
from culture_probe.survey._records import PaperRecord, ReviewSheet

AGREEMENT_COLUMNS = (
    "field",
    "label",
    "papers",
    "annotators",
    "kappa_statistic",
    "kappa",
    "alpha_nominal",
    "alpha_masi",
    "alpha_jaccard",
    "observed_agreement",
)


def jaccard_distance(first: Value, second: Value) -> float:
    """1 - |A n B| / |A u B|; two empty sets are equal (distance 0)."""
    a, b = _as_set(first), _as_set(second)
    union = a | b
    return 0.0 if not union else 1.0 - len(a & b) / len(union)


def masi_distance(first: Value, second: Value) -> float:
    """MASI distance, 1 - J * M (Passonneau 2006, "Measuring agreement on set-valued items").

    J is the Jaccard similarity and M the monotonicity weight: 1 for identical sets, 2/3 when one
    set contains the other, 1/3 when they overlap otherwise, 0 when they are disjoint.
    """
    a, b = _as_set(first), _as_set(second)
    if a == b:
        return 0.0
    if a <= b or b <= a:
        monotonicity = 2 / 3
    elif a & b:
        monotonicity = 1 / 3
    else:
        monotonicity = 0.0
    return 1.0 - (len(a & b) / len(a | b)) * monotonicity


def _as_set(value: Value) -> frozenset[Hashable]:
    if isinstance(value, frozenset):
        return value
    return frozenset([value])


@dataclass(frozen=True)
class AgreementResult:
    """Per-field agreement and the cells the annotators disagree on."""

    annotators: list[str]
    table: pd.DataFrame
    disagreements: pd.DataFrame


def annotator_names(sheets: Sequence[ReviewSheet]) -> list[str]:
    """Each sheet's annotator: the single name in its ``annotator`` column, else its file name."""
    names: list[str] = []
    for sheet in sheets:
        found = {name for r in sheet.records for name in r.labels("annotator")}
        name = found.pop() if len(found) == 1 else sheet.path.rsplit("/", 1)[-1]
        base, suffix = name, 2
        while name in names:
            name, suffix = f"{base} ({suffix})", suffix + 1
        names.append(name)
    return names


def _value(record: PaperRecord | None, entry: Field) -> Value | None:
    if record is None:
        return None
    labels = record.labels(entry.key)
    if entry.kind == "single":
        return labels[0] if labels else None
    if entry.kind == "list":
        return frozenset(label.casefold() for label in labels)
    return frozenset(labels)


def _has_label(record: PaperRecord | None, key: str, label: str) -> Value | None:
    """Whether the annotator gave ``label`` (a yes/no rating); None for a paper they lack."""
    return None if record is None else label in record.labels(key)


def _ratings(
    by_sheet: list[dict[str, PaperRecord]],
    paper_ids: list[str],
    value: Callable[[PaperRecord | None], Value | None],
) -> list[list[Value | None]]:
    return [[value(records.get(pid)) for records in by_sheet] for pid in paper_ids]


def _kappa(ratings: list[list[Value | None]]) -> tuple[str, float, float, int]:
    complete = [unit for unit in ratings if all(v is not None for v in unit)]
    raters = len(ratings[0]) if ratings else 0
    statistic = "cohen_kappa" if raters == 2 else "fleiss_kappa"
    if not complete:
        return statistic, math.nan, math.nan, 0
    observed = sum(len(set(unit)) == 1 for unit in complete) / len(complete)
    if raters == 2:
        kappa = cohen_kappa([u[0] for u in complete], [u[1] for u in complete])
    else:
        kappa = fleiss_kappa(complete)
    return statistic, kappa, observed, len(complete)


def _row(
    field_key: str, label: str, ratings: list[list[Value | None]], is_set: bool, annotators: int
) -> dict[str, object]:
    statistic, kappa, observed, papers = _kappa(ratings)
    return {
        "field": field_key,
        "label": label,
        "papers": papers,
        "annotators": annotators,
        "kappa_statistic": statistic,
        "kappa": kappa,
        "alpha_nominal": ratings_alpha(ratings),
        "alpha_masi": ratings_alpha(ratings, masi_distance) if is_set else math.nan,
        "alpha_jaccard": ratings_alpha(ratings, jaccard_distance) if is_set else math.nan,
        "observed_agreement": observed,
    }


def compute_agreement(sheets: Sequence[ReviewSheet], fields: tuple[Field, ...]) -> AgreementResult:
    """Agreement of two or more annotators' sheets over the papers they share.

    Papers are matched by ``paper_id``; a paper missing from a sheet is a missing rating.

    Example:
        >>> result = compute_agreement([read_review(a, f), read_review(b, f)], f)  # doctest: +SKIP
        >>> result.table[["field", "kappa", "alpha_masi"]]  # doctest: +SKIP
    """
    if len(sheets) < 2:
        raise InputError("agreement needs the sheets of at least two annotators")
    for sheet in sheets:
        sheet.raise_for_errors()
    names = annotator_names(sheets)
    by_sheet = [{r.paper_id: r for r in sheet.records} for sheet in sheets]
    paper_ids = list(dict.fromkeys(pid for records in by_sheet for pid in records))
    rows: list[dict[str, object]] = []
    for entry in fields:
        if entry.kind == "text":
            continue
        ratings = _ratings(by_sheet, paper_ids, partial(_value, entry=entry))
        rows.append(_row(entry.key, "", ratings, entry.kind != "single", len(sheets)))
        for choice in entry.choices if entry.kind == "multi" else ():
            present = partial(_has_label, key=entry.key, label=choice.id)
            ratings = _ratings(by_sheet, paper_ids, present)
            rows.append(_row(entry.key, choice.id, ratings, False, len(sheets)))
    table = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    return AgreementResult(names, table, _disagreements(by_sheet, paper_ids, fields, names))


def _render(value: Value | None) -> str:
    if value is None:
        return "(missing)"
    if isinstance(value, frozenset):
        return "; ".join(sorted(str(v) for v in value))
    return str(value)


def _disagreements(
    by_sheet: list[dict[str, PaperRecord]],
    paper_ids: list[str],
    fields: tuple[Field, ...],
    names: list[str],
) -> pd.DataFrame:
    rows: list[dict[str, str]] = []
    for pid in paper_ids:
        records = [records.get(pid) for records in by_sheet]
        title = next(r.title for r in records if r is not None)
        for entry in fields:
            if entry.kind == "text":
                continue
            values = [_value(r, entry) for r in records]
            present = {v for v in values if v is not None}
            if len(present) > 1:
                row = {"paper_id": pid, "title": title, "field": entry.key}
                row.update({name: _render(v) for name, v in zip(names, values, strict=True)})
                row["adjudicated"] = ""
                rows.append(row)
    return pd.DataFrame(rows, columns=["paper_id", "title", "field", *names, "adjudicated"])
