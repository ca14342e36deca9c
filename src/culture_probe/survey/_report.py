"""The coverage report of a literature review as one self-contained HTML page.

Sections: papers per label (with whether the probe suite covers the cell), the demographic x
semantic co-occurrence heatmap, papers per year, and the gaps. The numbers are also embedded as
JSON (``<script type="application/json" id="coverage">``) for anyone who wants to reuse them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from markupsafe import Markup

from culture_probe.report import (
    Section,
    bar_chart,
    bullet_list,
    figure,
    heading,
    heatmap,
    html_table,
    join,
    note,
    paragraph,
    render_page,
    write_page,
)
from culture_probe.survey._coverage import Coverage

_LABEL_HEADERS = {
    "dimension": "Dimension",
    "label": "Label",
    "label_id": "Id",
    "status": "Taxonomy status",
    "papers": "Papers",
    "share": "Share of papers",
    "probe_suite": "Probe suite covers it",
    "studies": "Studies",
}
_LABEL_DESCRIPTIONS = {
    "papers": "Distinct papers annotated with this label.",
    "probe_suite": "A study in taxonomy/*.yaml names this cell as its semantic_proxy or an axis.",
    "status": "studied, extension (added by culture-probe) or not_yet_studied in the survey.",
}


def render_coverage_report(coverage: Coverage, source: str, out: str | Path) -> Path:
    """Write the coverage report of ``coverage`` (read from ``source``) to ``out``."""
    sections = [
        Section("Papers per label", _labels_section(coverage)),
        Section("Demographic x semantic proxies", _cooccurrence_section(coverage)),
        Section("Papers per year", _years_section(coverage)),
        Section("Gaps", _gaps_section(coverage)),
    ]
    html = render_page(
        "Literature coverage",
        sections,
        lead=f"{coverage.papers} papers from {Path(source).name}, annotated along the taxonomy of "
        "Adilazuarda, Mukherjee et al. (EMNLP 2024).",
        data={"coverage": _json_rows(coverage.per_label)},
    )
    return write_page(Path(out), html)


def _json_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    return [
        {str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _labels_section(coverage: Coverage) -> Markup:
    parts: list[Markup] = []
    for dimension, rows in coverage.per_label.groupby("dimension", sort=False):
        parts.append(heading(str(rows["field_label"].iloc[0])))
        parts.append(
            figure(
                bar_chart(
                    rows["label"].tolist(),
                    rows["papers"].tolist(),
                    title=f"Papers per {dimension} label",
                    value_label="papers",
                    value_format="{:.0f}",
                )
            )
        )
    table = coverage.per_label.assign(
        probe_suite=coverage.per_label["probe_suite"].map({True: "yes", False: "no"})
    )
    parts.append(
        html_table(
            table,
            table_id="labels",
            caption="Papers per label",
            columns=list(_LABEL_HEADERS),
            labels=_LABEL_HEADERS,
            descriptions=_LABEL_DESCRIPTIONS,
            formats={"share": "{:.0%}"},
        )
    )
    return join(*parts)


def _cooccurrence_section(coverage: Coverage) -> Markup:
    counts = coverage.cooccurrence
    if counts.empty:
        return note("The taxonomy has no demographic or no semantic dimension.")
    counts = counts.loc[counts.sum(axis=1) > 0, counts.sum(axis=0) > 0]
    if counts.empty:
        return note("No paper is annotated with both a demographic and a semantic proxy.")
    names = coverage.per_label.set_index("label_id")["label"].to_dict()
    chart = heatmap(
        [names.get(r, r) for r in counts.index],
        [names.get(c, c) for c in counts.columns],
        counts.to_numpy().tolist(),
        title="Papers using both proxies",
        value_format="{:.0f}",
        legend_label="papers",
    )
    return join(
        paragraph("Rows and columns without any paper are left out; they are listed under Gaps."),
        figure(chart, caption="Papers per demographic x semantic proxy pair"),
    )


def _years_section(coverage: Coverage) -> Markup:
    years = coverage.per_year
    if years.empty:
        return note("No paper has a year.")
    return figure(
        bar_chart(
            years["year"].tolist(),
            years["papers"].tolist(),
            title="Papers per year",
            value_format="{:.0f}",
        )
    )


def _gaps_section(coverage: Coverage) -> Markup:
    gaps = coverage.gaps
    if gaps.empty:
        return paragraph("Every taxonomy cell has at least one paper.", "verdict")
    filled = gaps[gaps["probe_suite"]]
    entries = [
        f"{row.label} ({row.dimension})"
        + (f": probed by {row.studies}" if row.probe_suite else ": not probed by any study")
        for row in gaps.itertuples()
    ]
    return join(
        paragraph(
            f"{len(gaps)} of {len(coverage.per_label)} taxonomy cells have no paper; the "
            f"probe suite covers {len(filled)} of them.",
            "verdict",
        ),
        bullet_list(entries),
    )
