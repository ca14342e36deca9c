"""The ``culture-probe`` command line: a thin shell over :mod:`culture_probe.runner`.

Commands only: the terminal display is :mod:`culture_probe.terminal`, shared with the Python API,
and the options of the scoring commands are declared once (:data:`SCORING_OPTIONS`). Commands
parse their arguments, call one function of the runner, and show progress and a summary.
Every error a user, a disk, a server or a model file can cause ends in one line naming what failed
and what to do, with exit status 2; ``--debug`` shows the traceback as well.

Heavy libraries (torch, transformers, pandas) are imported inside the commands, so that ``--help``
answers at once.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from culture_probe.arguments import MAX_BOOTSTRAP
from culture_probe.errors import CultureProbeError, StorageError
from culture_probe.importers.cli import app as import_app
from culture_probe.survey.cli import app as survey_app
from culture_probe.terminal import TerminalEvents

if TYPE_CHECKING:
    # typer vendors click; its groups take this Context, of which typer.Context is a subclass
    from typer._click.core import Context as ClickContext

    from culture_probe.runner import RunSettings

#: exit status of every error the user can act on (click uses 2 for usage errors too)
USER_ERROR = 2


class ErrorReportingGroup(TyperGroup):
    """Runs a command; a project error or a disk error becomes one message and exit status 2."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # the reader went away (`culture-probe ... | head`): nothing left to tell anyone
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - flushed at exit, never closed
            ctx.exit(1)
        except (CultureProbeError, OSError) as error:
            if ctx.params.get("debug"):
                raise
            report_error(error)
            ctx.exit(USER_ERROR)


def report_error(error: CultureProbeError | OSError) -> None:
    """Print ``error`` as the user should read it: what failed and what to do."""
    if isinstance(error, OSError):
        error = StorageError.from_os_error(error, doing="accessing")
    typer.secho("error: ", fg="red", bold=True, err=True, nl=False)
    typer.echo(str(error), err=True)


app = typer.Typer(
    name="culture-probe",
    cls=ErrorReportingGroup,
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
BudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--budget",
        help="Draw this many prompts as a balanced fraction of the design (overrides the "
        "study's budget: key).",
        show_default=False,
    ),
]
MaxPromptsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-prompts",
        help="Refuse a plan of more prompts than this (the design, or the --budget drawn from "
        "it). Default 200,000; planning takes about 4 kB of memory per prompt.",
        min=1,
        show_default=False,
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
    int,
    typer.Option(
        "--bootstrap",
        help="Bootstrap replicates for the intervals.",
        min=100,
        max=MAX_BOOTSTRAP,
    ),
]
BackendOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        help="Extra backend option KEY=VALUE (repeatable), e.g. "
        "base_url=http://127.0.0.1:8000/v1 or tensor_parallel_size=2.",
    ),
]


@app.callback()
def global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback when a command fails.")
    ] = False,
) -> None:
    """Options of every command; the app's help text above is what ``--help`` shows."""


def main() -> None:
    """Entry point of the ``culture-probe`` script; ends without the interpreter's teardown."""
    from culture_probe._exit import end_process

    try:
        app()
    except SystemExit as done:
        end_process(done.code)
    end_process(0)


def _split(values: str) -> tuple[str, ...]:
    return tuple(value.strip() for value in values.split(",") if value.strip())


def _filters(
    items: str, proxies: str, budget: int | None = None, max_prompts: int | None = None
) -> Any:
    from culture_probe.runner import PlanFilter

    return PlanFilter(_split(items), _split(proxies), budget, max_prompts)


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
    budget: BudgetOpt = None,
    max_prompts: MaxPromptsOpt = None,
) -> None:
    """Show the design of a study (items x proxies x wordings x orders = N prompts) and write
    its plan, one row per prompt with a stable id."""
    from rich.console import Console

    from culture_probe.runner import prepare

    prepared = prepare(study, _filters(items, proxies, budget, max_prompts))
    console = Console()
    console.print(f"[bold]{prepared.study.title}[/]")
    console.print(prepared.design)
    from culture_probe.design import example_prompts

    for kind, system, user in example_prompts(prepared.plan):
        console.rule(f"example: {kind}")
        shown = f"system: {system}\nuser: {user}" if system else user
        console.print(shown, highlight=False, markup=False)
    if out is not None:
        from culture_probe.store import atomic_write_parquet

        atomic_write_parquet(out, prepared.plan)
        console.print(f"plan written to {out}")


#: the options every scoring command takes (``run``, ``score``), declared once: name -> (type, default)
SCORING_OPTIONS: dict[str, tuple[Any, Any]] = {
    "model": (ModelOpt, "embedded"),
    "backend": (BackendOpt, "hf"),
    "out": (OutOpt, None),
    "items": (ItemsOpt, ""),
    "proxies": (ProxiesOpt, ""),
    "budget": (BudgetOpt, None),
    "max_prompts": (MaxPromptsOpt, None),
    "dtype": (DtypeOpt, "auto"),
    "batch_size": (BatchOpt, 16),
    "option": (BackendOptionOpt, None),
    "chunk_size": (ChunkOpt, None),
    "ray": (RayOpt, None),
    "replicas": (ReplicasOpt, 1),
}


