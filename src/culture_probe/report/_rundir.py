"""Read what a run directory holds, leaving out (and saying so) whatever is missing.

A run directory (see :mod:`culture_probe.columns`) holds ``manifest.json``, ``plan.parquet``,
``responses.parquet``, ``stats/<table>.parquet``, ``summary.json`` and, with human data,
``reference.parquet``. The report needs only the plan; every other part adds sections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.columns import STATS_TABLE_NAMES
from culture_probe.errors import InputError

STATS_TABLES = STATS_TABLE_NAMES
"""The tables the analysis writes to ``stats/`` (the registry's); each one present is shown."""

HEADLINE_FILES = ("headline.json", "headline.txt")


@dataclass
class RunData:
    """Everything found in one run directory.

    Attributes:
        path: The run directory.
        plan: One row per prompt (required).
        responses: One row per scored prompt, or None.
        tables: The ``stats/`` tables that exist, by name.
        summary: ``summary.json`` (empty when absent).
        manifest: ``manifest.json`` (empty when absent).
        reference: Human reference distributions (``item_id, proxy, option, share``), or None.
        headline: The analysis' plain-English sentences (from ``summary.json`` or a headline file).
        missing: Parts that were not found, as paths relative to the run directory.
    """

    path: Path
    plan: pd.DataFrame
    responses: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    reference: pd.DataFrame | None = None
    headline: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame | None:
        """The ``stats/<name>.parquet`` table, or None when the run has none (or it is empty)."""
        frame = self.tables.get(name)
        return frame if frame is not None and not frame.empty else None


def load_run(run_dir: Path) -> RunData:
    """Read a run directory; only ``plan.parquet`` is required.

    Raises:
        InputError: the directory or its plan is missing, or a file cannot be read (naming it).
    """
    if not run_dir.is_dir():
        raise InputError(
            "is not a run directory", path=run_dir, hint="pass the folder that holds plan.parquet"
        )
    plan_path = run_dir / "plan.parquet"
    if not plan_path.is_file():
        raise InputError(
            "run directory has no plan.parquet",
            path=run_dir,
            key="plan.parquet",
            hint="run `culture-probe plan STUDY` (or `run`) first",
        )
    data = RunData(path=run_dir, plan=_read_parquet(plan_path))
    data.responses = _optional_parquet(run_dir / "responses.parquet", data)
    data.reference = _optional_parquet(run_dir / "reference.parquet", data)
    for name in STATS_TABLES:
        frame = _optional_parquet(run_dir / "stats" / f"{name}.parquet", data)
        if frame is not None:
            data.tables[name] = frame
    data.summary = _optional_json(run_dir / "summary.json", data)
    data.manifest = _optional_json(run_dir / "manifest.json", data)
    data.headline = _headline(run_dir, data.summary)
    return data


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise InputError(
            f"cannot read as Parquet: {error}", path=path, hint="re-run the stage that writes it"
        ) from error


def _optional_parquet(path: Path, data: RunData) -> pd.DataFrame | None:
    if not path.is_file():
        data.missing.append(path.relative_to(data.path).as_posix())
        return None
    return _read_parquet(path)


def _optional_json(path: Path, data: RunData) -> dict[str, Any]:
    if not path.is_file():
        data.missing.append(path.relative_to(data.path).as_posix())
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"invalid JSON: {error.msg} (column {error.colno})", path=path, line=error.lineno
        ) from error
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, found {type(value).__name__}", path=path)
    return value


def _headline(run_dir: Path, summary: dict[str, Any]) -> list[str]:
    """The headline: ``summary["headline"]``, else a ``headline.json`` or ``headline.txt`` file."""
    stored = summary.get("headline")
    if isinstance(stored, list):
        return [str(sentence) for sentence in stored]
    for folder in (run_dir, run_dir / "stats"):
        for name in HEADLINE_FILES:
            path = folder / name
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            if name.endswith(".json"):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    raise InputError(
                        f"invalid JSON: {error.msg}", path=path, line=error.lineno
                    ) from error
                return [str(sentence) for sentence in value] if isinstance(value, list) else []
            return [line.strip() for line in text.splitlines() if line.strip()]
    return []
