"""The report's first section: the verdict in words, per axis and per item."""

from __future__ import annotations

from typing import Any

import pandas as pd
from markupsafe import Markup

from culture_probe.formatting import ValueFormat, format_interval, format_percent, format_ratio
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import missing_note, present, prompt_link, records
from culture_probe.report.page import Section, bullet_list, collapsible, heading, join, paragraph

#: the claims (``summary.json`` ``"claims"``, by the end of their key) that make the verdict
VERDICT_CLAIMS = (":culture_share", ":leading_factor", ":nominal_leading_factor")


def verdict_section(data: RunData) -> Section:
    items = data.table("item_stats")
    if items is None:
        return Section("Verdict", missing_note(data, "item_stats"))
    claims = data.summary.get("claims")
    if claims:  # analysed with typed claims: the verdict and the findings are their sentences
        verdicts = [c["sentence"] for c in claims if c.get("key", "").endswith(VERDICT_CLAIMS)]
        findings = [c["sentence"] for c in claims if c["sentence"] not in verdicts]
    else:
        verdicts, findings = _study_verdicts(items, data.summary), data.headline
    parts = [paragraph(sentence, "verdict") for sentence in verdicts]
    if findings:
        parts.append(heading("What the analysis found"))
        parts.append(bullet_list(findings, "verdicts"))
    nominal = data.table("nominal_stats")
    per_item = bullet_list(
        [
            _nominal_item_verdict(row, nominal)
            if row.get("scale") == "nominal" and nominal is not None
            else _item_verdict(row)
            for row in records(items)
        ],
        "verdicts",
    )
    # a long list would push the charts off the first screen; it folds away past a handful of items
    parts.append(collapsible(f"Per item ({len(items)})", per_item, open=len(items) <= 6))
    return Section("Verdict", join(*parts))


def _study_verdicts(items: pd.DataFrame, summary: dict[str, Any]) -> list[str]:
    sentences = []
    for axis, rows in items.groupby("axis", sort=True):
        aggregates = summary.get("axes", {}).get(str(axis), {}).get("aggregates", {})
        sentences.append(_axis_verdict(str(axis), rows, aggregates))
    return sentences


def _axis_verdict(axis: str, rows: pd.DataFrame, aggregates: dict[str, Any]) -> str:
    cwi = pd.to_numeric(rows["cwi"], errors="coerce")
    above = int((cwi > 1).sum())
    sentence = f"On the {axis} axis, culture moves the answer more than wording for {above} of "
    sentence += f"{len(rows)} items (culture-vs-wording index above 1"
    if "cwi_low" in rows:
        certain = int((pd.to_numeric(rows["cwi_low"], errors="coerce") > 1).sum())
        sentence += f"; for {certain} the whole 95% interval is above 1"
    sentence += ")"
    kendall = aggregates.get("mean_kendall_w")
    if kendall and kendall.get("estimate") is not None:
        sentence += (
            f"; the ranking of the {axis} proxies agrees across wordings with Kendall's "
            f"W = {_interval(kendall, '{:.2f}')}"
        )
    share = aggregates.get("mean_culture_share")
    if share and share.get("estimate") is not None:
        sentence += f"; culture explains {_interval(share, '{:.0%}')} of the answer variance"
    if "verdict" in rows:
        counts = rows["verdict"].value_counts()
        listed = ", ".join(f"{count} {name}" for name, count in counts.items())
        sentence += f". Verdicts: {listed}"
    return sentence + "."


def _interval(aggregate: dict[str, Any], value_format: ValueFormat) -> str:
    return format_interval(
        aggregate["estimate"], aggregate.get("ci_low"), aggregate.get("ci_high"), value_format
    )


def _item_verdict(row: dict[str, Any]) -> Markup:
    parts = []
    for name, label, value_format in (
        ("cwi", "CWI", format_ratio),
        ("culture_share", "culture share", "{:.0%}"),
        ("kendall_w", "Kendall's W", "{:.2f}"),
        ("rho2_1", "single-wording reliability", "{:.2f}"),
    ):
        if present(row.get(name)):
            bounds = {"estimate": row[name], "ci_low": None, "ci_high": None}
            if present(row.get(f"{name}_low")) and present(row.get(f"{name}_high")):
                bounds.update(ci_low=row[f"{name}_low"], ci_high=row[f"{name}_high"])
            parts.append(f"{label} {_interval(bounds, value_format)}")
    verdict = str(row.get("verdict", "no verdict"))
    return Markup('<a href="{}">{}</a> ({}): <strong>{}</strong>. {}').format(
        prompt_link(row["item_id"]), row["item_id"], row.get("axis", ""), verdict, "; ".join(parts)
    )


def _nominal_item_verdict(row: dict[str, Any], nominal: pd.DataFrame) -> Markup:
    """A nominal item in its own measure: the Gini variation's split, distances, modal agreement.

    Its ``item_stats`` row holds expected-position figures (CWI, Kendall's W) that mean nothing for
    options with no order; they are not shown here.
    """
    rows = nominal.loc[(nominal["item_id"] == row["item_id"]) & (nominal["axis"] == row["axis"])]
    head = Markup('<a href="{}">{}</a> ({}): <strong>nominal</strong>. ').format(
        prompt_link(row["item_id"]), row["item_id"], row.get("axis", "")
    )
    if rows.empty:
        return head + "No option-distribution measures were computed for it."
    culture = rows.loc[rows["kind"].isin(["proxy", "proxy interaction"]), "share"].sum()
    leading = rows.loc[rows["share"].idxmax()]
    first = rows.iloc[0]
    text = (
        f"Gini variation (CATANOVA): the proxies explain {format_percent(culture)} of it, "
        f"{leading['factor']} the most ({format_percent(leading['share'])}); Jensen-Shannon distance "
        f"{first['js_between_proxies']:.3f} bits between proxies and "
        f"{first['js_between_wordings']:.3f} bits between wordings; the most likely answer is "
        f"the same for {first['modal_agreement_proxies']:.0%} of proxy pairs and "
        f"{first['modal_agreement_wordings']:.0%} of wording pairs"
    )
    return head + text
