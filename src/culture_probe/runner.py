"""Running a study: plan, score (resumably), analyse, report, in one function: :func:`run_study`.

The command line, the Python API (``culture_probe.run``) and the tests all call :func:`run_study`
(or one of its stages: :func:`score_study`, :func:`analyze_run_dir`, :func:`report_run_dir`). What
a caller shows the user while it runs (a progress bar, a spinner) comes in through
:class:`RunEvents`; the pipeline itself prints nothing.

This module only puts the stages in order; each has a module of its own: preparing the study
(:mod:`culture_probe.planning`), the run's identity, the scoring loop and short-answer matching
(:mod:`culture_probe.scoring`), the run folder (:mod:`culture_probe.store`), the analysis and the
report. Every stage that writes to a run directory holds its lock
(:func:`culture_probe.store.run_lock`), so two processes never write to one run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from culture_probe.backends import Backend, backend_class, check_elicitation
from culture_probe.backends.context import check_plan_fits_backend
from culture_probe.errors import CultureProbeError
from culture_probe.events import RunEvents
from culture_probe.noise_floor import record_noise_floor
from culture_probe.planning import PlanFilter, PreparedStudy, prepare
from culture_probe.scoring import (
    build_manifest,
    copy_reference,
    default_run_dir,
    first_line,
    levels_asked,
    prompts_per_level,
    requests_for,
    score_plan,
    write_responses,
)
from culture_probe.store import RunDirectory, check_adoptable, disk_errors, run_lock

if TYPE_CHECKING:
    from culture_probe.analysis import AnalysisResult

#: names the command line and the benchmarks import from here; they live in planning and scoring
__all__ = [
    "PlanFilter",
    "PreparedStudy",
    "RunResult",
    "RunSettings",
    "analyze_run_dir",
    "load_backend",
    "prepare",
    "report_run_dir",
    "requests_for",
    "run_study",
    "score_study",
]


@dataclass(frozen=True)
class RunSettings:
    """What to run: a study, the model that answers it, and where the results go.

    Attributes:
        study: the study file, e.g. ``taxonomy/values.yaml``.
        model: ``embedded``, a local folder or ``.gguf`` file, a hub id, or a server's model name.
        backend: ``hf``, ``vllm`` or ``openai``.
        dtype: ``auto``, ``mixed``, ``bfloat16``, ``float16`` or ``float32``.
        out: the run directory; ``None`` picks ``reports/<study>/<model>-<dtype>-<run key>``.
        options: further backend options (``batch_size``, ``base_url``, ...).
        filters: only some items or proxies.
        chunk_size: prompts per saved chunk; ``None`` takes the backend's.
        ray: spread the plan over Ray actors: ``local``, ``auto`` or a cluster address.
        replicas: backend replicas (Ray actors) with ``ray``.
        reports_root: where default run directories go.
    """

    study: Path
    model: str = "embedded"
    backend: str = "hf"
    dtype: str = "auto"
    out: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    filters: PlanFilter = field(default_factory=PlanFilter)
    chunk_size: int | None = None
    ray: str | None = None
    replicas: int = 1
    reports_root: Path = Path("reports")

    def backend_options(self) -> dict[str, Any]:
        return {"model": self.model, "dtype": self.dtype, **self.options}


@dataclass
class RunResult:
    """What :func:`run_study` produced, in memory as well as on disk."""

    run_dir: Path
    prepared: PreparedStudy
    responses: pd.DataFrame
    analysis: AnalysisResult | None = None
    report_path: Path | None = None


def run_study(
    settings: RunSettings,
    *,
    backend: Backend | None = None,
    analyse: bool = True,
    report: bool = True,
    bootstrap: int = 1000,
    events: RunEvents | None = None,
) -> RunResult:
    """The whole pipeline: plan, score what has no result yet, analyse, report.

    Args:
        settings: the study, the model and the run directory.
        backend: an already loaded backend to use instead of creating one from ``settings``
            (it is left open; one created here is closed at the end).
        analyse: write ``stats/`` and ``summary.json``.
        report: write ``report.html`` (needs ``analyse``).
        bootstrap: bootstrap replicates for the intervals.
        events: what to show while it runs.

    Returns:
        The run directory with the plan, the responses, the analysis and the report's path.

    Raises:
        CultureProbeError: on bad input, a busy or different run directory, a full or read-only
            disk, a model that does not load or a server that stops answering. What was scored is
            kept, and the same call resumes it.
    """
    events = events or RunEvents()
    prepared = prepare(settings.study, settings.filters)
    events.prepared(prepared)
    if backend is None:  # a level the backend lacks is refused before the model loads
        _check_levels_before_loading(settings, prepared)
    with ExitStack() as held:
        # Held from the first write to the report. A busy --out is refused before the model loads;
        # the default folder is named by the model, so it is locked once the model has loaded.
        if settings.out is not None:
            check_adoptable(settings.out)
            held.enter_context(run_lock(settings.out))
        with _backend_for(settings, backend, events) as engine:
            run_dir = settings.out or default_run_dir(
                prepared, build_manifest(prepared, engine), settings.reports_root
            )
            held.enter_context(run_lock(run_dir))
            responses = score_study(prepared, engine, run_dir, settings.chunk_size, events)
        # the model is released before the analysis
        result = RunResult(run_dir, prepared, responses)
        if analyse:
            result.analysis = analyze_run_dir(run_dir, bootstrap, events)
        if analyse and report:
            result.report_path = report_run_dir(run_dir, events=events)
    return result


@contextmanager
def _backend_for(
    settings: RunSettings, given: Backend | None, events: RunEvents
) -> Iterator[Backend]:
    if given is not None:
        yield given
        return
    with events.loading(f"loading {settings.model} ({settings.backend})"):
        engine = load_backend(settings)
    try:
        yield engine
    finally:
        engine.close()


def _check_levels_before_loading(settings: RunSettings, prepared: PreparedStudy) -> None:
    """Refuse a plan with an elicitation level that the backend to be loaded does not offer."""
    levels = levels_asked(prepared.plan)
    if settings.ray is None:
        check_elicitation(settings.backend, backend_class(settings.backend), levels)
        return
    from culture_probe.distributed import RayBackend

    check_elicitation(f"Ray-replicated {settings.backend}", RayBackend, levels)


def load_backend(settings: RunSettings) -> Backend:
    """The backend ``settings`` names: one here, or with ``ray`` one replica per Ray actor.

    A model that does not load (a folder that is not a model, a damaged file, a hub id that
    cannot be reached) ends in a :class:`CultureProbeError` that names the model and the cause.
    """
    try:
        if settings.ray is None:
            from culture_probe.backends import create_backend

            return create_backend(settings.backend, **settings.backend_options())
        from culture_probe.distributed import RayBackend

        return RayBackend(
            settings.backend,
            settings.backend_options(),
            address=settings.ray,
            replicas=settings.replicas,
        )
    except CultureProbeError:
        raise
    except Exception as error:  # the model libraries raise anything from OSError to KeyError
        raise CultureProbeError(
            f"could not load the model '{settings.model}' with the {settings.backend} backend: "
            f"{type(error).__name__}: {first_line(error)} (check --model: 'embedded', a folder "
            "holding config.json and weights, a .gguf file, or a hub id already downloaded; "
            "--debug shows the traceback)"
        ) from error


def score_study(
    prepared: PreparedStudy,
    backend: Backend,
    run_dir: Path,
    chunk_size: int | None = None,
    events: RunEvents | None = None,
) -> pd.DataFrame:
    """Score every prompt of the plan that has no result in ``run_dir`` yet; returns responses.

    Opens (or creates) the run directory under its lock, sets aside chunks that do not read or
    hold invalid results, copies the study's reference tables, scores the rest a chunk at a time
    (asking again the prompts a server spoiled), and writes ``responses.parquet`` once every
    prompt has a result.
    """
    events = events or RunEvents()
    # before anything is written
    check_elicitation(backend.info().backend, type(backend), levels_asked(prepared.plan))
    check_plan_fits_backend(backend, prepared.plan, requests_for)
    with run_lock(run_dir):
        run = RunDirectory.open(run_dir, build_manifest(prepared, backend), prepared.plan)
        set_aside = run.set_aside_damaged_chunks()
        if set_aside:
            events.repaired(set_aside)
        copy_reference(prepared.study, run)
        already = len(run.answered_ids() & set(prepared.plan["prompt_id"]))
        seconds: dict[str, float] = {}
        try:
            with events.scoring(len(prepared.plan), already) as advance:
                score_plan(run, prepared.plan, backend, advance, chunk_size, seconds)
        finally:
            run.record_backend_options(_json_ready(backend.info().options))
            run.record_elicitation(prompts_per_level(prepared.plan), seconds)
        responses = write_responses(run, prepared.plan)
        record_noise_floor(run, prepared.plan, responses, backend)
    events.scored(run_dir)
    return responses


def _json_ready(options: dict[str, Any]) -> dict[str, Any]:
    """The options as the manifest's JSON holds them (tuples become lists, as on reading back)."""
    return dict(json.loads(json.dumps(options, default=str)))


