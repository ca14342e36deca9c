"""Running a study: plan, score (resumably), analyse, report, in one function: :func:`run_study`.

The command line, the Python API (``culture_probe.run``) and the tests all call :func:`run_study`
(or one of its stages: :func:`score_study`, :func:`analyze_run_dir`, :func:`report_run_dir`). What
a caller shows the user while it runs (a progress bar, a spinner) comes in through
:class:`RunEvents`; the pipeline itself prints nothing.

Every stage that writes to a run directory holds its lock (:func:`culture_probe.store.run_lock`),
so two processes never write to one run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from culture_probe.backends import Backend, ScoredPrompt, ScoringRequest, ScoringStopped
from culture_probe.backends.context import check_plan_fits_backend
from culture_probe.design import MAX_PROMPTS, build_plan, describe_design, short_hash
from culture_probe.errors import CultureProbeError, InputError
from culture_probe.events import ProgressCallback, RunEvents
from culture_probe.noise_floor import record_noise_floor
from culture_probe.store import RunDirectory, disk_errors, run_lock
from culture_probe.study import SHORT_ANSWER_SCALE, Study, load_study

if TYPE_CHECKING:
    from culture_probe.analysis import AnalysisResult

#: a backend method that turns requests into results (``score`` or ``write_short_answers``)
ScoreCall = Callable[[Sequence[ScoringRequest]], list[ScoredPrompt]]


@dataclass
class PlanFilter:
    """Restrict a plan to some items or proxies, then draw a balanced fraction of it (``budget``)."""

    items: tuple[str, ...] = ()
    proxies: tuple[str, ...] = ()
    #: prompts to draw as a balanced fraction of the design; None keeps the study's own ``budget``
    budget: int | None = None
    #: the most prompts a plan may have (``--max-prompts``); None: :data:`design.MAX_PROMPTS`
    max_prompts: int | None = None

    def as_dict(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {"items": list(self.items), "proxies": list(self.proxies)}
        if self.budget is not None:
            chosen["budget"] = self.budget
        return chosen


@dataclass
class PreparedStudy:
    study: Study
    plan: pd.DataFrame
    design: str
    filters: PlanFilter = field(default_factory=PlanFilter)


def prepare(study_path: str | Path, filters: PlanFilter | None = None) -> PreparedStudy:
    """Load, validate and expand a study: everything that can fail on bad input, before any write."""
    _require_study_file(Path(study_path))
    filters = filters or PlanFilter()
    study = load_study(study_path, budget=filters.budget)
    plan = build_plan(
        study,
        items=filters.items,
        proxies=filters.proxies,
        max_prompts=filters.max_prompts or MAX_PROMPTS,
    )
    return PreparedStudy(study, plan, describe_design(plan), filters)


def _require_study_file(path: Path) -> None:
    if not path.is_dir():
        return  # a missing file is reported by the loader, with the same wording as elsewhere
    studies = sorted(str(found) for found in path.glob("*.yaml") if _names_a_study(found))[:3]
    hint = f"for example {', '.join(studies)}" if studies else "give the path of a .yaml file"
    raise InputError("is a folder; expected a study file", path=path, hint=hint)


def _names_a_study(path: Path) -> bool:
    """Whether a YAML file starts a study (a ``study:`` key), not a taxonomy or its additions."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return re.search(r"^study:", head, flags=re.MULTILINE) is not None


def plan_hash(plan: pd.DataFrame) -> str:
    return short_hash(list(plan["prompt_id"]))


def build_manifest(prepared: PreparedStudy, backend: Backend) -> dict[str, Any]:
    """What identifies the run: the same study, design and model give the same run key."""
    info = backend.info()
    study = prepared.study
    key = info.key()
    writes = has_short_answers(prepared.plan)
    if writes:
        # Written answers depend on the decoding even when choice items read log-probabilities.
        key = {**key, "short_answers": backend.short_answer_decoding()}
    manifest = {
        "study": study.id,
        "title": study.title,
        "study_path": study.path,
        "study_hash": study.content_hash,
        "files": study.files,
        "design": prepared.design,
        "n_prompts": len(prepared.plan),
        "filters": prepared.filters.as_dict(),
        "plan_hash": plan_hash(prepared.plan),
        "backend": {**info.key(), "options": info.options},
        "run_key": short_hash(study.content_hash, plan_hash(prepared.plan), key),
        "semantic_proxy": study.semantic_proxy,
        "axes": sorted({p.axis for p in study.proxies if p.kind == "culture"}),
    }
    if writes:
        manifest["short_answers"] = {"decoding": key["short_answers"]}
    return manifest


