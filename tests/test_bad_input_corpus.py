"""The bad-input corpus: every ``tests/bad_inputs/<case>/case.yaml`` run through the command line.

A case is a folder holding the input files of one bad input and ``case.yaml``::

    command: [run, "{case}/study.yaml", "--out", "{out}"]   # culture-probe arguments
    exit_code: 2
    message: "study.yaml.*line 4.*'axes'"                   # regex the combined output must match

Placeholders: ``{case}`` is a copy of the case folder, ``{out}`` a fresh empty folder, ``{repo}`` the
repository. Each case asserts the exit code,
the message, that no traceback is shown, that ``{out}`` holds afterwards what it held before
(nothing, unless the case sets it up) and that the case's own files are unchanged.

Optional keys set up what a case needs, for real rather than mocked:

- ``disk: {size: 8k, read_only: false}``: ``{out}`` is a tmpfs of that size (read-only if asked)
  in a private mount namespace (``unshare``), so the kernel answers ENOSPC or EROFS (left out of
  the collection where the machine cannot create one, see ``conftest.py``);
- ``file_size_limit: 4096``: the command runs with RLIMIT_FSIZE at that many bytes (EFBIG);
- ``hold_lock: "{out}"``: another process holds that run directory's lock while the command runs;
  ``{holder_pid}`` in ``message`` is its PID.

Cases with ``disk`` or ``file_size_limit`` run the command in a subprocess; the rest in this process
through typer's test runner, which is much faster.
"""

from __future__ import annotations

import hashlib
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from culture_probe.cli import app

REPO = Path(__file__).resolve().parents[1]
CASES = sorted((Path(__file__).parent / "bad_inputs").glob("*/case.yaml"))
CASE_KEYS = {"command", "exit_code", "message", "disk", "file_size_limit", "hold_lock"}
#: printed after the command inside the mount namespace, followed by what the tmpfs holds
LEFT_MARKER = "@@left-in-out@@"


@dataclass
class Case:
    """One case.yaml, read and checked."""

    folder: Path
    command: list[str]
    exit_code: int
    message: str
    disk: dict[str, Any] | None = None
    file_size_limit: int | None = None
    hold_lock: str | None = None
    placeholders: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Case:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        unknown = set(raw) - CASE_KEYS
        assert not unknown, f"{path}: unknown keys {sorted(unknown)}; expected {sorted(CASE_KEYS)}"
        return cls(path.parent, [str(part) for part in raw["command"]], **_options(raw))

    def fill(self, text: str) -> str:
        for name, value in self.placeholders.items():
            text = text.replace("{" + name + "}", value)
        return text

    def arguments(self) -> list[str]:
        return [self.fill(part) for part in self.command]

    def message_pattern(self) -> str:
        # placeholder values are paths and numbers: matched literally inside the case's regex
        escaped = {name: re.escape(value) for name, value in self.placeholders.items()}
        return Case(self.folder, [], 0, "", placeholders=escaped).fill(self.message)


def _options(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: raw[key] for key in CASE_KEYS - {"command"} if key in raw}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a hash of its content."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<folder>"
        )
        for path in sorted(folder.rglob("*"))
    }


def _case_param(path: Path) -> Any:
    needs_disk = "disk" in yaml.safe_load(path.read_text(encoding="utf-8"))
    marks = [pytest.mark.mount_namespace] if needs_disk else []
    return pytest.param(path, marks=marks, id=path.parent.name)


