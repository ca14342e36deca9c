"""The Python API: :func:`run` a study and get its tables back, :func:`load_run` to read one later.

Both return a :class:`Run`. Its tables are pandas DataFrames, read from the run directory when first
used (a run just made keeps the ones it computed), so loading a large run costs nothing until a
table is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from culture_probe.errors import CultureProbeError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from culture_probe.backends import Backend
    from culture_probe.runner import RunResult
    from culture_probe.store import RunDirectory

#: the model a backend name runs when ``model`` is not given
DEFAULT_MODEL = "embedded"


class Run:
    """A run directory and its tables.

    Attributes:
        path: the run directory.
        plan: one row per prompt (``plan.parquet``).
        responses: one row per prompt with the option distribution (``responses.parquet``).
        tidy: the plan joined with the responses, one row per prompt with its ``score``.
        stats: every statistics table by name (``stats/<name>.parquet``).
        summary: the study-level summary with its ``headline`` sentences (``summary.json``).
        manifest: what was run (``manifest.json``).
        report_path: ``report.html`` when there is one, else None.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @cached_property
    def _folder(self) -> RunDirectory:
        from culture_probe.store import RunDirectory

        return RunDirectory(self.path)

    @property
    def report_path(self) -> Path | None:
        report = self._folder.report_path
        return report if report.is_file() else None

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return self._folder.manifest()

    @cached_property
    def plan(self) -> pd.DataFrame:
        return self._folder.plan()

    @cached_property
    def responses(self) -> pd.DataFrame:
        return self._folder.responses()

    @cached_property
    def tidy(self) -> pd.DataFrame:
        from culture_probe.analysis import tidy_responses
        from culture_probe.study import SHORT_ANSWER_SCALE

        # Short-answer prompts have no options to score; their table is stats["short_answer"].
        choice = self.plan.loc[self.plan["scale"] != SHORT_ANSWER_SCALE]
        return tidy_responses(choice, self.responses)

    @cached_property
    def stats(self) -> dict[str, pd.DataFrame]:
        return self._folder.stats()

    @cached_property
    def summary(self) -> dict[str, Any]:
        return self._folder.summary()


def load_run(path: str | Path) -> Run:
    """Read a run directory back; its tables load when first used.

    Args:
        path: a folder written by :func:`run` or ``culture-probe run``.

    Example:
        >>> import culture_probe as cp
        >>> cp.load_run("reports/values/SmolLM2-135M-Instruct-float32-0123abcd")  # doctest: +SKIP
        Run('reports/values/SmolLM2-135M-Instruct-float32-0123abcd')
        >>> cp.load_run("no/such/run")
        Traceback (most recent call last):
        ...
        culture_probe.errors.InputError: no/such/run: is not a run directory (no manifest.json) (...)
    """
    from culture_probe.arguments import run_path
    from culture_probe.store import RunDirectory

    hint = "give a folder written by cp.run or `culture-probe run`"
    return Run(RunDirectory.existing(run_path(path), hint=hint).path)