def with_scoring_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the study argument and :data:`SCORING_OPTIONS`, turned into ``settings``.

    The command declares ``settings: RunSettings`` and its own options; typer reads the combined
    signature, so ``--help`` lists the shared options first, then the command's own.
    """
    own = [
        parameter.replace(annotation=eval(parameter.annotation, command.__globals__))
        for name, parameter in inspect.signature(command).parameters.items()
        if name != "settings"
    ]
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    shared = [inspect.Parameter("study", keyword, annotation=StudyArg)] + [
        inspect.Parameter(name, keyword, default=default, annotation=annotation)
        for name, (annotation, default) in SCORING_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_settings(**arguments: Any) -> None:
        chosen = {name: arguments.pop(name) for name in ("study", *SCORING_OPTIONS)}
        command(settings=_settings(**chosen), **arguments)

    parameters = [*shared, *own]
    setattr(with_settings, "__signature__", inspect.Signature(parameters))  # noqa: B010
    with_settings.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_settings


@app.command()
@with_scoring_options
def run(settings: RunSettings, bootstrap: BootstrapOpt = 1000) -> None:
    """Plan, score, analyse and report a study in one go. Kill it at any time: the same command
    resumes where it stopped."""
    from culture_probe.runner import run_study

    run_study(settings, bootstrap=bootstrap, events=TerminalEvents())


@app.command()
@with_scoring_options
def score(settings: RunSettings) -> None:
    """Score a study's plan with a model, resumably, and stop before the analysis."""
    from culture_probe.runner import run_study

    run_study(settings, analyse=False, events=TerminalEvents())


@app.command()
def analyze(run_dir: RunDirArg, bootstrap: BootstrapOpt = 1000) -> None:
    """Re-analyse a run directory without re-scoring: writes stats/ and summary.json."""
    from culture_probe.runner import analyze_run_dir

    analyze_run_dir(run_dir, bootstrap, TerminalEvents())


@app.command()
def report(
    run_dir: RunDirArg,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Default: RUN_DIR/report.html.")
    ] = None,
) -> None:
    """Write the self-contained HTML report of a run directory."""
    from culture_probe.runner import report_run_dir

    report_run_dir(run_dir, out, TerminalEvents())


@app.command()
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Two or more run directories of the same plan.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML report.")] = Path(
        "compare.html"
    ),
    shared_only: Annotated[
        bool,
        typer.Option("--shared-only", help="Compare the prompts the runs share when plans differ."),
    ] = False,
    min_difference: Annotated[
        float,
        typer.Option("--min-difference", help="Smallest difference of mean scores that matters."),
    ] = 0.0,
    bootstrap: BootstrapOpt = 2000,
) -> None:
    """Compare models: per item the paired difference with intervals over wordings, model x
    wording tests, ranking stability and closeness to human data; writes one HTML report."""
    from culture_probe.compare import compare as compare_run_dirs

    comparison = compare_run_dirs(
        run_dirs, shared_only=shared_only, min_difference=min_difference, n_bootstrap=bootstrap
    )
    for sentence in comparison.summary["headline"]:
        typer.echo(sentence)
    typer.echo(f"report: {comparison.write_report(out)}")


@app.command()
def export(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="answers.csv or answers.parquet.")
    ] = Path("answers.csv"),
) -> None:
    """Export answers in long format, one row per prompt x model x option (CSV or Parquet)."""
    from culture_probe.export import export as export_runs

    typer.echo(f"written: {export_runs(list(run_dirs), out)}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(help="A .gguf file, or 'embedded' (SmolLM2-135M-Instruct)."),
    ] = "embedded",
    float32: Annotated[
        bool,
        typer.Option(
            "--float32",
            help="Serve a float32 copy of the file (made once, in the cache): the weights the "
            "hf backend's float32 run computes with.",
        ),
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=1)] = 8000,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="CPU threads (default: llama.cpp's).", min=1),
    ] = None,
    context: Annotated[
        int, typer.Option("--context", help="Context length in tokens.", min=64)
    ] = 4096,
) -> None:
    """Serve a GGUF model through llama.cpp's OpenAI-compatible server, for --backend openai.

    Prompt log-probabilities are on, and prompts may be token ids (prompt_tokens=local).

    Arguments after -- go to llama_cpp.server as they are.
    """
    from culture_probe.models import resolve_model
    from culture_probe.serve import cached_float32_copy, run_server, server_arguments

    source = resolve_model(model)
    if source.gguf_file is None:
        raise CultureProbeError(f"serve takes a .gguf file or 'embedded', not {model!r}")
    path = Path(source.location) / source.gguf_file
    if float32:
        typer.echo(f"float32 copy of {path.name} ...", err=True)
        path = cached_float32_copy(path)
    url = f"http://{host}:{port}/v1"
    typer.echo(
        f"serving {path} at {url}\nscore through it with:\n  culture-probe run STUDY "
        f"--backend openai --model {path} --option base_url={url} "
        "--option prompt_tokens=local",
        err=True,
    )
    run_server(server_arguments(path, host, port, threads, context, list(ctx.args)))


def _settings(
    study: Path,
    model: str,
    backend: str,
    out: Path | None,
    items: str,
    proxies: str,
    budget: int | None,
    max_prompts: int | None,
    dtype: str,
    batch_size: int,
    option: list[str] | None,
    chunk_size: int | None,
    ray: str | None,
    replicas: int,
) -> RunSettings:
    from culture_probe.runner import RunSettings

    if backend == "hf":
        from culture_probe.engine import tune_process

        tune_process()  # this process only scores: allocator settings that last (engine.process)
    return RunSettings(
        study=study,
        model=model,
        backend=backend,
        dtype=dtype,
        out=out,
        options={"batch_size": batch_size, **_parse_options(option)},
        filters=_filters(items, proxies, budget, max_prompts),
        chunk_size=chunk_size,
        ray=ray,
        replicas=replicas,
    )


if __name__ == "__main__":
    main()
