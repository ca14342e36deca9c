"""One run's folder: the only code that reads or writes it (see :mod:`culture_probe.store`)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.atomic import TEMPORARY_SUFFIX, atomic_folder
from culture_probe.columns import RESPONSE_COLUMNS
from culture_probe.errors import CultureProbeError, InputError
from culture_probe.store._chunks import (
    FAILURE,
    SERVER_FAILURE,
    chunk_problem,
    with_later_columns,
)
from culture_probe.store._files import (
    ANSWERS,
    BEFORE_MANIFEST,
    CHUNK_PATTERN,
    CHUNKS,
    DAMAGED_SUFFIX,
    MANIFEST,
    ORPHANED_CHUNKS,
    PLAN,
    REFERENCE,
    REPORT,
    RESPONSES,
    STATS,
    SUMMARY,
    disk_errors,
    read_json,
    read_parquet,
    refuse_link_or_special,
    write_json,
    write_parquet,
)

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
NOT_A_RUN_HINT = "give a folder written by `culture-probe run` or `culture-probe score`"
NOT_ANALYSED_HINT = "run `culture-probe analyze {path}` first"


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
    """One run's folder.

    Create or resume one with :meth:`open`, which refuses to mix two different runs and to write
    into a folder that is not a run; read one with :meth:`existing`. Every file name is in
    :mod:`culture_probe.store._files`, every read and write goes through its helpers.
    """

    path: Path

    # --- finding a run -------------------------------------------------------------------------

    @classmethod
    def existing(cls, path: str | os.PathLike[str], hint: str = NOT_A_RUN_HINT) -> RunDirectory:
        """A run folder that ``culture-probe run`` (or ``score``) wrote: it has a manifest.

        Raises:
            InputError: the path is not a folder, or has no ``manifest.json``.
        """
        folder = Path(path)
        refuse_link_or_special(folder / MANIFEST)
        if not (folder / MANIFEST).is_file():
            raise InputError(f"is not a run directory (no {MANIFEST})", path=folder, hint=hint)
        return cls(folder)

    @classmethod
    def open(cls, path: Path, manifest: dict[str, Any], plan: pd.DataFrame) -> RunDirectory:
        """Create the run directory, or reopen it to resume when its manifest matches.

        A folder with no manifest is adopted only when it holds nothing a user could have put
        there (see :meth:`check_adoptable`); chunks found in it are moved aside to
        ``chunks.orphaned``, never read as this run's answers.
        """
        run = cls(path)
        refuse_link_or_special(path, folder=True)
        if os.path.lexists(path / MANIFEST):
            run._check_same_run(manifest)
            return run
        check_adoptable(path)
        orphaned = run._set_aside_orphaned_chunks()
        with disk_errors(path, "creating"):
            path.mkdir(parents=True, exist_ok=True)
        full = {
            **manifest,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "platform": platform.platform(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        if orphaned is not None:
            full["repairs"] = [_repair(run, orphaned, "chunks with no manifest: not this run's")]
        # The manifest is written last: a folder without one is not yet a run, and a plan written
        # without its manifest (the disk filled up in between) is taken away again.
        try:
            write_parquet(path / PLAN, plan)
            write_json(path / MANIFEST, full)
        except BaseException:
            (path / PLAN).unlink(missing_ok=True)
            raise
        return run

    def _check_same_run(self, manifest: dict[str, Any]) -> None:
        existing = self.manifest()
        for key in ("run_key", "plan_hash"):
            if existing.get(key) != manifest.get(key):
                raise CultureProbeError(
                    f"{self.path} holds a different run (its {key} differs: another study, model "
                    "or design); choose another --out or delete that folder"
                )

    def _set_aside_orphaned_chunks(self) -> Path | None:
        chunks = self.path / CHUNKS
        refuse_link_or_special(chunks, folder=True)
        if not chunks.is_dir():
            return None
        target = _unused_name(self.path / ORPHANED_CHUNKS)
        with disk_errors(target, "setting aside"):
            os.replace(chunks, target)
        return target

    # --- reading -------------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: what was run."""
        return read_json(self.path / MANIFEST, NOT_A_RUN_HINT)

    def plan(self) -> pd.DataFrame:
        """``plan.parquet``: one row per prompt."""
        return read_parquet(self.path / PLAN, "run `culture-probe run STUDY --out` to make it")

    def responses(self) -> pd.DataFrame:
        """``responses.parquet``: one row per prompt, once scoring is complete."""
        return read_parquet(
            self.path / RESPONSES, "the run is not finished; run the same command to resume it"
        )

    def reference(self) -> pd.DataFrame | None:
        """``reference.parquet``, the human answers, or None when the study has none."""
        return self._optional(REFERENCE)

    def answers(self) -> pd.DataFrame | None:
        """``answers.parquet``, the annotated short answers, or None when the study has none."""
        return self._optional(ANSWERS)

    def _optional(self, name: str) -> pd.DataFrame | None:
        path = self.path / name
        refuse_link_or_special(path)
        return read_parquet(path, None) if path.is_file() else None

    def is_analysed(self) -> bool:
        """Whether the analysis finished: ``summary.json`` is written last, after ``stats/``."""
        refuse_link_or_special(self.path / SUMMARY)
        return (self.path / SUMMARY).is_file()

    def summary(self) -> dict[str, Any]:
        """``summary.json``: the study-level results and the headline sentences."""
        return read_json(self.path / SUMMARY, NOT_ANALYSED_HINT.format(path=self.path))

    def stats(self) -> dict[str, pd.DataFrame]:
        """Every ``stats/<name>.parquet`` table, by name (empty before the analysis)."""
        folder = self.path / STATS
        refuse_link_or_special(folder, folder=True)
        if not folder.is_dir():
            return {}
        return {path.stem: read_parquet(path, None) for path in sorted(folder.glob("*.parquet"))}

    def require_analysed(self) -> None:
        """Refuse a run whose analysis has not been written (or did not finish)."""
        if not self.is_analysed():
            raise InputError(
                f"the run was not analysed (no {SUMMARY})",
                path=self.path,
                hint=NOT_ANALYSED_HINT.format(path=self.path),
            )

    @property
    def report_path(self) -> Path:
        """Where the report goes: ``report.html``."""
        return self.path / REPORT

    # --- chunks of results ---------------------------------------------------------------------

    def chunk_paths(self) -> list[Path]:
        folder = self.path / CHUNKS
        refuse_link_or_special(folder, folder=True)
        return sorted(folder.glob(CHUNK_PATTERN))

    def results(self) -> pd.DataFrame:
        """Every prompt's result so far, once each: a model's own outcome over a server failure.

        A prompt whose result the server spoiled (``failure`` is ``server``) and that was asked
        again keeps the later answer; one not yet asked again keeps its failure.
        """
        paths = self.chunk_paths()
        if not paths:
            return pd.DataFrame({column: [] for column in RESPONSE_COLUMNS})
        frame = pd.concat([_read_chunk(path) for path in paths], ignore_index=True)
        # stable sort: the model's own results first, each group in the order they were saved
        order = frame[FAILURE].eq(SERVER_FAILURE).to_numpy().argsort(kind="stable")
        frame = frame.iloc[order].drop_duplicates("prompt_id", keep="first")
        return frame.sort_index().reset_index(drop=True)

    def answered_ids(self) -> set[str]:
        """Prompts that need no more scoring: every result but a server failure."""
        results = self.results()
        return set(results.loc[~results[FAILURE].eq(SERVER_FAILURE), "prompt_id"])

    def set_aside_damaged_chunks(self) -> list[Path]:
        """Rename each chunk that does not read, or holds an invalid row, to ``*.damaged``.

        Its prompts then count as not scored, so the next scoring pass scores them again. The
        manifest lists each repair, so that a reader of the run knows it happened.
        """
        set_aside = []
        for path in self.chunk_paths():
            problem = _chunk_damage(path)
            if problem is None:
                continue
            target = _unused_name(path.with_name(path.name + DAMAGED_SUFFIX))
            with disk_errors(target, "setting aside"):
                os.replace(path, target)
            self._record_repairs([_repair(self, target, problem)])
            set_aside.append(target)
        return set_aside

    def append_chunk(self, results: pd.DataFrame) -> Path:
        """Save one chunk of results atomically, numbered after the existing ones."""
        existing = self.chunk_paths()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        target = self.path / CHUNKS / f"chunk-{number:06d}.parquet"
        write_parquet(target, with_later_columns(results)[list(RESPONSE_COLUMNS)])
        return target

    def remove_stale_temporaries(self) -> None:
        """Temporary files (and the analysis' staging folder) left by a run killed mid-write."""
        for leftover in self._temporaries():
            with disk_errors(leftover, "removing"):
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink(missing_ok=True)

    def _temporaries(self) -> Iterable[Path]:
        yield from self.path.glob(f".*{TEMPORARY_SUFFIX}")
        yield from (self.path / CHUNKS).glob(f".*{TEMPORARY_SUFFIX}")

    # --- writing the stages' outputs -----------------------------------------------------------

    def write_responses(self, responses: pd.DataFrame) -> None:
        """Write ``responses.parquet`` (the scoring stage's output)."""
        write_parquet(self.path / RESPONSES, responses)

    def write_reference(self, reference: pd.DataFrame) -> None:
        write_parquet(self.path / REFERENCE, reference)

    def write_answers(self, answers: pd.DataFrame) -> None:
        write_parquet(self.path / ANSWERS, answers)

    def write_analysis(self, tables: Mapping[str, pd.DataFrame], summary: dict[str, Any]) -> None:
        """Write ``stats/`` and ``summary.json`` as one set, or leave the run as not analysed.

        The tables go to a staging folder that replaces ``stats/`` once all are written; the old
        summary is removed before the swap and the new one written after it, so a run whose
        analysis stopped half-way (a full disk) has no summary and reads as not analysed.
        """
        text = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        stats, summary_path = self.path / STATS, self.path / SUMMARY
        refuse_link_or_special(stats, folder=True)
        refuse_link_or_special(summary_path)
        with disk_errors(stats), atomic_folder(stats) as staging:
            for name, table in tables.items():
                table.to_parquet(staging / f"{name}.parquet", index=False)
            summary_path.unlink(missing_ok=True)
        write_json(summary_path, json.loads(text))

    def record_backend_options(self, options: dict[str, Any]) -> None:
        """Write what the backend reports after scoring (retries, waits) into the manifest.

        The manifest is written before the first prompt is scored; counters such as the openai
        backend's ``retries`` are only known afterwards, and a manifest that says ``retries: 0``
        after a retry happened would be a false record.
        """
        manifest = self.manifest()
        backend = manifest.setdefault("backend", {})
        if backend.get("options") == options:
            return
        backend["options"] = options
        write_json(self.path / MANIFEST, manifest)

    def record_elicitation(self, prompts: dict[str, int], seconds: dict[str, float]) -> None:
        """Write the prompts of each elicitation level, and the wall time spent scoring it.

        The seconds add up over the sessions of a resumed run, so that the manifest holds what
        each level cost in all (``elicitation.<level>.seconds``).
        """
        manifest = self.manifest()
        before = manifest.get("elicitation", {})
        manifest["elicitation"] = {
            level: {
                "prompts": count,
                "seconds": round(
                    float(before.get(level, {}).get("seconds", 0.0)) + seconds.get(level, 0.0), 3
                ),
            }
            for level, count in prompts.items()
        }
        write_json(self.path / MANIFEST, manifest)

    def _record_repairs(self, repairs: list[dict[str, str]]) -> None:
        manifest = self.manifest()
        manifest.setdefault("repairs", []).extend(repairs)
        write_json(self.path / MANIFEST, manifest)


