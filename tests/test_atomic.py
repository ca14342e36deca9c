"""The atomic write: whole or nothing, no temporary file left, permissions as for any new file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from culture_probe.atomic import (
    atomic_folder,
    atomic_output,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
)
from culture_probe.store import write_parquet


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_replaces_the_old_content_and_leaves_only_the_target(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_a_failing_writer_keeps_the_old_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.parquet"
    target.write_bytes(b"old")

    def half_write(temporary: Path) -> None:
        temporary.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, half_write)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_an_interrupt_leaves_no_temporary(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "new.txt") as temporary:
        temporary.write_text("partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_unserialisable_json_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("nan")})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask_like_open(tmp_path: Path, umask: int, expected: int) -> None:
    # In a child process: the umask is process-wide and other tests run in this one.
    script = (
        "import os, sys; from pathlib import Path; from culture_probe.atomic import "
        "atomic_write_bytes, atomic_folder\n"
        f"os.umask({umask})\n"
        "folder = Path(sys.argv[1])\n"
        "atomic_write_bytes(folder / 'atomic', b'x')\n"
        "(folder / 'plain').write_bytes(b'x')\n"
        "with atomic_folder(folder / 'study') as staging:\n"
        "    (staging / 'study.yaml').write_text('x')\n"
        "(folder / 'plain_dir').mkdir()\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=environment)
    assert _mode(tmp_path / "atomic") == _mode(tmp_path / "plain") == expected
    assert _mode(tmp_path / "study") == _mode(tmp_path / "plain_dir") == expected | 0o111 & ~umask
    assert _mode(tmp_path / "study" / "study.yaml") == expected


def test_parquet_round_trips(tmp_path: Path) -> None:
    frame = pd.DataFrame({"item": ["a", "b"], "share": [0.25, 0.75]})
    write_parquet(tmp_path / "nested" / "t.parquet", frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "nested" / "t.parquet"), frame)


def test_folder_replaces_an_existing_folder_whole(tmp_path: Path) -> None:
    out = tmp_path / "study"
    out.mkdir()
    (out / "old.yaml").write_text("old")
    with atomic_folder(out) as staging:
        (staging / "new.yaml").write_text("new")
        assert not (out / "new.yaml").exists()  # nothing visible until the block completes
    assert [p.name for p in out.iterdir()] == ["new.yaml"]
    assert [p.name for p in tmp_path.iterdir()] == ["study"]


def test_a_failing_folder_keeps_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "study"
    out.mkdir()
    (out / "old.yaml").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(out) as staging:
        (staging / "new.yaml").write_text("new")
        raise RuntimeError("import failed half way")
    assert [p.name for p in out.iterdir()] == ["old.yaml"]
    assert [p.name for p in tmp_path.iterdir()] == ["study"]


def test_a_writer_may_replace_the_temporary_file(tmp_path: Path) -> None:
    """A compiler's ``-o`` unlinks and recreates its output; the result is still moved in place."""
    target = tmp_path / "lib.so"

    def recreate(temporary: Path) -> None:
        temporary.unlink()
        temporary.write_bytes(b"built")

    atomic_write(target, recreate)
    assert target.read_bytes() == b"built"
    assert [p.name for p in tmp_path.iterdir()] == ["lib.so"]
