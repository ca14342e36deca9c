"""A disk that fills up while a run scores and analyses: a real ENOSPC from a tiny tmpfs.

The run directory is a tmpfs mounted in a private user and mount namespace (``unshare``), so the
kernel itself refuses the writes. The script below scores a small slice on the embedded model on a
40 KiB disk, which fills after a few chunks; then the disk grows (``mount -o remount``) and the same
call resumes; then the disk is shrunk to what the run uses, so the analysis finds no room; then it
grows again and the analysis and the report are written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: a private user and mount namespace, in which this user may mount a tmpfs
NAMESPACE = ("unshare", "--user", "--map-root-user", "--mount")

SCRIPT = r"""
import json, os, subprocess, sys
from pathlib import Path
from culture_probe.backends import create_backend
from culture_probe.errors import StorageError
from culture_probe.runner import PlanFilter, RunSettings, run_study

out, study = Path(sys.argv[1]), Path(sys.argv[2])
report = {}

def mount(options):
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(out)], check=True)

def files():
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())

def attempt(name, **stages):
    try:
        run_study(settings, backend=backend, bootstrap=100, **stages)
        report[name] = {"error": None, "files": files()}
    except StorageError as error:
        report[name] = {"error": str(error), "files": files()}

backend = create_backend("hf", model="embedded", dtype="float32")
settings = RunSettings(
    study=study, out=out, filters=PlanFilter(("family_importance",), ("JP",)), chunk_size=6
)
mount("size=40k")
attempt("scoring on a full disk", analyse=False)
subprocess.run(["mount", "-o", "remount,size=8m", str(out)], check=True)
attempt("scoring resumed", analyse=False)
used = os.statvfs(out)
used_kib = (used.f_blocks - used.f_bfree) * used.f_frsize // 1024
subprocess.run(["mount", "-o", f"remount,size={used_kib + 8}k", str(out)], check=True)
attempt("analysis on a full disk")
subprocess.run(["mount", "-o", "remount,size=8m", str(out)], check=True)
attempt("analysis after room was made")
print(json.dumps(report))
"""


@pytest.mark.slow
@pytest.mark.mount_namespace
def test_a_full_disk_stops_the_run_with_a_message_and_the_same_call_resumes(
    tmp_path: Path, repo: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    completed = subprocess.run(
        [
            *NAMESPACE,
            sys.executable,
            "-c",
            SCRIPT,
            str(out),
            str(repo / "taxonomy" / "values.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    full = report["scoring on a full disk"]
    assert "no space left on the device (free some space" in full["error"]
    chunks = [name for name in full["files"] if name.startswith("chunks/")]
    assert 1 <= len(chunks) < 4  # 24 prompts in chunks of 6: some saved, not all
    assert "responses.parquet" not in full["files"]  # nothing claims to be complete
    assert not [name for name in full["files"] if name.endswith(".tmp")]  # nothing half-written

    resumed = report["scoring resumed"]
    assert resumed["error"] is None and "responses.parquet" in resumed["files"]
    assert len([name for name in resumed["files"] if name.startswith("chunks/")]) == 4

    analysis = report["analysis on a full disk"]
    assert "no space left on the device" in analysis["error"]
    assert "summary.json" not in analysis["files"]
    assert not [name for name in analysis["files"] if name.endswith(".tmp")]

    final = report["analysis after room was made"]
    assert final["error"] is None
    assert {"summary.json", "report.html", "stats/item_stats.parquet"} <= set(final["files"])
