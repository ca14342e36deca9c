"""Report sections for short-answer items (BLEnD match rates) and the prompt-language effect."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from culture_probe.report._rundir import RunData
from culture_probe.report.page import Section, bullet_list, figure, heading, join, paragraph
from culture_probe.report.svg import bar_chart
from culture_probe.report.tables import html_table

SHORT_ANSWER_COLUMNS = {
    "proxy_name": ("proxy", "The culture the question is about"),
    "language": ("language", "Language the question was asked in"),
    "wording": ("wording", "Paraphrase / framing @ language"),
    "n_items": ("items", "Questions in the cell"),
    "match_rate": (
        "match",
        "Share of answers containing an annotated answer, items weighing the same",
    ),
    "match_low": ("match low", "95% item-bootstrap interval, lower end"),
    "match_high": ("match high", "95% item-bootstrap interval, upper end"),
    "mean_match_share": ("annotator share", "Share of annotators who gave the matched answer"),
    "refusal_rate": ("refusals", "Share of refused answers"),
}
LANGUAGE_COLUMNS = {
    "item_id": ("item", "Probe item"),
    "axis": ("axis", "Demographic axis"),
    "languages": ("languages", "Prompt languages compared"),
    "culture_share": ("culture", "Share of variance due to the proxy"),
    "language_share": ("language", "Share due to the prompt language, whatever the proxy"),
    "interaction_share": ("language x culture", "Share due to language-by-proxy changes"),
    "p_language": ("p language", "F_L = MS_L / MS_CL"),
}


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
    parts.append(_table(table, SHORT_ANSWER_COLUMNS, "table-short-answer"))
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
    return Section(
        "Prompt language", join(intro, _table(table, LANGUAGE_COLUMNS, "table-language"))
    )


def _table(frame: pd.DataFrame, columns: dict[str, tuple[str, str]], table_id: str) -> Markup:
    shown = [column for column in columns if column in frame]
    return join(
        heading("Table", 4),
        html_table(
            frame,
            table_id=table_id,
            columns=shown,
            labels={c: columns[c][0] for c in shown},
            descriptions={c: columns[c][1] for c in shown},
        ),
    )
