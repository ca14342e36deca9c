"""What ``culture-probe list`` shows: every taxonomy cell with the studies and probes that cover it.

A study covers the cell of its ``semantic_proxy``, of every axis it crosses its questions with (Region,
Religion, ...), of its ``interaction`` and ``method`` keys, of Placebo when it has placebo controls, and
of Language when it asks in more than one language. The taxonomy's own ``status`` (studied, extension,
not_yet_studied) says what the literature covers; the studies say what culture-probe can probe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from culture_probe.errors import CultureProbeError
from culture_probe.study import Study, load_study
from culture_probe.taxonomy import Category, load_taxonomy
from culture_probe.yamlio import load_yaml


@dataclass
class StudyEntry:
    """One study file: its id, the items file it asks and the cells it covers."""

    id: str
    path: str
    title: str
    items: str
    n_items: int
    languages: list[str]
    cells: list[str]


@dataclass
class CellEntry:
    """One taxonomy category with the studies and probe files that cover it."""

    dimension: str
    id: str
    label: str
    status: str
    n_values: int
    studies: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)


@dataclass
class Catalogue:
    """The taxonomy cells, the studies, and the study files that failed to load (with why)."""

    taxonomy: str
    cells: list[CellEntry]
    studies: list[StudyEntry]
    problems: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "taxonomy": self.taxonomy,
            "cells": [asdict(cell) for cell in self.cells],
            "studies": [asdict(study) for study in self.studies],
            "problems": self.problems,
        }


def build_catalogue(taxonomy_path: Path, study_folder: Path | None = None) -> Catalogue:
    """Read the taxonomy and every study in ``study_folder`` (default: the taxonomy's folder).

    Example:
        >>> catalogue = build_catalogue(Path("taxonomy/taxonomy.yaml"))  # doctest: +SKIP
        >>> [c.studies for c in catalogue.cells if c.id == "food_and_drink"]  # doctest: +SKIP
        [['food']]
    """
    taxonomy = load_taxonomy(taxonomy_path)
    folder = study_folder or Path(taxonomy_path).parent
    studies, problems = _load_studies(folder, Path(taxonomy_path))
    cells = [_cell(category, studies) for category in taxonomy.categories]
    return Catalogue(str(taxonomy_path), cells, studies, problems)


def _load_studies(folder: Path, taxonomy_path: Path) -> tuple[list[StudyEntry], dict[str, str]]:
    studies, problems = [], {}
    for path in sorted(Path(folder).glob("*.yaml")):
        if path.resolve() == taxonomy_path.resolve():
            continue
        raw = load_yaml(path)
        if not isinstance(raw, dict) or "study" not in raw:
            continue
        try:
            study = load_study(path, taxonomy_path)
        except CultureProbeError as error:
            problems[str(path)] = str(error)
            continue
        studies.append(_entry(study, raw, path))
    return studies, problems


def _entry(study: Study, raw: dict[str, Any], path: Path) -> StudyEntry:
    cells = [study.semantic_proxy]
    cells += sorted(
        {axis for proxy in study.proxies if proxy.kind == "culture" for axis in proxy.axes}
    )
    if any(proxy.kind == "placebo" for proxy in study.proxies):
        cells.append("placebo")
    if len(study.languages) > 1:
        cells.append("language")
    for key in ("interaction", "method"):
        if raw.get(key):
            values = raw[key] if isinstance(raw[key], list) else [raw[key]]
            cells += [str(value) for value in values]
    return StudyEntry(
        id=study.id,
        path=str(path),
        title=study.title,
        items=_items_file(study, raw, path) or str(raw["items"]),
        n_items=len(study.items),
        languages=list(study.languages),
        cells=list(dict.fromkeys(cells)),
    )


def _items_file(study: Study, raw: dict[str, Any], path: Path) -> str | None:
    target = (path.parent / str(raw["items"])).resolve()
    for name in study.files:
        if Path(name).resolve() == target:
            return name
    return None


def _cell(category: Category, studies: list[StudyEntry]) -> CellEntry:
    covering = [s for s in studies if category.id in s.cells]
    return CellEntry(
        dimension=category.dimension,
        id=category.id,
        label=category.label,
        status=category.status,
        n_values=len(category.values),
        studies=[s.id for s in covering],
        probes=list(dict.fromkeys(str(Path(s.items).parent) for s in covering)),
    )


def render_catalogue(catalogue: Catalogue) -> Any:
    """A rich table: dimension, cell, status, values, studies and probe files."""
    from rich.table import Table

    table = Table(title=f"Taxonomy cells and the studies that probe them ({catalogue.taxonomy})")
    for column in ("dimension", "cell", "status", "values", "studies", "probes"):
        table.add_column(column, overflow="fold")
    colours = {"studied": "green", "extension": "cyan", "not_yet_studied": "yellow"}
    previous = None
    for cell in catalogue.cells:
        dimension = cell.dimension if cell.dimension != previous else ""
        previous = cell.dimension
        status = f"[{colours.get(cell.status, 'white')}]{cell.status}[/]"
        table.add_row(
            dimension,
            f"{cell.label} [dim]({cell.id})[/]",
            status,
            str(cell.n_values or ""),
            ", ".join(cell.studies) or "[dim]-[/]",
            ", ".join(cell.probes) or "[dim]-[/]",
        )
    return table
