"""Analyse a run directory: read the plan and the responses, write ``stats/`` and ``summary.json``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from culture_probe.analysis._analyze import AnalysisResult, analyze
from culture_probe.analysis._short_answer import add_short_answers
from culture_probe.analysis._tidy import tidy_responses
from culture_probe.atomic import atomic_write_json, atomic_write_parquet
from culture_probe.errors import InputError
from culture_probe.study import SHORT_ANSWER_SCALE

STATS_DIR = "stats"
SUMMARY_FILE = "summary.json"


def analyze_run(
    run_dir: Path, *, n_bootstrap: int = 1000, n_permutations: int = 999, seed: int = 0
) -> AnalysisResult:
    """Analyse ``RUN_DIR/plan.parquet`` and ``responses.parquet`` (and ``reference.parquet``).

    Writes ``RUN_DIR/stats/<table>.parquet`` and ``RUN_DIR/summary.json`` (the summary with the
    headline sentences under ``"headline"``). Everything is computed before anything is written,
    and every file is written to a temporary name and renamed, so a failure leaves the previous
    results intact.

    Example:
        >>> result = analyze_run(Path("reports/values/run-1"))  # doctest: +SKIP
        >>> print("\\n".join(result.headline))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    plan = _read(run_dir / "plan.parquet", "run the plan stage first: culture-probe plan STUDY")
    responses = _read(run_dir / "responses.parquet", "score the plan first: culture-probe score")
    reference_path = run_dir / "reference.parquet"
    reference = _read(reference_path, "") if reference_path.exists() else None
    # Short-answer items have no options to decompose: they get a match-rate table of their own.
    written = plan["scale"].eq(SHORT_ANSWER_SCALE) if "scale" in plan.columns else None
    choice = plan.loc[~written] if written is not None else plan
    result = None
    if len(choice) or written is None or not written.any():
        result = analyze(
            tidy_responses(choice, responses),
            reference,
            n_bootstrap=n_bootstrap,
            n_permutations=n_permutations,
            seed=seed,
        )
    if written is not None and written.any():
        result = add_short_answers(result, plan.loc[written], responses, n_bootstrap, seed)
    assert result is not None  # the plan has choice items, short-answer items, or both
    write_result(result, run_dir)
    return result


def write_result(result: AnalysisResult, run_dir: Path) -> None:
    """Write the tables and the summary of ``result`` into ``run_dir`` atomically per file."""
    stats_dir = Path(run_dir) / STATS_DIR
    for name, table in result.tables.items():
        atomic_write_parquet(stats_dir / f"{name}.parquet", table)
    # The summary goes last, after every table it describes.
    summary = {**result.summary, "headline": result.headline}
    atomic_write_json(Path(run_dir) / SUMMARY_FILE, summary)


def _read(path: Path, hint: str) -> pd.DataFrame:
    if not path.exists():
        raise InputError("file not found", path=path, hint=hint or None)
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise InputError(f"not a readable parquet file ({error})", path=path) from error
