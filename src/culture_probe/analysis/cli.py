"""Analyse a run directory: read the plan and the responses, write ``stats/`` and ``summary.json``."""

from __future__ import annotations

from pathlib import Path

from culture_probe.analysis._analyze import AnalysisResult, analyze
from culture_probe.analysis._short_answer import add_short_answers
from culture_probe.analysis._tidy import tidy_responses
from culture_probe.store import RunDirectory
from culture_probe.study import SHORT_ANSWER_SCALE


def analyze_run(
    run_dir: Path, *, n_bootstrap: int = 1000, n_permutations: int = 999, seed: int = 0
) -> AnalysisResult:
    """Analyse a run's plan and responses (and its human reference, where it has one).

    Writes ``RUN_DIR/stats/<table>.parquet`` and ``RUN_DIR/summary.json`` (the summary with the
    headline sentences under ``"headline"``) as one set: everything is computed before anything
    is written, and a failure while writing leaves the run without a summary, so that it reads as
    not analysed (see :meth:`culture_probe.store.RunDirectory.write_analysis`).

    Example:
        >>> result = analyze_run(Path("reports/values/run-1"))  # doctest: +SKIP
        >>> print("\\n".join(result.headline))  # doctest: +SKIP
    """
    run = RunDirectory(Path(run_dir))
    plan, responses, reference = run.plan(), run.responses(), run.reference()
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
    run.write_analysis(result.tables, {**result.summary, "headline": result.headline})
    return result
