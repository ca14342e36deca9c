"""Agreement between annotators of the same papers, field by field.

For every field: Cohen's kappa (two annotators) or Fleiss' kappa (more), with a paper's whole
annotation of the field as one nominal category; Krippendorff's alpha with the nominal distance;
and, for fields that hold a set of labels, Krippendorff's alpha with the MASI distance (Passonneau
2006) and with the Jaccard distance, which give partial credit for overlapping sets. Each label of a
multi-label field is also scored on its own, as a yes/no judgement.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import combinations

import pandas as pd

from culture_probe.errors import InputError
from culture_probe.survey._fields import Field
from culture_probe.survey._records import PaperRecord, ReviewSheet

Value = Hashable
Distance = Callable[[Value, Value], float]
# One row per unit (paper), one entry per annotator; None where the annotator has no value.
Ratings = Sequence[Sequence[Value | None]]
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


def nominal_distance(first: Value, second: Value) -> float:
    """0 for equal values, 1 otherwise (Krippendorff 2004, nominal metric)."""
    return 0.0 if first == second else 1.0


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


def krippendorff_alpha(ratings: Ratings, distance: Distance = nominal_distance) -> float:
    """Krippendorff's alpha for any distance between values, with missing ratings.

    alpha = 1 - D_o / D_e over the pairable values (units with at least two ratings): D_o averages
    the distance within units, each unit's pairs weighted by 1 / (m_u - 1); D_e averages it over all
    pairs of pairable values (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
    Returns NaN when there is no variation to measure agreement on.
    """
    units = [[value for value in unit if value is not None] for unit in ratings]
    units = [unit for unit in units if len(unit) >= 2]
    pooled = [value for unit in units for value in unit]
    n = len(pooled)
    if n < 2:
        return math.nan
    observed = (
        sum(
            sum(distance(a, b) for a, b in combinations(unit, 2)) * 2 / (len(unit) - 1)
            for unit in units
        )
        / n
    )
    counts = Counter(pooled)
    values = list(counts)
    expected = sum(
        counts[a] * counts[b] * distance(a, b) * 2 for a, b in combinations(values, 2)
    ) / (n * (n - 1))
    return math.nan if expected == 0 else 1.0 - observed / expected


def cohen_kappa(first: Sequence[Value], second: Sequence[Value]) -> float:
    """Cohen's kappa of two annotators' nominal ratings of the same units (Cohen 1960).

    kappa = (p_o - p_e) / (1 - p_e), p_e from each annotator's own marginal distribution.
    NaN when both annotators used a single category (p_e = 1).
    """
    if len(first) != len(second) or not first:
        raise ValueError("two equally long, non-empty rating lists are needed")
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    first_counts, second_counts = Counter(first), Counter(second)
    expected = sum(first_counts[v] * second_counts[v] for v in first_counts) / (n * n)
    return math.nan if expected == 1 else (observed - expected) / (1 - expected)


def fleiss_kappa(ratings: Ratings) -> float:
    """Fleiss' kappa for units each rated by the same number of annotators (Fleiss 1971).

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)) per unit, P_e = sum_j p_j^2 from the pooled category
    shares; kappa = (mean P_i - P_e) / (1 - P_e).
    """
    sizes = {len(unit) for unit in ratings}
    if len(sizes) != 1 or not ratings or min(sizes) < 2:
        raise ValueError("every unit needs the same number (>= 2) of ratings")
    raters = sizes.pop()
    unit_counts = [Counter(unit) for unit in ratings]
    agreement = [
        (sum(c * c for c in counts.values()) - raters) / (raters * (raters - 1))
        for counts in unit_counts
    ]
    pooled: Counter[Value] = Counter()
    for counts in unit_counts:
        pooled.update(counts)
    total = raters * len(ratings)
    expected = sum((count / total) ** 2 for count in pooled.values())
    mean_agreement = sum(agreement) / len(agreement)
    return math.nan if expected == 1 else (mean_agreement - expected) / (1 - expected)


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
        "alpha_nominal": krippendorff_alpha(ratings, nominal_distance),
        "alpha_masi": krippendorff_alpha(ratings, masi_distance) if is_set else math.nan,
        "alpha_jaccard": krippendorff_alpha(ratings, jaccard_distance) if is_set else math.nan,
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
