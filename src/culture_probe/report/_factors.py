"""Every declared factor: the N-way decomposition's shares, per axis and per item."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from culture_probe.columns import STATS_TABLE, column_labels
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import described_table, floats, prompt_link, records
from culture_probe.report.page import (
    Section,
    bullet_list,
    collapsible,
    figure,
    heading,
    join,
    note,
    paragraph,
)
from culture_probe.report.svg import forest_plot


def factors_section(data: RunData) -> Section | None:
    """Variance shares of every declared factor with intervals: per axis, then per item."""
    summary = data.table("factor_summary")
    stats = data.table("factor_stats")
    if summary is None or stats is None:
        return None
    parts = []
    verdicts = data.summary.get("factors", {})
    for axis, rows in summary.groupby("axis", sort=True):
        facts = verdicts.get(str(axis), {})
        if facts.get("verdict"):
            line = f"On the {axis} axis, over all declared factors: {facts['verdict']}"
            line += f" ({facts.get('n_items', len(rows))} items)."
            parts.append(paragraph(line, "verdict"))
        parts.append(figure(_factor_chart(str(axis), rows), factor_caption(rows), "chart-factors"))
        widened = rows.loc[rows["interval_extended"].astype(bool), "factor"].tolist()
        if widened:
            parts.append(
                note(
                    "Widened to reach the estimate (the resampled shares all lie on one side "
                    "of it): " + ", ".join(map(str, widened)) + "."
                )
            )
        below = below_error_note(rows)
        if below is not None:
            parts.append(below)
    per_item = item_verdicts_list(data.table("factor_verdicts"))
    if per_item is not None:
        parts.append(collapsible("Leading factor per item", per_item, open=False))
    parts.append(heading("Per item and factor"))
    parts.append(
        described_table(
            stats, column_labels("factor_stats"), STATS_TABLE["factor_stats"].element_id, None
        )
    )
    return Section("Every declared factor", join(*parts))


def below_error_note(rows: pd.DataFrame) -> Markup | None:
    """Names the factors whose interval's upper end comes from their own mean square alone
    (``below_error``; docs/statistics.md, "Factor shares"), or None where there are none."""
    flagged = rows.get("below_error", pd.Series(False, index=rows.index)).fillna(False)
    names = rows.loc[flagged.astype(bool), "factor"].astype(str).tolist()
    if not names:
        return None
    return note(
        f"Under their error: {', '.join(names)}. Their mean square lies below what it would be "
        "with no effect of their own, so every draw of their untruncated share is at or below 0; "
        "the upper end of their interval is read from their own mean square alone (its 97.5% "
        "chi-square bound)."
    )


def factor_caption(rows: pd.DataFrame) -> str:
    """The caption of one axis's factor chart, from what its rows are: pooled over several items
    or one item's own, and which factors are fixed (docs/factorial-analysis.md)."""
    counts = pd.to_numeric(rows.get("n_items", pd.Series(dtype="float64")))
    n_items = int(counts.max()) if counts.notna().any() else 0
    effects = rows.get("effect", pd.Series("random", index=rows.index))
    fixed = [str(f) for f in rows.loc[effects == "fixed", "factor"]]
    if n_items > 1:
        text = (
            f"Each factor's share of the answer variance pooled over the {n_items} items (the sum "
            "of the items' components over the sum of their totals), with the ratio estimator's "
            "95% interval over items."
        )
    else:
        text = (
            "Each factor's share of this item's answer variance, with its 95% interval: "
            "generalised pivots for random factors, a parametric bootstrap of the fitted model "
            "for fixed ones."
        )
    if fixed:
        text += (
            f" Fixed by design: {', '.join(fixed)}; their share is the variance of their effects "
            "between the levels the study uses."
        )
    return text + (
        " 'culture x F' is how much the culture profile changes with F; the residual pools the "
        "interactions the model leaves out."
    )


def _factor_chart(axis: str, rows: pd.DataFrame) -> Markup:
    ordered = rows.sort_values("share", ascending=False, kind="stable", na_position="last")
    return forest_plot(
        [str(f) for f in ordered["factor"]],
        floats(ordered["share"]),
        floats(ordered["share_low"]),
        floats(ordered["share_high"]),
        title=f"{axis}: share of the answer variance per factor (95% CI)",
        value_format="{:.0%}",
        value_label="share of the variance of the expected answer",
    )


def item_verdicts_list(verdicts: pd.DataFrame | None) -> Markup | None:
    """One line per item: which factor leads and how surely."""
    if verdicts is None or verdicts.empty:
        return None
    lines = [
        Markup('<a href="{}">{}</a> ({}): {}').format(
            prompt_link(row["item_id"]), row["item_id"], row["axis"], row["verdict"]
        )
        for row in records(verdicts)
    ]
    return bullet_list(lines, "verdicts")
