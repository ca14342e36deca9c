"""The ``culture-probe`` command line: a thin shell over :mod:`culture_probe.runner` and friends.

Heavy libraries (torch, transformers, pandas) are imported inside the commands, so that ``--help``
answers at once.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from culture_probe.errors import CultureProbeError
from culture_probe.importers.cli import app as import_app
from culture_probe.survey.cli import app as survey_app

if TYPE_CHECKING:
    from culture_probe.backends import Backend
    from culture_probe.runner import PreparedStudy

app = typer.Typer(
    name="culture-probe",
    help=(
        "Probe language models for cultural bias, and measure how much of what you see is culture "
        "and how much is the wording of the prompt.\n\n"
        "Start with:  culture-probe run taxonomy/values.yaml"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(survey_app, name="survey")
app.add_typer(import_app, name="import")

StudyArg = Annotated[
    Path, typer.Argument(help="Study file, e.g. taxonomy/values.yaml.", show_default=False)
]
RunDirArg = Annotated[
    Path, typer.Argument(help="A run directory written by `culture-probe run`.", show_default=False)
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="'embedded' (SmolLM2-135M-Instruct, shipped offline), a local folder or .gguf file, "
        "a hub id, or the model name a server knows.",
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        "-b",
        help="hf (transformers), vllm (GPU), or openai (any OpenAI-compatible server).",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Run directory. Default: reports/<study>/<model>-<dtype>-<key>; "
        "the same command finds the same folder again and resumes.",
    ),
]
ItemsOpt = Annotated[str, typer.Option("--items", help="Only these item ids (comma-separated).")]
ProxiesOpt = Annotated[
    str,
    typer.Option("--proxies", help="Only these proxy ids (comma-separated; 'none' = baseline)."),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="auto, mixed, bfloat16, float16 or float32. auto: on a CPU with AMX or "
        "AVX512-VNNI, mixed (bfloat16 or int16 matrix products with float32 sums, float32 "
        "elsewhere; within 0.01 bits of float32), else float32; bfloat16 on a GPU.",
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Prompts per forward pass.", min=1)]
ChunkOpt = Annotated[
    int | None,
    typer.Option("--chunk-size", help="Prompts per saved chunk (default: the backend's).", min=1),
]
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        help="Spread the plan over Ray actors, one backend replica each: 'local' (start Ray here), "
        "'auto' (a running cluster) or a cluster address such as ray://head:10001.",
    ),
]
ReplicasOpt = Annotated[
    int, typer.Option("--replicas", help="Backend replicas (Ray actors) with --ray.", min=1)
]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", help="Bootstrap replicates for the intervals.", min=100)
]
BackendOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        help="Extra backend option KEY=VALUE (repeatable), e.g. "
        "base_url=http://127.0.0.1:8000/v1 or tensor_parallel_size=2.",
    ),
]


def main() -> None:
    """Entry point: user errors become one red line and exit status 2, without a traceback."""
    try:
        app()
    except CultureProbeError as error:
        _fail(str(error))


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(
        f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True
    )
    sys.exit(2)


def _split(values: str) -> tuple[str, ...]:
    return tuple(value.strip() for value in values.split(",") if value.strip())


def _prepare(study: Path, items: str, proxies: str) -> PreparedStudy:
    from culture_probe.runner import PlanFilter, prepare

    return prepare(study, PlanFilter(_split(items), _split(proxies)))


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CultureProbeError(f"--option expects KEY=VALUE, got '{pair}'")
        key, value = pair.split("=", 1)
        options[key.strip()] = _coerce(value.strip())
    return options


def _coerce(value: str) -> Any:
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(value.lower(), value)


@app.command("list")
def list_cells(
    taxonomy: Annotated[
        Path, typer.Option("--taxonomy", help="Taxonomy file; studies are read from its folder.")
    ] = Path("taxonomy/taxonomy.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show the taxonomy (dimensions, cells, status) with the studies and probes covering each."""
    from culture_probe.catalogue import build_catalogue, render_catalogue

    catalogue = build_catalogue(taxonomy)
    if as_json:
        import json

        typer.echo(json.dumps(catalogue.as_json(), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    console = Console()
    console.print(render_catalogue(catalogue))
    for path, problem in catalogue.problems.items():
        console.print(f"[red]could not load {path}:[/] {problem}", highlight=False)


@app.command()
def plan(
    study: StudyArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the plan (parquet). Default: print only."),
    ] = None,
    items: ItemsOpt = "",
    proxies: ProxiesOpt = "",
) -> None:
    """Show the design of a study (items x proxies x wordings x orders = N prompts) and write
    its plan, one row per prompt with a stable id."""
    from rich.console import Console

    prepared = _prepare(study, items, proxies)
    console = Console()
    console.print(f"[bold]{prepared.study.title}[/]")
    console.print(prepared.design)
    if out is not None:
        from culture_probe.store import atomic_write_parquet

        atomic_write_parquet(out, prepared.plan)
        console.print(f"plan written to {out}")


@app.command()
def run(
    study: StudyArg,
    model: ModelOpt = "embedded",
    backend: BackendOpt = "hf",
    out: OutOpt = None,
    items: ItemsOpt = "",
    proxies: ProxiesOpt = "",
    dtype: DtypeOpt = "auto",
    batch_size: BatchOpt = 16,
    bootstrap: BootstrapOpt = 1000,
    option: BackendOptionOpt = None,
    chunk_size: ChunkOpt = None,
    ray: RayOpt = None,
    replicas: ReplicasOpt = 1,
) -> None:
    """Plan, score, analyse and report a study in one go. Kill it at any time: the same command
    resumes where it stopped."""
    run_dir = _score(
        study, model, backend, out, items, proxies, dtype, batch_size, option, chunk_size,
        ray=ray, replicas=replicas,
    )  # fmt: skip
    _analyze_and_report(run_dir, bootstrap)


@app.command()
def score(
    study: StudyArg,
    model: ModelOpt = "embedded",
    backend: BackendOpt = "hf",
    out: OutOpt = None,
    items: ItemsOpt = "",
    proxies: ProxiesOpt = "",
    dtype: DtypeOpt = "auto",
    batch_size: BatchOpt = 16,
    option: BackendOptionOpt = None,
    chunk_size: ChunkOpt = None,
    ray: RayOpt = None,
    replicas: ReplicasOpt = 1,
) -> None:
    """Score a study's plan with a model, resumably, and stop before the analysis."""
    _score(
        study, model, backend, out, items, proxies, dtype, batch_size, option, chunk_size,
        ray=ray, replicas=replicas,
    )  # fmt: skip


@app.command()
def analyze(run_dir: RunDirArg, bootstrap: BootstrapOpt = 1000) -> None:
    """Re-analyse a run directory without re-scoring: writes stats/ and summary.json."""
    _analyze(run_dir, bootstrap)


@app.command()
def report(
    run_dir: RunDirArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Default: RUN_DIR/report.html.")
    ] = None,
) -> None:
    """Write the self-contained HTML report of a run directory."""
    from culture_probe.report import render_run_report

    path = render_run_report(run_dir, out)
    typer.echo(f"report: {path}")


