"""Report sections for short-answer items (BLEnD match rates) and the prompt-language effect."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from culture_probe.columns import STATS_TABLE, column_labels
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import described_table
from culture_probe.report.page import Section, bullet_list, figure, join, paragraph
from culture_probe.report.svg import bar_chart


def short_answer_section(data: RunData) -> Section | None:
    """Match rate per proxy x language x wording: a bar chart and the table; None without one."""
    table = data.table("short_answer")
    if table is None:
        return None
    parts = [
        paragraph(
            "Short-answer questions have no options: the model writes an answer, which counts as "
            "a match when it contains an answer the annotators gave (BLEnD, Myung et al. 2024)."
        )
    ]
    if data.table("item_stats") is None and data.headline:
        parts.append(bullet_list(data.headline, "verdicts"))
    labels = [
        f"{name} · {wording}"
        for name, wording in zip(table["proxy_name"], table["wording"], strict=True)
    ]
    chart = bar_chart(
        labels,
        [float(value) for value in table["match_rate"]],
        title="Answers among the annotators' answers",
        domain=(0.0, 1.0),
        value_format="{:.0%}",
        value_label="match rate",
    )
    caption = "One bar per proxy and wording; the table gives the 95% intervals over questions."
    parts.append(figure(chart, caption, "chart-short-answer"))
    parts.append(_labelled("short_answer", table))
    return Section("Short answers", join(*parts))


def language_section(data: RunData) -> Section | None:
    """The proxy x prompt-language decomposition per item; None for a one-language run."""
    table = data.table("language_effect")
    if table is None:
        return None
    intro = paragraph(
        "How much the answer moves with the language of the prompt, against how much it moves "
        "with the culture asked about (proxy x language variance decomposition)."
    )
    return Section("Prompt language", join(intro, _labelled("language_effect", table)))


def _labelled(name: str, frame: pd.DataFrame) -> Markup:
    """A stats table with the registry's labels and tooltips."""
    return described_table(frame, column_labels(name), STATS_TABLE[name].element_id, None)
