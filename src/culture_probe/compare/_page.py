"""The comparison page: several models on one plan, as one self-contained HTML file.

It lives with the comparison and is built from the report's generic blocks
(:mod:`culture_probe.report.page`, ``svg``, ``tables``), so the flow runs one way: compare uses
report, never the reverse. It renders the tables of a :class:`Comparison` and computes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup

from culture_probe.report.page import (
    Section,
    figure,
    heading,
    join,
    key_values,
    note,
    paragraph,
    render_page,
    write_page,
)
from culture_probe.report.svg import forest_plot
from culture_probe.report.tables import html_table

if TYPE_CHECKING:
    from culture_probe.compare._comparison import Comparison

INTERVAL_FORMATS = {
    column: "{:+.3f}" for column in ("difference", "low", "high", "mean_difference")
} | {"p": "{:.3g}", "p_bh": "{:.3g}", "mean_a": "{:.3f}", "mean_b": "{:.3f}"}
DIFFERENCE_COLUMNS = (
    "item_id", "model_a", "model_b", "n_wordings", "mean_a", "mean_b", "difference", "low", "high",
    "p", "p_bh", "within_noise", "significant",
)  # fmt: skip
INTERACTION_COLUMNS = (
    "item_id", "model_a", "model_b", "n_wordings", "f_model", "p_model", "p_model_bh",
    "f_interaction", "p_interaction", "p_interaction_bh",
)  # fmt: skip
PROXY_COLUMNS = (
    "item_id", "axis", "proxy", "model_a", "model_b", "n_wordings", "difference", "low", "high",
    "p_bh", "within_noise", "significant",
)  # fmt: skip
DESCRIPTIONS = {
    "difference": "mean over wordings of the paired difference of scores, model b minus model a",
    "low": "95% t interval over the per-wording mean differences (excludes 0 iff p < 0.05)",
    "high": "95% t interval over the per-wording mean differences (excludes 0 iff p < 0.05)",
    "p_bh": "Benjamini-Hochberg adjusted p-value across the rows of the table",
    "within_noise": "no larger than the two runs' numeric noise floor: never called a difference",
    "noise_floor": "largest change of one score when only the batch changes (manifest)",
    "f_model": "MS model / MS model x wording: the model difference against the wording noise",
    "f_interaction": "MS model x wording / MS residual: does the difference change with the wording?",
    "kendall_w": "agreement of the wordings on the order of the models (1 = every wording alike)",
    "reversal_probability": "share of wordings that rank a pair of models the other way round",
    "avg_p": "mean over wordings of 1 - Jensen-Shannon distance to the country's people",
    "cps": "MaxP (1 - (MaxP - AvgP)), Mizrahi et al. 2024",
}


def render_comparison_report(comparison: Comparison, path: Path) -> Path:
    """Write the comparison report to ``path`` (atomically) and return the path."""
    return write_page(Path(path), build_comparison_page(comparison))


def build_comparison_page(comparison: Comparison) -> str:
    """The HTML text of the comparison report."""
    tables = comparison.tables
    sections = [
        _verdict_section(comparison),
        _differences_section(tables),
        _interaction_section(tables),
        _ranking_section(tables),
        _alignment_section(tables),
        _proxy_section(tables),
        _runs_section(comparison),
    ]
    models = comparison.models
    return render_page(
        f"culture-probe comparison of {len(models)} models",
        [section for section in sections if section is not None],
        lead=f"{comparison.summary.get('n_prompts', 0)} prompts put to {', '.join(models)}. "
        "Is the difference between the models larger than the wording noise?",
    )


def _verdict_section(comparison: Comparison) -> Section:
    sentences = comparison.summary.get("headline", [])
    return Section("Verdict", join(*(paragraph(sentence, "verdict") for sentence in sentences)))


def _differences_section(tables: dict[str, pd.DataFrame]) -> Section:
    items = tables.get("item_differences", pd.DataFrame())
    if items.empty:
        return Section("Differences per item", note("No item has prompts both models answered."))
    parts: list[Markup] = []
    for index, ((a, b), rows) in enumerate(items.groupby(["model_a", "model_b"], sort=False)):
        chart = forest_plot(
            rows["item_id"].tolist(),
            rows["difference"].tolist(),
            rows["low"].tolist(),
            rows["high"].tolist(),
            title="Model b minus model a, per item",
            reference=0.0,
            value_label="difference of mean scores (0 = first option, 1 = last)",
            value_format="{:+.3f}",
        )
        parts.append(
            figure(
                chart,
                caption=f"Model b = {b}, model a = {a}. Per item, the mean paired difference of "
                "scores with its "
                "95% t interval over wordings. Left of the dashed line, model b answers "
                "nearer the first option.",
                figure_id=_figure_id("chart-differences", index),
            )
        )
    parts.append(
        html_table(
            items,
            table_id="table-differences",
            caption="Paired differences per item (culture proxies)",
            columns=DIFFERENCE_COLUMNS,
            formats=INTERVAL_FORMATS,
            descriptions=DESCRIPTIONS,
        )
    )
    return Section("Differences per item", join(*parts), anchor="differences")


def _interaction_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    interaction = tables.get("interaction")
    if interaction is None or interaction.empty:
        return None
    body = join(
        paragraph(
            "The model effect is tested against the model x wording interaction (wording is a "
            "random facet); the interaction against the variation between proxies and orders. "
            "Benjamini-Hochberg across items."
        ),
        html_table(
            interaction,
            table_id="table-interaction",
            columns=INTERACTION_COLUMNS,
            descriptions=DESCRIPTIONS,
        ),
    )
    return Section("Model x wording", body, anchor="interaction")


def _ranking_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    ranking = tables.get("ranking")
    if ranking is None or ranking.empty:
        return None
    body = join(
        html_table(ranking, table_id="table-ranking", descriptions=DESCRIPTIONS),
        heading("Pairs of models"),
        html_table(
            tables.get("pair_reversals", pd.DataFrame()),
            table_id="table-reversals",
            formats={"difference": "{:+.3f}"},
            descriptions=DESCRIPTIONS,
        ),
    )
    return Section("Ranking across wordings", body, anchor="ranking")


def _alignment_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    country = tables.get("alignment_by_country")
    if country is None or country.empty:
        return None
    parts: list[Markup] = []
    for index, ((a, b), rows) in enumerate(country.groupby(["model_a", "model_b"], sort=False)):
        chart = forest_plot(
            rows["proxy"].tolist(),
            rows["difference"].tolist(),
            rows["low"].tolist(),
            rows["high"].tolist(),
            title="AvgP of model b minus model a, per country",
            reference=0.0,
            value_label="difference of AvgP (right: model b closer to the people)",
            value_format="{:+.3f}",
        )
        parts.append(
            figure(
                chart,
                caption=f"Model b = {b}, model a = {a}. Per country, AvgP paired on wordings, "
                "with its 95% interval.",
                figure_id=_figure_id("chart-alignment", index),
            )
        )
    parts.append(
        html_table(
            country,
            table_id="table-alignment-country",
            formats=INTERVAL_FORMATS,
            descriptions=DESCRIPTIONS,
        )
    )
    parts.append(heading("Per model: MaxP, AvgP, MinP, CPS"))
    parts.append(
        html_table(tables["alignment"], table_id="table-alignment", descriptions=DESCRIPTIONS)
    )
    return Section("Closer to the people", join(*parts), anchor="alignment")


def _proxy_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    proxies = tables.get("proxy_differences")
    if proxies is None or proxies.empty:
        return None
    table = html_table(
        proxies,
        table_id="table-proxies",
        columns=PROXY_COLUMNS,
        formats=INTERVAL_FORMATS,
        descriptions=DESCRIPTIONS,
    )
    return Section("Differences per proxy", table, anchor="proxies", collapsible=True, open=False)


def _runs_section(comparison: Comparison) -> Section:
    summary: dict[str, Any] = comparison.summary
    parts = [
        key_values(
            [
                ("prompts compared", str(summary.get("n_prompts", 0))),
                ("prompts left out", str(summary.get("n_left_out", 0))),
            ]
        ),
        html_table(
            comparison.tables["runs"],
            table_id="table-runs",
            filterable=False,
            descriptions=DESCRIPTIONS,
        ),
    ]
    return Section("Runs", join(*parts), anchor="runs")


def _figure_id(name: str, index: int) -> str:
    """``name`` for the first pair of models, ``name-2``, ``name-3``... for the next."""
    return name if index == 0 else f"{name}-{index + 1}"