def has_short_answers(plan: pd.DataFrame) -> bool:
    """Whether the plan has short-answer items, which are written rather than read off labels."""
    return bool((plan["scale"] == SHORT_ANSWER_SCALE).any())


def default_run_dir(prepared: PreparedStudy, manifest: dict[str, Any], root: Path) -> Path:
    """reports/<study>/<model>-<dtype>-<run key>: the same command finds the same folder again."""
    backend = manifest["backend"]
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", str(backend["model"]).split("/")[-1]).strip("-")
    name = f"{model}-{backend['dtype']}-{manifest['run_key'][:8]}"
    return root / prepared.study.id / name


def requests_for(plan: pd.DataFrame) -> list[ScoringRequest]:
    """Backend requests for plan rows; option texts go along in display order for answer parsing."""
    requests = []
    for row in plan.itertuples(index=False):
        shown = tuple(row.options[index] for index in row.display_to_canonical)
        requests.append(
            ScoringRequest(
                prompt_id=str(row.prompt_id),
                system=str(row.system),
                user=str(row.user),
                option_labels=tuple(row.option_labels),
                seed=int(row.seed),
                options=shown,
                language=str(row.language),
            )
        )
    return requests


def to_canonical(result: ScoredPrompt, display_to_canonical: Sequence[int]) -> dict[str, Any]:
    """A result row with probabilities moved from display order to canonical option order.

    A refused or invalid result has no distribution: its ``probs`` stay empty and ``answer`` is -1.
    """
    if not result.label_probs:
        return {
            "probs": [],
            "option_mass": float(result.option_mass),
            "answer": -1,
            "outcome": result.outcome,
            "generated": result.generated,
        }
    probs = np.zeros(len(display_to_canonical))
    for position, canonical in enumerate(display_to_canonical):
        probs[canonical] = result.label_probs[position]
    answered = result.outcome == "answered"
    return {
        "probs": probs.tolist(),
        "option_mass": float(result.option_mass),
        "answer": int(np.argmax(probs)) if answered else -1,
        "outcome": result.outcome,
        "generated": result.generated,
    }


def score_plan(
    run: RunDirectory,
    plan: pd.DataFrame,
    backend: Backend,
    on_progress: ProgressCallback | None = None,
    chunk_size: int | None = None,
) -> int:
    """Score every prompt that has no result yet, saving a chunk at a time; returns how many.

    Prompts with identical messages (and seed) are sent to the backend once; in ``logprobs`` mode
    their answer is deterministic, and a sample is seeded by its prompt, so the result is shared.
    Short-answer items (the plan's ``scale`` is ``short_answer``) have no labels to read: they go
    to :meth:`Backend.write_short_answers`, and their text is kept in ``generated``.
    """
    run.remove_stale_temporaries()
    done = set(run.scored()["prompt_id"])
    todo = plan[~plan["prompt_id"].isin(done)]
    scored = 0
    for chunk in _chunks(todo, chunk_size or backend.preferred_chunk_size):
        for part, score in _by_scoring(chunk, backend):
            try:
                results = _score_chunk(part, score)
            except ScoringStopped as stopped:
                _save_completed(run, part, stopped)
                raise
            except CultureProbeError:
                raise
            except Exception as error:  # a model or a server failing in its own library's terms
                raise _backend_failure(error, backend, scored) from error
            run.append_chunk(results)
            scored += len(part)
            if on_progress is not None:
                on_progress(len(part))
    return scored


def _backend_failure(error: Exception, backend: Backend, saved: int) -> CultureProbeError:
    """The user's message for a backend that failed in the middle of scoring."""
    text = f"{type(error).__name__}: {_first_line(error)}"
    out_of_memory = isinstance(error, MemoryError) or "out of memory" in text.lower()
    todo = (
        "lower --batch-size (or --option batch_size) and run the same command again"
        if out_of_memory
        else "run the same command again to resume; --debug shows the traceback"
    )
    return CultureProbeError(
        f"the {backend.info().backend} backend failed while scoring ({text}); the prompts scored "
        f"before it ({saved} in this session) are saved: {todo}"
    )


