"""The terminal display of a run: the design, spinners, a progress bar, the summary.

One module that the command line and the Python API (``cp.run(..., progress=True)``) share, so that
neither reaches into the other. Progress goes to stderr, results (the summary, the report's path)
to stdout; rich is imported when a display is made, not when this module is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from culture_probe.events import ProgressCallback, RunEvents

if TYPE_CHECKING:
    from culture_probe.analysis import AnalysisResult
    from culture_probe.planning import PreparedStudy


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


class TerminalEvents(RunEvents):
    """Shows a run in the terminal: the design, spinners, a progress bar, the summary.

    Progress goes to stderr, results (the summary, the report's path) to stdout.
    """

    def __init__(self) -> None:
        from rich.console import Console

        self.err = Console(stderr=True)
        self.out = Console()

    def prepared(self, prepared: PreparedStudy) -> None:
        self.err.print(f"[bold]{prepared.study.title}[/]\n{prepared.design}")

    @contextmanager
    def loading(self, what: str) -> Iterator[None]:
        with self.err.status(what):
            yield

    def repaired(self, set_aside: list[Path]) -> None:
        for path in set_aside:
            self.err.print(
                f"[yellow]repaired:[/] {path.name[: -len('.damaged')]} did not read; set aside "
                f"as {path} and its prompts are scored again",
                highlight=False,
            )

    @contextmanager
    def scoring(self, total: int, already: int) -> Iterator[ProgressCallback]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if already:
            self.err.print(f"resuming: {already:,} of {total:,} prompts already scored")
        columns = (
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.err, transient=False) as progress:
            task = progress.add_task("score", total=total, completed=already, rate="")
            rate = ScoringRate(started=time.perf_counter())

            def advance(count: int) -> None:
                progress.advance(task, count)
                progress.update(task, rate=rate.add(count, now=time.perf_counter()))

            yield advance

    def scored(self, run_dir: Path) -> None:
        self.err.print(f"responses: {run_dir / 'responses.parquet'}", highlight=False)

    def analysed(self, result: AnalysisResult) -> None:
        from culture_probe.analysis import format_terminal_summary

        self.out.print(format_terminal_summary(result))

    def reported(self, path: Path) -> None:
        typer.echo(f"report: {path}")
