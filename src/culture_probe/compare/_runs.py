"""Read the runs to compare from their directories: manifest, plan, responses, human reference."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.analysis import probability_matrix, tidy_responses
from culture_probe.errors import InputError
from culture_probe.store import RESPONSES, RunDirectory, first_invalid_probabilities
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
        InputError: the folder, its manifest, plan or responses are missing or unreadable, or a
            response's probabilities are not a distribution (NaN, negative, above 1); the message
            names the run folder and the file.
    """
    path = run_directory(run)
    if not path.is_dir():
        raise InputError("is not a run directory", path=path, hint="pass a folder from `run`")
    folder = RunDirectory.existing(path, hint="pass a folder written by `culture-probe run`")
    manifest, plan, responses = folder.manifest(), folder.plan(), folder.responses()
    _check_probabilities(responses, folder)
    choice = plan.loc[plan["scale"] != SHORT_ANSWER_SCALE] if "scale" in plan.columns else plan
    tidy = tidy_responses(choice, responses)
    return ComparedRun(
        model_label(manifest, path),
        path,
        manifest,
        tidy,
        probability_matrix(tidy),
        folder.reference(),
    )


def _check_probabilities(responses: pd.DataFrame, folder: RunDirectory) -> None:
    """Refuse responses whose probabilities are not a distribution, naming the run and the row."""
    found = first_invalid_probabilities(responses["probs"]) if "probs" in responses else None
    if found is None:
        return
    row, reason = found
    raise InputError(
        f"row {row} (prompt {responses['prompt_id'].iat[row]}): {reason}; expected "
        "probabilities in [0, 1] that sum to 1",
        path=folder.path / RESPONSES,
        key="probs",
        hint=f"the run {folder.path} was changed after it was scored: score it again into a new "
        "folder",
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
    """The labels, with the run folder added where two runs would otherwise share one.

    The folder's name where that tells them apart, else its whole path.
    """
    names = [path.name for path in paths]
    return [
        label
        if labels.count(label) == 1
        else f"{label} [{path.name if names.count(path.name) == 1 else path}]"
        for label, path in zip(labels, paths, strict=True)
    ]
