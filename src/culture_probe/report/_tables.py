"""The tables section: every stats table of the run, labelled from the registry.

Each table the analysis wrote is shown once in the report, under its registry id
(:attr:`culture_probe.columns.StatsTable.element_id`): here, unless a section of its own shows it.
"""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from culture_probe.columns import STATS_TABLES, column_labels
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import described_table, item_links, missing_note
from culture_probe.report.page import Section, heading, join
from culture_probe.report.tables import html_table

#: tables a section of their own shows (factors, elicitation, short answers, prompt language)
SHOWN_ELSEWHERE = frozenset(
    {"factor_stats", "elicitation_stats", "short_answer", "language_effect"}
)


def tables_section(data: RunData, names: dict[str, str]) -> Section:
    """Every stats table present, in the registry's order, with labelled columns and tooltips."""
    parts = [] if data.table("item_stats") is not None else [missing_note(data, "item_stats")]
    for table in STATS_TABLES:
        frame = data.table(table.name)
        if frame is None or table.name in SHOWN_ELSEWHERE:
            continue
        if "proxy" in frame and "proxy_name" not in frame:
            frame = frame.assign(proxy_name=frame["proxy"].map(lambda p: names.get(str(p), str(p))))
        parts.append(heading(table.title))
        parts.append(_table(frame, table.name, table.element_id, f"One row per {table.grain}."))
    return Section("Tables", join(*parts))


def _table(frame: pd.DataFrame, name: str, element_id: str, caption: str) -> Markup:
    labels = column_labels(name)
    if labels:
        return described_table(frame, labels, element_id, caption)
    return html_table(frame, table_id=element_id, caption=caption, links=item_links(frame))