@pytest.mark.parametrize("case_file", [_case_param(path) for path in CASES])
def test_bad_input_gets_one_clear_message_and_writes_nothing(
    case_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = Case.load(case_file)
    copy = shutil.copytree(case.folder, tmp_path / case.folder.name, symlinks=True)
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    out.mkdir()
    cwd.mkdir()  # a command that ignored --out would write reports/ here, and be caught
    case.placeholders = {
        "case": str(copy),
        "out": str(out),
        "repo": str(REPO),
    }
    case_files = snapshot(copy)
    with holding_lock(case) as holder_pid:
        case.placeholders["holder_pid"] = str(holder_pid)
        out_before = snapshot(out)
        exit_code, output, out_after = run_case(case, out, cwd, monkeypatch)

    assert exit_code == case.exit_code, output
    assert re.search(case.message_pattern(), output, re.DOTALL), output
    assert "Traceback" not in output, output
    assert out_after == out_before, f"{out} was written to: {out_after}"
    assert snapshot(copy) == case_files, "the case's own files were changed"
    assert snapshot(cwd) == {}, "the command wrote into the working folder"


def run_case(
    case: Case, out: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, dict[str, str]]:
    """Run the command the fastest way the case allows: exit code, output, what {out} holds."""
    if case.disk is not None:
        return run_on_tmpfs(case, out, cwd)
    if case.file_size_limit is not None:
        limit = case.file_size_limit
        completed = run_cli(case.arguments(), cwd, lambda: _limit_file_size(limit))
        return completed.returncode, completed.stdout + completed.stderr, snapshot(out)
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, case.arguments(), env={"COLUMNS": "200"})
    return result.exit_code, result.output, snapshot(out)


def run_cli(
    arguments: list[str], cwd: Path, preexec: Any = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    command = [*prefix, sys.executable, "-m", "culture_probe.cli", *arguments]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
        env=_environment(),
    )


def _environment() -> dict[str, str]:
    import os

    return {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


#: mounts a tmpfs on $1 with options $2, runs the rest, then lists what the tmpfs holds
TMPFS_SCRIPT = (
    'out="$1"; options="$2"; shift 2; '
    'mount -t tmpfs -o "$options" tmpfs "$out" || exit 97; '
    '"$@"; status=$?; '
    f'echo "{LEFT_MARKER}"; ls -A "$out"; exit $status'
)


def run_on_tmpfs(case: Case, out: Path, cwd: Path) -> tuple[int, str, dict[str, str]]:
    """The command with {out} on a tiny tmpfs, in a mount namespace of its own."""
    assert case.disk is not None
    options = f"size={case.disk['size']}" + (",ro" if case.disk.get("read_only") else "")
    prefix = ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", TMPFS_SCRIPT)
    completed = run_cli(case.arguments(), cwd, prefix=(*prefix, "sh", str(out), options))
    assert completed.returncode != 97, completed.stderr
    output, _, left = completed.stdout.partition(LEFT_MARKER)
    listed = {name: "?" for name in left.split()}  # names only: the mount is gone by now
    return completed.returncode, output + completed.stderr, listed


HOLDER = """
import sys, time
from pathlib import Path
from culture_probe.store import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(300)
"""


@contextmanager
def holding_lock(case: Case) -> Iterator[int | None]:
    """Another process holding the lock of ``case.hold_lock`` while the case runs."""
    if case.hold_lock is None:
        yield None
        return
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, case.fill(case.hold_lock)],
        stdout=subprocess.PIPE,
        text=True,
        env=_environment(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_failing_command_shows_a_traceback_only_with_debug(tmp_path: Path) -> None:
    """The real script, in a process of its own: the message alone, or the traceback with it."""
    study_folder = REPO / "taxonomy"
    plain = run_cli(["run", str(study_folder), "--out", str(tmp_path / "a")], tmp_path)
    assert plain.returncode == 2
    assert plain.stderr.startswith("error: ") and "is a folder" in plain.stderr
    assert "Traceback" not in plain.stdout + plain.stderr

    debug = run_cli(["--debug", "run", str(study_folder), "--out", str(tmp_path / "b")], tmp_path)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "InputError" in debug.stderr and "is a folder" in debug.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_every_case_folder_has_a_case_file() -> None:
    folders = [path for path in (Path(__file__).parent / "bad_inputs").iterdir() if path.is_dir()]
    assert sorted(folders) == sorted(case.parent for case in CASES)
    assert len(CASES) >= 10
