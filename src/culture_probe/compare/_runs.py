"""Read the runs to compare from their directories: manifest, plan, responses, human reference."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.analysis import probability_matrix, tidy_responses
from culture_probe.errors import InputError
from culture_probe.study import SHORT_ANSWER_SCALE

#: what a run can be given as: its directory, or any object with a ``.path`` to it (a ``Run``)
RunLike = str | os.PathLike[str] | Any


@dataclass(frozen=True)
class ComparedRun:
    """One run as the comparison sees it.

    Attributes:
        label: The model's name in the tables ("SmolLM2-135M-Instruct (hf, float32)").
        path: The run directory.
        manifest: ``manifest.json``.
        tidy: The tidy responses of the choice items (plan joined with responses, ``score``).
        probs: Option probabilities per tidy row, canonical order (NaN rows for refusals).
        reference: Human reference distributions, or None.
    """

    label: str
    path: Path
    manifest: dict[str, Any]
    tidy: pd.DataFrame
    probs: np.ndarray
    reference: pd.DataFrame | None

    def restricted_to(self, prompt_ids: pd.Index) -> ComparedRun:
        """The same run with only the given prompts."""
        keep = self.tidy["prompt_id"].isin(prompt_ids).to_numpy()
        return ComparedRun(
            self.label,
            self.path,
            self.manifest,
            self.tidy.loc[keep].reset_index(drop=True),
            self.probs[keep],
            self.reference,
        )


def run_directory(run: RunLike) -> Path:
    """The directory of a run given as a path or as an object with a ``.path`` attribute."""
    if isinstance(run, str | os.PathLike):
        return Path(run)
    path = getattr(run, "path", None)
    if path is None:
        raise InputError(
            f"cannot compare a {type(run).__name__}: expected a run directory or a run "
            "(an object with a .path to its directory)"
        )
    return Path(path)


def read_run(run: RunLike) -> ComparedRun:
    """Read a run directory written by ``culture-probe run`` (or ``cp.run``).

    Raises:
        InputError: the folder, its manifest, plan or responses are missing or unreadable.
    """
    path = run_directory(run)
    if not path.is_dir():
        raise InputError("is not a run directory", path=path, hint="pass a folder from `run`")
    manifest = _read_manifest(path / "manifest.json")
    plan = _read_parquet(path / "plan.parquet", "the run has no plan; run `culture-probe run`")
    responses = _read_parquet(
        path / "responses.parquet", "the run is not finished; run the same command to resume it"
    )
    choice = plan.loc[plan["scale"] != SHORT_ANSWER_SCALE] if "scale" in plan.columns else plan
    tidy = tidy_responses(choice, responses)
    reference_path = path / "reference.parquet"
    reference = _read_parquet(reference_path, "") if reference_path.is_file() else None
    return ComparedRun(
        model_label(manifest, path), path, manifest, tidy, probability_matrix(tidy), reference
    )


def model_label(manifest: dict[str, Any], path: Path) -> str:
    """A readable name for the model of a run: model, backend and dtype from its manifest."""
    backend = manifest.get("backend")
    if not isinstance(backend, dict) or "model" not in backend:
        return path.name
    model = str(backend["model"]).rstrip("/").split("/")[-1]
    details = [str(backend[key]) for key in ("backend", "dtype") if backend.get(key)]
    return f"{model} ({', '.join(details)})" if details else model


def unique_labels(labels: list[str], paths: list[Path]) -> list[str]:
    """The labels, with the run folder's name added where two runs would otherwise share one."""
    return [
        f"{label} [{path.name}]" if labels.count(label) > 1 else label
        for label, path in zip(labels, paths, strict=True)
    ]


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(
            "run directory has no manifest.json",
            path=path.parent,
            key="manifest.json",
            hint="pass a folder written by `culture-probe run`",
        )
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"invalid JSON: {error.msg}", path=path, line=error.lineno) from error
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, found {type(value).__name__}", path=path)
    return value


def _read_parquet(path: Path, hint: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"missing {path.name}", path=path.parent, key=path.name, hint=hint or None)
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise InputError(f"cannot read as Parquet: {error}", path=path) from error