def _by_scoring(chunk: pd.DataFrame, backend: Backend) -> Iterator[tuple[pd.DataFrame, ScoreCall]]:
    """The chunk's choice rows with ``score``, its short-answer rows with ``write_short_answers``."""
    writes = (chunk["scale"] == SHORT_ANSWER_SCALE).to_numpy()
    if (~writes).any():
        yield chunk.loc[~writes], backend.score
    if writes.any():
        yield chunk.loc[writes], backend.write_short_answers


def _chunks(plan: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(plan), size):
        yield plan.iloc[start : start + size]


def _save_completed(run: RunDirectory, chunk: pd.DataFrame, stopped: ScoringStopped) -> None:
    """Save the results a backend finished before it stopped, so that a rerun skips them."""
    dedup_key = chunk["text_hash"] + ":" + chunk["seed"].astype(str)
    unique_keys = list(dedup_key.loc[~dedup_key.duplicated()])
    by_key = {unique_keys[position]: result for position, result in stopped.completed.items()}
    rows = [
        {"prompt_id": prompt_id, **to_canonical(by_key[key], display)}
        for prompt_id, key, display in zip(
            chunk["prompt_id"], dedup_key, chunk["display_to_canonical"], strict=True
        )
        if key in by_key
    ]
    if rows:
        run.append_chunk(pd.DataFrame(rows))


def _score_chunk(chunk: pd.DataFrame, score: ScoreCall) -> pd.DataFrame:
    dedup_key = chunk["text_hash"] + ":" + chunk["seed"].astype(str)
    unique = chunk.loc[~dedup_key.duplicated()]
    results = score(requests_for(unique))
    if len(results) != len(unique):
        raise CultureProbeError(
            f"the backend returned {len(results)} results for {len(unique)} prompts"
        )
    by_key = dict(zip(dedup_key.loc[unique.index], results, strict=True))
    rows = [
        {"prompt_id": prompt_id, **to_canonical(by_key[key], display)}
        for prompt_id, key, display in zip(
            chunk["prompt_id"], dedup_key, chunk["display_to_canonical"], strict=True
        )
    ]
    return pd.DataFrame(rows)


def copy_reference(study: Study, run_dir: Path) -> Path | None:
    """Copy the study's ``reference:`` table into ``RUN_DIR/reference.parquet``, checked.

    The analysis reads that file for its alignment tables (1 - JSD, representativeness, MaxP/AvgP/
    CPS, steering, noise-to-human-signal ratio). A study's annotated short ``answers:`` go to
    ``RUN_DIR/answers.parquet``. Returns the reference path, or None without one.
    """
    from culture_probe.atomic import atomic_write_parquet
    from culture_probe.study import read_reference

    if study.answers is not None:
        atomic_write_parquet(Path(run_dir) / "answers.parquet", pd.read_parquet(study.answers))
    if study.reference is None:
        return None
    target = Path(run_dir) / "reference.parquet"
    atomic_write_parquet(target, read_reference(study.reference, study.items))
    return target


#: columns :func:`write_responses_with_matches` adds for short-answer items (NaN / "" for choice items)
MATCH_COLUMNS = ("match", "matched_answer", "match_share")


def write_responses_with_matches(run: RunDirectory, plan: pd.DataFrame) -> pd.DataFrame:
    """Write ``responses.parquet``; short-answer texts are scored against the annotated answers.

    For short-answer rows, ``match`` is 1.0 when an annotated answer for the question and culture
    occurs in the generated text and 0.0 otherwise, ``matched_answer`` is the annotated answer with
    the most votes that occurs, and ``match_share`` is the share of annotators who gave it (0 when
    none matches): BLEnD's short-answer scoring (Myung et al. 2024), see
    :mod:`culture_probe.importers._short_answer`. Choice rows get NaN and "".
    """
    from culture_probe.atomic import atomic_write_parquet

    responses = run.write_responses(plan)
    if not has_short_answers(plan):
        return responses
    answers_path = run.path / "answers.parquet"
    if not answers_path.is_file():
        raise InputError(
            "the study has short-answer items but the run has no annotated answers",
            path=answers_path,
            hint="add 'answers: answers.parquet' to the study (culture-probe import blend writes it)",
        )
    responses = with_matches(plan, responses, pd.read_parquet(answers_path))
    atomic_write_parquet(run.path / "responses.parquet", responses)
    return responses


