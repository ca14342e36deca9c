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
    RUN_DIR/.lock                held (flock) by the process writing to the run, with its PID

A chunk that no longer reads (a disk that filled up, a copy cut short) is renamed to
``chunk-*.parquet.damaged`` by :meth:`RunDirectory.set_aside_damaged_chunks`, listed in the
manifest under ``repairs``, and its prompts are scored again.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.atomic import atomic_write_json as _atomic_write_json
from culture_probe.atomic import atomic_write_parquet as _atomic_write_parquet
from culture_probe.columns import RESPONSE_COLUMNS
from culture_probe.errors import (
    CultureProbeError,
    InputError,
    RunDirectoryLocked,
    StorageError,
)

MANIFEST = "manifest.json"
PLAN = "plan.parquet"
RESPONSES = "responses.parquet"
CHUNKS = "chunks"
LOCK = ".lock"
DAMAGED_SUFFIX = ".damaged"
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


@contextmanager
def disk_errors(path: Path, doing: str = "writing") -> Iterator[None]:
    """Turn the disk's OSError (full, read-only, not permitted) into a :class:`StorageError`."""
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        raise StorageError.from_os_error(error, path, doing) from error


def atomic_write_json(path: Path, payload: Any) -> None:
    """:func:`culture_probe.atomic.atomic_write_json`, with the disk's errors explained."""
    with disk_errors(path):
        _atomic_write_json(path, payload)


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """:func:`culture_probe.atomic.atomic_write_parquet`, with the disk's errors explained."""
    with disk_errors(path):
        _atomic_write_parquet(path, frame)


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
        with disk_errors(path, "creating"):
            path.mkdir(parents=True, exist_ok=True)
        full = {
            **manifest,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "platform": platform.platform(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        # The manifest is written last: a folder without one is not yet a run, and a plan written
        # without its manifest (the disk filled up in between) is taken away again.
        try:
            atomic_write_parquet(path / PLAN, plan)
            atomic_write_json(path / MANIFEST, full)
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

    def manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        with disk_errors(path, "reading"):
            text = path.read_text(encoding="utf-8")
        try:
            loaded: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(
                f"not valid JSON ({error.msg})",
                path=path,
                line=error.lineno,
                hint="restore the file, or delete the run folder and run again",
            ) from error
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
        frame = pd.concat([_read_chunk(path) for path in paths], ignore_index=True)
        return frame.drop_duplicates("prompt_id", keep="first").reset_index(drop=True)

    def set_aside_damaged_chunks(self) -> list[Path]:
        """Rename each chunk that does not read to ``*.damaged``; returns the new names.

        Its prompts then count as not scored, so the next scoring pass scores them again. The
        manifest lists each repair, so that a reader of the run knows it happened.
        """
        set_aside = []
        for path in self.chunk_paths():
            try:
                pd.read_parquet(path)
            except Exception as error:  # pyarrow raises several types for a damaged file
                target = _unused_name(path.with_name(path.name + DAMAGED_SUFFIX))
                with disk_errors(target, "setting aside"):
                    os.replace(path, target)
                self._record_repair(target, error)
                set_aside.append(target)
        return set_aside

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
        atomic_write_json(self.path / MANIFEST, manifest)

    def _record_repair(self, set_aside: Path, reason: Exception) -> None:
        manifest = self.manifest()
        repairs = manifest.setdefault("repairs", [])
        repairs.append(
            {
                "set_aside": str(set_aside.relative_to(self.path)),
                "reason": f"{type(reason).__name__}: {reason}"[:300],
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        atomic_write_json(self.path / MANIFEST, manifest)

    def append_chunk(self, results: pd.DataFrame) -> Path:
        """Save one chunk of results atomically, numbered after the existing ones."""
        existing = self.chunk_paths()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 1
        target = self.path / CHUNKS / f"chunk-{number:06d}.parquet"
        atomic_write_parquet(target, results[list(RESPONSE_COLUMNS)])
        return target

    def write_responses(self, plan: pd.DataFrame) -> pd.DataFrame:
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
            with disk_errors(leftover, "removing"):
                leftover.unlink(missing_ok=True)

    def _temporaries(self) -> Iterable[Path]:
        yield from self.path.glob(".*.tmp")
        yield from (self.path / CHUNKS).glob(".*.tmp")


def _unused_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: a chunk number can be set aside more than once."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _read_chunk(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise InputError(
            f"a results chunk does not read ({error})",
            path=path,
            hint="run the same command again: it sets the chunk aside and scores its prompts anew",
        ) from error


#: run directories this process holds the lock of, with how many holders each (re-entrant)
_HELD_LOCKS: dict[Path, int] = {}


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``RUN_DIR/.lock`` while writing to a run: a second process is refused with our PID.

    The lock is ``flock``: the kernel drops it when the process ends, however it ends, so a
    ``kill -9`` leaves no stale lock. It is re-entrant within one process (the pipeline holds it
    across score, analyse and report, each of which takes it again). A folder that holds nothing
    but the lock when it is released, because the run failed before writing anything, is left as
    it was found.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "run"
        >>> with run_lock(folder):
        ...     (folder / LOCK).read_text() == str(os.getpid())
        True
        >>> folder.exists()  # nothing was written: the folder is gone again
        False
    """
    key = Path(run_dir).resolve()
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key] -= 1
        return
    created = not key.exists()
    handle = _acquire(Path(run_dir))
    _HELD_LOCKS[key] = 1
    try:
        yield
    finally:
        del _HELD_LOCKS[key]
        _release(handle, Path(run_dir), created)


def _acquire(run_dir: Path) -> int:
    path = run_dir / LOCK
    with disk_errors(run_dir, "creating"):
        run_dir.mkdir(parents=True, exist_ok=True)
    while True:
        with disk_errors(path, "locking"):
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise RunDirectoryLocked(
                f"{run_dir} is in use by another process (PID {holder}), which holds {path}; "
                "wait for it to finish, or stop it, then run the same command again"
            ) from None
        # The holder before us may have removed the file after we opened it: lock the new one.
        if _same_file(handle, path):
            break
        os.close(handle)
    pid = str(os.getpid()).encode()
    os.ftruncate(handle, 0)
    os.pwrite(handle, pid, 0)
    return handle


def _same_file(handle: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _release(handle: int, run_dir: Path, created: bool) -> None:
    try:
        if _holds_only_the_lock(run_dir):
            # Still locked while we remove it, so no other process can be using this file.
            (run_dir / LOCK).unlink(missing_ok=True)
            if created:
                run_dir.rmdir()
        else:
            os.ftruncate(handle, 0)
    except OSError:
        pass  # leaving an empty lock file behind is harmless; the run's own error matters more
    finally:
        os.close(handle)


def _holds_only_the_lock(run_dir: Path) -> bool:
    return [entry.name for entry in run_dir.iterdir()] == [LOCK]