def _score(
    study: Path,
    model: str,
    backend_name: str,
    out: Path | None,
    items: str,
    proxies: str,
    dtype: str,
    batch_size: int,
    option: list[str] | None,
    chunk_size: int | None = None,
    ray: str | None = None,
    replicas: int = 1,
) -> Path:
    from rich.console import Console

    from culture_probe.runner import (
        build_manifest,
        copy_reference,
        default_run_dir,
        finalise_responses,
    )
    from culture_probe.store import RunDirectory

    console = Console(stderr=True)
    prepared = _prepare(study, items, proxies)
    console.print(f"[bold]{prepared.study.title}[/]\n{prepared.design}")
    options = {"model": model, "dtype": dtype, "batch_size": batch_size, **_parse_options(option)}
    with console.status(f"loading {model} ({backend_name})"):
        engine = _create_engine(backend_name, options, ray, replicas)
    try:
        manifest = build_manifest(prepared, engine)
        run_dir = out or default_run_dir(prepared, manifest, Path("reports"))
        run_store = RunDirectory.open(run_dir, manifest, prepared.plan)
        copy_reference(prepared.study, run_dir)
        _score_with_progress(run_store, prepared, engine, console, chunk_size)
        finalise_responses(run_store, prepared.plan)
    finally:
        engine.close()
    console.print(f"responses: {run_dir / 'responses.parquet'}")
    return run_dir


def _create_engine(
    backend_name: str, options: dict[str, Any], ray: str | None, replicas: int
) -> Backend:
    """One backend here, or with --ray one replica per Ray actor."""
    if backend_name == "hf":
        from culture_probe.engine import tune_process

        tune_process()  # this process only scores: allocator settings that last (engine.process)
    if ray is None:
        from culture_probe.backends import create_backend

        return create_backend(backend_name, **options)
    from culture_probe.distributed import RayBackend

    return RayBackend(backend_name, options, address=ray, replicas=replicas)


@dataclass
class ScoringRate:
    """Prompts scored in this session per second since scoring began, as the progress bar shows.

    rich's own speed is an estimate over the last few updates; updated a chunk at a time, it read a
    quarter low on the values study (24.7 prompts/s shown for 31.6 scored).
    """

    started: float
    scored: int = 0

    def add(self, count: int, now: float) -> str:
        self.scored += count
        elapsed = now - self.started
        return f"{self.scored / elapsed:.1f} prompts/s" if elapsed > 0 else ""


def _score_with_progress(
    run_store: Any, prepared: PreparedStudy, engine: Backend, console: Any, chunk_size: int | None
) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from culture_probe.runner import score_plan

    already = len(set(run_store.scored()["prompt_id"]) & set(prepared.plan["prompt_id"]))
    if already:
        console.print(f"resuming: {already:,} of {len(prepared.plan):,} prompts already scored")
    columns = (
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("score", total=len(prepared.plan), completed=already, rate="")
        rate = ScoringRate(started=time.perf_counter())

        def advance(count: int) -> None:
            progress.advance(task, count)
            progress.update(task, rate=rate.add(count, now=time.perf_counter()))

        score_plan(run_store, prepared.plan, engine, advance, chunk_size)


def _analyze(run_dir: Path, bootstrap: int) -> Any:
    from rich.console import Console

    from culture_probe.analysis import format_terminal_summary
    from culture_probe.analysis.cli import analyze_run

    console = Console()
    with console.status("analysing"):
        result = analyze_run(run_dir, n_bootstrap=bootstrap)
    console.print(format_terminal_summary(result))
    return result


def _analyze_and_report(run_dir: Path, bootstrap: int) -> None:
    from culture_probe.report import render_run_report

    _analyze(run_dir, bootstrap)
    path = render_run_report(run_dir)
    typer.echo(f"report: {path}")


if __name__ == "__main__":
    main()