def with_matches(
    plan: pd.DataFrame, responses: pd.DataFrame, answers: pd.DataFrame
) -> pd.DataFrame:
    """``responses`` with :data:`MATCH_COLUMNS` filled in for the short-answer rows."""
    from culture_probe.importers import score_short_answers

    written = plan.loc[plan["scale"] == SHORT_ANSWER_SCALE]
    scored = score_short_answers(written, responses, answers).set_index("prompt_id")
    answered = responses["outcome"].eq("answered").to_numpy()
    ids = responses["prompt_id"]
    out = responses.drop(columns=[c for c in MATCH_COLUMNS if c in responses.columns])
    # A refusal or an empty text matches nothing, whatever words it happens to contain.
    matched = ids.map(scored["matched"]).astype("float64").to_numpy()
    share = ids.map(scored["vote_share"]).astype("float64").to_numpy()
    out["match"] = np.where(np.isnan(matched), np.nan, np.where(answered, matched, 0.0))
    out["matched_answer"] = np.where(
        out["match"].to_numpy() == 1.0, ids.map(scored["answer"]).fillna("").to_numpy(), ""
    )
    out["match_share"] = np.where(np.isnan(matched), np.nan, np.where(answered, share, 0.0))
    return out


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
    with ExitStack() as held:
        # Held from the first write to the report. A busy --out is refused before the model loads;
        # the default folder is named by the model, so it is locked once the model has loaded.
        if settings.out is not None:
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
            f"{type(error).__name__}: {_first_line(error)} (check --model: 'embedded', a folder "
            "holding config.json and weights, a .gguf file, or a hub id already downloaded; "
            "--debug shows the traceback)"
        ) from error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def score_study(
    prepared: PreparedStudy,
    backend: Backend,
    run_dir: Path,
    chunk_size: int | None = None,
    events: RunEvents | None = None,
) -> pd.DataFrame:
    """Score every prompt of the plan that has no result in ``run_dir`` yet; returns responses.

    Opens (or creates) the run directory under its lock, sets aside chunks that do not read,
    copies the study's reference tables, scores the rest a chunk at a time, and writes
    ``responses.parquet`` once every prompt has a result.
    """
    events = events or RunEvents()
    check_plan_fits_backend(backend, prepared.plan, requests_for)  # before anything is written
    with run_lock(run_dir):
        run = RunDirectory.open(run_dir, build_manifest(prepared, backend), prepared.plan)
        set_aside = run.set_aside_damaged_chunks()
        if set_aside:
            events.repaired(set_aside)
        copy_reference(prepared.study, run_dir)
        already = len(set(run.scored()["prompt_id"]) & set(prepared.plan["prompt_id"]))
        try:
            with events.scoring(len(prepared.plan), already) as advance:
                score_plan(run, prepared.plan, backend, advance, chunk_size)
        finally:
            run.record_backend_options(_json_ready(backend.info().options))
        responses = write_responses_with_matches(run, prepared.plan)
        record_noise_floor(
            run, prepared.plan, responses, lambda rows: _score_chunk(rows, backend.score)
        )
    events.scored(run_dir)
    return responses


def _json_ready(options: dict[str, Any]) -> dict[str, Any]:
    """The options as the manifest's JSON holds them (tuples become lists, as on reading back)."""
    return dict(json.loads(json.dumps(options, default=str)))


def analyze_run_dir(
    run_dir: Path, bootstrap: int = 1000, events: RunEvents | None = None
) -> AnalysisResult:
    """Analyse a scored run directory: writes ``stats/`` and ``summary.json``."""
    from culture_probe.analysis.cli import analyze_run

    events = events or RunEvents()
    _require_run_dir(run_dir)
    with run_lock(run_dir), events.loading("analysing"), disk_errors(run_dir / "stats"):
        result = analyze_run(run_dir, n_bootstrap=bootstrap)
    events.analysed(result)
    return result


def report_run_dir(run_dir: Path, out: Path | None = None, events: RunEvents | None = None) -> Path:
    """Write the self-contained HTML report of an analysed run directory; returns its path."""
    from culture_probe.report import render_run_report

    _require_run_dir(run_dir)
    with ExitStack() as held, disk_errors(out or run_dir / "report.html"):
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


def _require_run_dir(run_dir: Path) -> None:
    """Refuse, before taking the lock, a path that is not a run written by ``culture-probe run``."""
    from culture_probe.store import MANIFEST

    if not (Path(run_dir) / MANIFEST).is_file():
        raise InputError(
            f"not a run directory (no {MANIFEST})",
            path=run_dir,
            hint="give a folder written by `culture-probe run` or `culture-probe score`",
        )
