"""What a reviewed literature covers, where its gaps are, and which gaps the probe suite fills.

Counts are of distinct papers. A *gap* is a taxonomy cell (a category of the demographic, semantic,
interaction or method dimension) that no paper in the review covers, like the survey's finding
that "Aboutness" is completely unexplored (Adilazuarda, Mukherjee et al., EMNLP 2024). A cell is
covered by the probe suite when a study file names it as its ``semantic_proxy`` or as one of its
``axes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from culture_probe.survey._fields import Field
from culture_probe.survey._records import PaperRecord
from culture_probe.yamlio import load_yaml

LABEL_COLUMNS = (
    "dimension",
    "field",
    "field_label",
    "label_id",
    "label",
    "status",
    "papers",
    "share",
    "probe_suite",
    "studies",
)


@dataclass(frozen=True)
class StudyCoverage:
    """Which taxonomy cells one study file of the probe suite probes."""

    study: str
    path: str
    cells: frozenset[str]


@dataclass(frozen=True)
class Coverage:
    """The numbers behind a coverage report."""

    papers: int
    per_label: pd.DataFrame
    cooccurrence: pd.DataFrame
    per_year: pd.DataFrame
    studies: list[StudyCoverage]

    @property
    def gaps(self) -> pd.DataFrame:
        """Taxonomy cells no reviewed paper covers."""
        return self.per_label[self.per_label["papers"] == 0].reset_index(drop=True)

    def count(self, label_id: str) -> int:
        """Papers with ``label_id`` (any multi-label field)."""
        rows = self.per_label[self.per_label["label_id"] == label_id]
        return int(rows["papers"].iloc[0]) if len(rows) else 0


def load_study_coverage(
    folder: str | Path, taxonomy_path: str | Path | None = None
) -> list[StudyCoverage]:
    """The cells each study in ``folder/*.yaml`` names (``semantic_proxy`` and ``axes`` keys).

    Only the two keys are read, with the project's YAML loader; files without a ``study`` key (the
    taxonomy itself) are skipped.
    """
    skip = Path(taxonomy_path).resolve() if taxonomy_path is not None else None
    studies: list[StudyCoverage] = []
    for path in sorted(Path(folder).glob("*.yaml")):
        if skip is not None and path.resolve() == skip:
            continue
        raw = load_yaml(path)
        if not isinstance(raw, dict) or "study" not in raw:
            continue
        cells = set(raw.get("axes") or {}) if isinstance(raw.get("axes"), dict) else set()
        if raw.get("semantic_proxy"):
            cells.add(str(raw["semantic_proxy"]))
        studies.append(StudyCoverage(str(raw["study"]), str(path), frozenset(map(str, cells))))
    return studies


def _papers_with(records: list[PaperRecord], key: str, label: str) -> set[str]:
    return {r.paper_id for r in records if label in r.labels(key)}


def compute_coverage(
    records: list[PaperRecord], fields: tuple[Field, ...], studies: Sequence[StudyCoverage] = ()
) -> Coverage:
    """Papers per label, demographic x semantic co-occurrence, papers per year, probe coverage."""
    total = len({r.paper_id for r in records})
    rows: list[dict[str, object]] = []
    for entry in fields:
        if entry.kind != "multi":
            continue
        for choice in entry.choices:
            count = len(_papers_with(records, entry.key, choice.id))
            names = [s.study for s in studies if choice.id in s.cells]
            rows.append(
                {
                    "dimension": entry.dimension or entry.key,
                    "field": entry.key,
                    "field_label": entry.label,
                    "label_id": choice.id,
                    "label": choice.label,
                    "status": choice.status,
                    "papers": count,
                    "share": count / total if total else 0.0,
                    "probe_suite": bool(names),
                    "studies": ", ".join(names),
                }
            )
    return Coverage(
        papers=total,
        per_label=pd.DataFrame(rows, columns=list(LABEL_COLUMNS)),
        cooccurrence=_cooccurrence(records, fields),
        per_year=_per_year(records),
        studies=list(studies),
    )


def _cooccurrence(
    records: list[PaperRecord],
    fields: tuple[Field, ...],
    row_key: str = "demographic",
    column_key: str = "semantic",
) -> pd.DataFrame:
    """Papers that use both labels: demographic labels as rows, semantic labels as columns."""
    by_key = {entry.key: entry for entry in fields}
    if row_key not in by_key or column_key not in by_key:
        return pd.DataFrame()
    row_labels = [c.id for c in by_key[row_key].choices]
    column_labels = [c.id for c in by_key[column_key].choices]
    pairs = Counter(
        (row, column)
        for record in records
        for row in record.labels(row_key)
        for column in record.labels(column_key)
    )
    grid = [[pairs[(row, column)] for column in column_labels] for row in row_labels]
    return pd.DataFrame(grid, index=row_labels, columns=column_labels, dtype=int)


def _per_year(records: list[PaperRecord]) -> pd.DataFrame:
    years = pd.Series([r.year for r in records], dtype="Int64")
    counts = years.value_counts(dropna=False).sort_index()
    return pd.DataFrame(
        {
            "year": ["unknown" if pd.isna(y) else str(y) for y in counts.index],
            "papers": counts.to_numpy(dtype=int),
        }
    )
