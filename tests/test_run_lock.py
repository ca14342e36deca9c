"""The run directory lock: one writer at a time, refused with its PID, gone with its process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from culture_probe.errors import RunDirectoryLocked
from culture_probe.store import LOCK, RunDirectory, run_lock

HOLDER = """
import sys, time
from pathlib import Path
from culture_probe.store import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(300)
"""


def hold(run_dir: Path) -> subprocess.Popen[str]:
    """A second process that takes the lock and keeps it until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "culture_probe.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run directory with a manifest and a plan (nothing scored)."""
    plan = pd.DataFrame({"prompt_id": ["a", "b"]})
    return RunDirectory.open(tmp_path / "run", {"run_key": "k", "plan_hash": "h"}, plan).path


def test_a_second_process_is_refused_with_the_pid_of_the_first(run_dir: Path) -> None:
    holder = hold(run_dir)
    try:
        assert (run_dir / LOCK).read_text() == str(holder.pid)
        before = sorted(path.name for path in run_dir.iterdir())
        refused = cli("analyze", str(run_dir))
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 2, refused.stderr
    assert f"in use by another process (PID {holder.pid})" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert sorted(path.name for path in run_dir.iterdir()) == before


def test_a_killed_holder_leaves_no_stale_lock(run_dir: Path) -> None:
    holder = hold(run_dir)
    with pytest.raises(RunDirectoryLocked, match=f"PID {holder.pid}"), run_lock(run_dir):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # the kernel dropped the lock with the process; the file is still there, and no obstacle
    assert (run_dir / LOCK).exists()
    with run_lock(run_dir):
        assert (run_dir / LOCK).read_text() == str(os.getpid())
    assert (run_dir / LOCK).read_text() == ""  # released: no PID claims it any more


def test_the_lock_is_reentrant_within_one_process(run_dir: Path) -> None:
    with run_lock(run_dir), run_lock(run_dir):
        pass
    with run_lock(run_dir):  # still free after the nested release
        pass


def test_a_run_that_wrote_nothing_leaves_no_folder_behind(tmp_path: Path) -> None:
    target = tmp_path / "never"
    with pytest.raises(RuntimeError), run_lock(target):
        assert (target / LOCK).is_file()
        raise RuntimeError("the run failed before its first write")
    assert not target.exists()
    kept = tmp_path / "given"
    kept.mkdir()
    with run_lock(kept):
        pass
    assert kept.is_dir() and not any(kept.iterdir())  # a folder the user made stays, empty


def test_two_runs_on_one_folder_the_second_is_refused_at_once(tmp_path: Path, repo: Path) -> None:
    out = tmp_path / "run"
    study = str(repo / "taxonomy" / "values.yaml")
    arguments = ["run", study, "--items", "family_importance", "--out", str(out)]
    first = subprocess.Popen(
        [sys.executable, "-m", "culture_probe.cli", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # the first takes the lock before it loads the model
        deadline = time.monotonic() + 120
        while not (out / LOCK).is_file() or (out / LOCK).read_text() != str(first.pid):
            assert first.poll() is None, "the first run ended before taking the lock"
            assert time.monotonic() < deadline, "the first run took no lock"
            time.sleep(0.02)
        second = cli(*arguments)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2, second.stderr
    assert f"(PID {first.pid})" in second.stderr and "Traceback" not in second.stderr
