"""A one-screen summary of an analysis for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from culture_probe.analysis._analyze import AnalysisResult


def format_terminal_summary(result: AnalysisResult) -> Table:
    """A rich table: per axis, the variance shares with CIs and the verdict counts.

    The headline sentences are the table's caption, so printing the table shows everything.
    """
    table = Table(
        title="Culture or wording?", caption="\n".join(result.headline), caption_justify="left"
    )
    for column in (
        "axis",
        "items",
        "culture share",
        "wording share",
        "contrast share",
        "median CWI",
        "Kendall's W",
        "culture-dominant",
        "wording-dominated",
        "mixed",
        "no effect",
    ):
        table.add_column(column, justify="left" if column == "axis" else "right")
    for axis, facts in result.summary.get("axes", {}).items():
        aggregates, verdicts = facts["aggregates"], facts["verdicts"]
        table.add_row(
            axis,
            str(facts["n_items"]),
            _with_interval(aggregates["mean_culture_share"], percent=True),
            _with_interval(aggregates["mean_wording_share"], percent=True),
            _with_interval(aggregates["mean_wording_contrast_share"], percent=True),
            _with_interval(aggregates["median_cwi"], percent=False),
            _with_interval(aggregates["mean_kendall_w"], percent=False),
            *(
                str(verdicts[v])
                for v in ("culture-dominant", "wording-dominated", "mixed", "no culture effect")
            ),
        )
    return table


def _with_interval(aggregate: dict[str, float | None], *, percent: bool) -> str:
    def show(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.0%}" if percent else f"{value:.2f}"

    return (
        f"{show(aggregate['estimate'])} [{show(aggregate['ci_low'])}, {show(aggregate['ci_high'])}]"
    )