def check_adoptable(path: Path) -> None:
    """Refuse a folder with no manifest that holds anything a run does not write before one.

    A new run may start in a missing or empty folder, or one left by a run that stopped before
    its manifest was written. Anything else (a user's ``report.html``, ``summary.json``, another
    tool's files) is not overwritten.

    Raises:
        InputError: naming the folder and what it holds.
    """
    refuse_link_or_special(path, folder=True)
    if not path.is_dir() or os.path.lexists(path / MANIFEST):
        return
    foreign = sorted(
        entry.name
        for entry in path.iterdir()
        if entry.name not in BEFORE_MANIFEST
        and entry.name != CHUNKS
        and not entry.name.startswith(ORPHANED_CHUNKS)
        and not entry.name.endswith(TEMPORARY_SUFFIX)
    )
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise InputError(
            f"is not empty and is not a run directory (no {MANIFEST}; it holds {shown})",
            path=path,
            hint="give --out a new or empty folder: culture-probe does not write over files it "
            "did not make",
        )


def _repair(run: RunDirectory, set_aside: Path, reason: str) -> dict[str, str]:
    return {
        "set_aside": str(set_aside.relative_to(run.path)),
        "reason": reason[:300],
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _unused_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: a chunk number can be set aside more than once."""
    candidate, number = path, 1
    while os.path.lexists(candidate):
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _chunk_damage(path: Path) -> str | None:
    """Why a chunk must be set aside (does not read, or an invalid row), or None."""
    try:
        frame = _read_chunk(path)
    except InputError as error:
        return error.message
    problem = chunk_problem(frame)
    return f"invalid results: {problem}" if problem else None


def _read_chunk(path: Path) -> pd.DataFrame:
    hint = "run the same command again: it sets the chunk aside and scores its prompts anew"
    try:
        frame = read_parquet(path, hint)
    except InputError as error:
        raise InputError(f"a results chunk {error.message}", path=path, hint=hint) from error
    return with_later_columns(frame)
