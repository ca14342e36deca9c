"""What the report reads of a run directory, through :class:`culture_probe.store.RunDirectory`.

A run directory holds ``manifest.json``, ``plan.parquet``, ``responses.parquet``,
``stats/<table>.parquet``, ``summary.json`` and, with human data, ``reference.parquet``. The page
builder needs only the plan; every other part adds sections (``culture-probe report`` itself
refuses a run that was not analysed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.columns import STATS_TABLE_NAMES
from culture_probe.errors import InputError
from culture_probe.store import (
    MANIFEST,
    REFERENCE,
    RESPONSES,
    STATS,
    SUMMARY,
    RunDirectory,
    refuse_link_or_special,
)


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
        headline: The analysis' plain-English sentences (from ``summary.json``).
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


def read_run_data(run_dir: Path) -> RunData:
    """Read a run directory for the report; only ``plan.parquet`` is required.

    Raises:
        InputError: the directory or its plan is missing, or a file cannot be read (naming it).
    """
    refuse_link_or_special(Path(run_dir), folder=True)
    if not Path(run_dir).is_dir():
        raise InputError(
            "is not a run directory", path=run_dir, hint="pass the folder that holds plan.parquet"
        )
    run = RunDirectory(Path(run_dir))
    data = RunData(path=run.path, plan=run.plan())
    data.responses = run.responses() if _present(run, RESPONSES, data) else None
    data.reference = run.reference() if _present(run, REFERENCE, data) else None
    # the registry's tables, each shown by a section; another file in stats/ is not the analysis'
    data.tables = {name: t for name, t in run.stats().items() if name in STATS_TABLE_NAMES}
    if not data.tables:
        data.missing.append(STATS)
    data.summary = run.summary() if _present(run, SUMMARY, data) else {}
    data.manifest = run.manifest() if _present(run, MANIFEST, data) else {}
    stored = data.summary.get("headline")
    data.headline = [str(sentence) for sentence in stored] if isinstance(stored, list) else []
    return data


def _present(run: RunDirectory, name: str, data: RunData) -> bool:
    """Whether the run has ``name``; notes it in ``data.missing`` when it has not."""
    if (run.path / name).is_file():
        return True
    data.missing.append(name)
    return False
