"""The run directory: the only code that reads or writes a run folder.

A run can be killed at any moment. Each chunk of results is written to a temporary file and renamed into
place, so a chunk is either wholly there or not at all; re-running the same command reads the chunks
back, scores only the prompts that have no result, and no prompt is scored twice.

Layout (the names are declared once, in :mod:`culture_probe.store._files`)::

    RUN_DIR/manifest.json        what was run: study and file hashes, model identity, versions, command
    RUN_DIR/plan.parquet         one row per prompt (see culture_probe.columns)
    RUN_DIR/chunks/*.parquet     results as they arrive
    RUN_DIR/responses.parquet    all results in plan order, once scoring is complete
    RUN_DIR/reference.parquet, answers.parquet   the study's human data, where it has some
    RUN_DIR/stats/, summary.json the analysis, written as one set (summary.json last)
    RUN_DIR/report.html          the report
    RUN_DIR/.lock                held (flock) by the process writing to the run, with its PID

Every file is opened without following a symbolic link and must be a regular file. A chunk that
no longer reads (a disk that filled up, a copy cut short), or holds probabilities that are not a
distribution, is renamed to ``chunk-*.parquet.damaged`` by
:meth:`RunDirectory.set_aside_damaged_chunks`, listed in the manifest under ``repairs``, and its
prompts are scored again.
"""

from culture_probe.store._chunks import (
    FAILURE,
    SERVER_FAILURE,
    SUM_TOLERANCE,
    distribution_problem,
    first_invalid_probabilities,
)
from culture_probe.store._files import (
    ANSWERS,
    CHUNKS,
    DAMAGED_SUFFIX,
    LOCK,
    MANIFEST,
    ORPHANED_CHUNKS,
    PLAN,
    REFERENCE,
    REPORT,
    RESPONSES,
    STATS,
    SUMMARY,
    disk_errors,
    refuse_link_or_special,
    write_parquet,
)
from culture_probe.store._lock import run_lock
from culture_probe.store._run import RunDirectory, check_adoptable, package_versions

#: the name the command line's ``plan --out`` imports; the same function as :func:`write_parquet`
atomic_write_parquet = write_parquet

__all__ = [
    "ANSWERS",
    "CHUNKS",
    "DAMAGED_SUFFIX",
    "FAILURE",
    "LOCK",
    "MANIFEST",
    "ORPHANED_CHUNKS",
    "PLAN",
    "REFERENCE",
    "REPORT",
    "RESPONSES",
    "SERVER_FAILURE",
    "STATS",
    "SUMMARY",
    "SUM_TOLERANCE",
    "RunDirectory",
    "atomic_write_parquet",
    "check_adoptable",
    "disk_errors",
    "distribution_problem",
    "first_invalid_probabilities",
    "package_versions",
    "refuse_link_or_special",
    "run_lock",
    "write_parquet",
]
