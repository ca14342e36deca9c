"""Ending the CLI's process without the interpreter's teardown keeps what Python's exit promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ENDS = """
import atexit, sys, threading, time
from pathlib import Path
from culture_probe._exit import end_process

def late_write():
    time.sleep(0.3)
    Path(sys.argv[1]).write_text("written by a thread")

threading.Thread(target=late_write).start()
atexit.register(lambda: print("exit handler ran"))
print("buffered output", end="")
sys.stderr.write("error output")
end_process(eval(sys.argv[2]))
"""


@pytest.mark.parametrize(
    ("code", "status", "stderr_tail"),
    [
        ("0", 0, ""),
        ("None", 0, ""),
        ("3", 3, ""),
        ("'stopped: bad input'", 1, "stopped: bad input"),
    ],
)
def test_the_process_ends_with_its_code_after_threads_handlers_and_output(
    tmp_path: Path, code: str, status: int, stderr_tail: str
) -> None:
    target = tmp_path / "late.txt"
    done = subprocess.run(
        [sys.executable, "-c", ENDS, str(target), code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == status
    assert done.stdout == "buffered outputexit handler ran\n"
    assert done.stderr.startswith("error output")
    assert done.stderr.rstrip().endswith(stderr_tail)
    assert target.read_text() == "written by a thread"