def run(
    study: str | Path,
    model: str | None = None,
    backend: str | Backend = "hf",
    dtype: str = "auto",
    out: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    items: Sequence[str] | str | None = None,
    proxies: Sequence[str] | str | None = None,
    bootstrap: int = 1000,
    report: bool = True,
    progress: bool = False,
    *,
    chunk_size: int | None = None,
    budget: int | None = None,
) -> Run:
    """Run a study on a model: plan, score, analyse and report, and return the tables.

    Calling it again with the same arguments finds the same run directory and scores only the
    prompts that have no result yet, as the command line does; a run killed half-way resumes.

    Args:
        study: the study file, e.g. ``"taxonomy/values.yaml"``.
        model: ``"embedded"`` (the default: SmolLM2-135M-Instruct, shipped offline), a local
            folder or ``.gguf`` file, a hub id, or the model name a server knows.
        backend: ``"hf"``, ``"vllm"`` or ``"openai"``; or a backend object already created (a
            model loaded once in a notebook), which is used as it is and left open.
        dtype: ``"auto"``, ``"mixed"``, ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        out: the run directory. Default: ``reports/<study>/<model>-<dtype>-<run key>``.
        options: further backend options, e.g. ``{"batch_size": 8}`` or ``{"base_url": ...}``.
        items: only these item ids (a list or a comma-separated string).
        proxies: only these proxy ids (``"none"`` is the baseline).
        bootstrap: bootstrap replicates for the intervals.
        report: write ``report.html`` as well.
        progress: show the design, a progress bar and the summary, as the command line does.
        chunk_size: prompts per saved chunk (default: the backend's).
        budget: draw this many prompts as a balanced fraction of the design, instead of the
            study's own ``budget:``.

    Example:
        With the embedded model (a few minutes on a laptop CPU):

        >>> import culture_probe as cp
        >>> run = cp.run("taxonomy/values.yaml", items="family_importance", proxies="JP,NG")
        ... # doctest: +SKIP
        >>> run.stats["item_stats"][["item_id", "culture_share"]]  # doctest: +SKIP

        Any backend object scores a study; this one, which always leans to the first option
        shown, needs no model:

        >>> import tempfile
        >>> from culture_probe.backends import Backend, BackendInfo, ScoredPrompt
        >>> class FirstShown(Backend):
        ...     def info(self):
        ...         return BackendInfo("first-shown", "none", "0", "float32")
        ...     def score(self, requests):
        ...         return [ScoredPrompt(r.prompt_id, (0.4, 0.3, 0.2, 0.1), 1.0) for r in requests]
        >>> out = tempfile.mkdtemp()
        >>> run = cp.run("taxonomy/values.yaml", backend=FirstShown(), items="family_importance",
        ...              proxies="JP", out=out, bootstrap=100, report=False)
        >>> len(run.responses) == len(run.plan) == run.manifest["n_prompts"]
        True
        >>> sorted(set(run.responses["answer"]))  # first option, or last where shown reversed
        [0, 3]
        >>> "item_stats" in run.stats and list(run.summary)[0] != ""
        True
    """
    import culture_probe.arguments as arg
    from culture_probe.runner import PlanFilter, RunSettings, run_study

    name, given = _backend_choice(backend, model)
    settings = RunSettings(
        study=arg.path(study, arg.STUDY),
        model=arg.text(model, arg.Argument("model", "--model")) if model else DEFAULT_MODEL,
        backend=name,
        dtype=arg.text(dtype, arg.Argument("dtype", "--dtype")),
        out=arg.optional_path(out, arg.OUT),
        options=arg.mapping(options, arg.OPTIONS),
        filters=PlanFilter(
            arg.id_list(items, arg.ITEMS),
            arg.id_list(proxies, arg.PROXIES),
            None if budget is None else arg.count(budget, arg.BUDGET),
        ),
        chunk_size=None if chunk_size is None else arg.count(chunk_size, arg.CHUNK_SIZE),
    )
    result = run_study(
        settings,
        backend=given,
        report=arg.flag(report, arg.Argument("report")),
        bootstrap=arg.count(bootstrap, arg.BOOTSTRAP),
        events=_events(arg.flag(progress, arg.Argument("progress"))),
    )
    return _run_from(result)


def _backend_choice(backend: str | Backend, model: str | None) -> tuple[str, Backend | None]:
    from culture_probe.backends import Backend

    if isinstance(backend, str):
        return backend, None
    if not isinstance(backend, Backend):
        raise InputError(
            "argument backend (--backend): expected 'hf', 'vllm', 'openai' or a Backend object, "
            f"got {type(backend).__name__} {backend!r}"
        )
    if model is not None:
        raise CultureProbeError(
            "give either a backend name with model=..., or a backend object (which has its model)"
        )
    return backend.info().backend, backend


def _events(progress: bool) -> Any:
    if not progress:
        return None
    from culture_probe.terminal import TerminalEvents

    return TerminalEvents()


def _run_from(result: RunResult) -> Run:
    """A :class:`Run` that keeps the plan, responses and summary the pipeline has in memory.

    The stats tables are read back from the folder when first used, so that ``cp.run`` and
    ``cp.load_run`` give the same frames (a missing text cell is written as null and reads back
    as NaN).
    """
    made = Run(result.run_dir)
    made.__dict__["plan"] = result.prepared.plan
    made.__dict__["responses"] = result.responses
    if result.analysis is not None:
        made.__dict__["summary"] = {
            **result.analysis.summary,
            "headline": result.analysis.headline,
        }
    return made
