"""The run directory: manifest, plan, append-only results in chunks, and the final tables.

A run can be killed at any moment. Each chunk of results is written to a temporary file and renamed into
place, so a chunk is either wholly there or not at all; re-running the same command reads the chunks
back, scores only the prompts that have no result, and no prompt is scored twice.

Layout::

    RUN_DIR/manifest.json        what was run: study and file hashes, model identity, versions, command
    RUN_DIR/plan.parquet         one row per prompt (see culture_probe.columns)
    RUN_DIR/chunks/*.parquet     results as they arrive
    RUN_DIR/responses.parquet    all results in plan order, once scoring is complete
    RUN_DIR/stats/, summary.json, report.html   analysis and report
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.atomic import atomic_write_json, atomic_write_parquet
from culture_probe.columns import RESPONSE_COLUMNS
from culture_probe.errors import CultureProbeError

MANIFEST = "manifest.json"
PLAN = "plan.parquet"
RESPONSES = "responses.parquet"
CHUNKS = "chunks"
VERSIONED_PACKAGES = (
    "culture-probe",
    "torch",
    "transformers",
    "vllm",
    "pandas",
    "numpy",
    "scipy",
    "jinja2",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class RunDirectory:
    """One run's folder. Create it with :meth:`open`, which refuses to mix two different runs."""

    path: Path

    @classmethod
    def open(cls, path: Path, manifest: dict[str, Any], plan: pd.DataFrame) -> RunDirectory:
        """Create the run directory, or reopen it to resume when its manifest matches."""
        run = cls(path)
        if (path / MANIFEST).is_file():
            run._check_same_run(manifest)
            return run
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(path / PLAN, plan)
        full = {
            **manifest,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "platform": platform.platform(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        # The manifest is written last: a folder without one is not yet a run.
        atomic_write_json(path / MANIFEST, full)
        return run

    def _check_same_run(self, manifest: dict[str, Any]) -> None:
        existing = self.manifest()
        for key in ("run_key", "plan_hash"):
            if existing.get(key) != manifest.get(key):
                raise CultureProbeError(
                    f"{self.path} holds a different run (its {key} differs: another study, model "
                    "or design); choose another --out or delete that folder"
                )

    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.path / MANIFEST).read_text())
        return loaded

    def plan(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / PLAN)

    def chunk_paths(self) -> list[Path]:
        return sorted((self.path / CHUNKS).glob("chunk-*.parquet"))

    def scored(self) -> pd.DataFrame:
        """All results written so far, each prompt once."""
        paths = self.chunk_paths()
        if not paths:
            return pd.DataFrame({column: [] for column in RESPONSE_COLUMNS})
        frame = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
        return frame.drop_duplicates("prompt_id", keep="first").reset_index(drop=True)

    def append_chunk(self, results: pd.DataFrame) -> Path:
        """Save one chunk of results atomically, numbered after the existing ones."""
        existing = self.chunk_paths()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        target = self.path / CHUNKS / f"chunk-{number:06d}.parquet"
        atomic_write_parquet(target, results[list(RESPONSE_COLUMNS)])
        return target

    def finalise_responses(self, plan: pd.DataFrame) -> pd.DataFrame:
        """Write responses.parquet in plan order once every prompt has a result."""
        scored = self.scored()
        missing = set(plan["prompt_id"]) - set(scored["prompt_id"])
        if missing:
            raise CultureProbeError(
                f"{len(missing)} prompts have no result yet; run again to resume"
            )
        ordered = plan[["prompt_id"]].merge(scored, on="prompt_id", how="left", validate="1:1")
        atomic_write_parquet(self.path / RESPONSES, ordered)
        return ordered

    def remove_stale_temporaries(self) -> None:
        """Temporary files left by a run killed in the middle of a write."""
        for leftover in self._temporaries():
            leftover.unlink(missing_ok=True)

    def _temporaries(self) -> Iterable[Path]:
        yield from self.path.glob(".*.tmp")
        yield from (self.path / CHUNKS).glob(".*.tmp")
