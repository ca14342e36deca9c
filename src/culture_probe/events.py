"""What a run tells its caller while it runs: the hooks a progress bar or a spinner hangs on.

Kept apart from :mod:`culture_probe.runner` and free of heavy imports, so that the command line can
define its terminal display without loading pandas before it parses its arguments. The runner
imports it, never the other way round: the types it names come from earlier stages.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from culture_probe.analysis import AnalysisResult
    from culture_probe.planning import PreparedStudy

#: called after each chunk with the number of prompts just finished
ProgressCallback = Callable[[int], None]


class RunEvents:
    """What the pipeline tells its caller while it runs; the defaults show nothing.

    The command line overrides these to print the design, show a spinner while the model loads
    and a progress bar while prompts are scored.
    """

    def prepared(self, prepared: PreparedStudy) -> None:
        """The study is loaded and its plan built."""

    def loading(self, what: str) -> AbstractContextManager[None]:
        """Around a slow step with no progress to count (loading a model, analysing)."""
        return nullcontext()

    def repaired(self, set_aside: list[Path]) -> None:
        """Chunks that did not read were set aside; their prompts will be scored again."""

    def scoring(self, total: int, already: int) -> AbstractContextManager[ProgressCallback]:
        """Around scoring: yields the callback that counts prompts as chunks are saved."""
        return nullcontext(lambda count: None)

    def scored(self, run_dir: Path) -> None:
        """Every prompt has a result: ``responses.parquet`` is written."""

    def analysed(self, result: AnalysisResult) -> None:
        """``stats/`` and ``summary.json`` are written."""

    def reported(self, path: Path) -> None:
        """The HTML report is written."""