def analyze_run_dir(
    run_dir: Path, bootstrap: int = 1000, events: RunEvents | None = None
) -> AnalysisResult:
    """Analyse a scored run directory: writes ``stats/`` and ``summary.json`` as one set."""
    from culture_probe.analysis.cli import analyze_run

    events = events or RunEvents()
    RunDirectory.existing(run_dir)  # refused before the lock is taken
    with run_lock(run_dir), events.loading("analysing"):
        result = analyze_run(run_dir, n_bootstrap=bootstrap)
    events.analysed(result)
    return result


def report_run_dir(run_dir: Path, out: Path | None = None, events: RunEvents | None = None) -> Path:
    """Write the self-contained HTML report of an analysed run directory; returns its path.

    Raises:
        InputError: the folder is not a run, or the run was not analysed.
    """
    from culture_probe.report import render_run_report

    folder = RunDirectory.existing(run_dir)
    folder.require_analysed()
    with ExitStack() as held, disk_errors(out or folder.report_path):
        if _report_takes_lock(run_dir, out):
            held.enter_context(run_lock(run_dir))
        path = render_run_report(run_dir, out)
    (events or RunEvents()).reported(path)
    return path


def _report_takes_lock(run_dir: Path, out: Path | None) -> bool:
    """Whether the report holds the run's lock: always, but for a report written elsewhere from a
    read-only run folder (a shared copy), which cannot hold a lock file and cannot change."""
    if out is None:
        return True
    return Path(run_dir).resolve() in Path(out).resolve().parents or os.access(run_dir, os.W_OK)
