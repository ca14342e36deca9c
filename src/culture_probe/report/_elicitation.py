"""The report section on how the answer is asked for: per item and elicitation level, what the
model answered, the claims about it and ``elicitation_stats`` (shown here, not among the other
tables); shown for runs with several levels.

The chart is descriptive, as the pooled distributions beside the human ones are: each bar is the
plain mean of the option probabilities of one item's culture prompts at one level, with the
answers that name no option (refused, abstained, invalid) as their own segment, so that a level
whose answers are often refused cannot look like a level whose answers moved.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import Markup

from culture_probe.analysis import probability_matrix
from culture_probe.columns import ELICITATION_LEVELS, STATS_TABLE, column_labels
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import described_table
from culture_probe.report.page import Section, bullet_list, collapsible, figure, join, paragraph
from culture_probe.report.svg import stacked_bar_chart

FACTOR = "elicitation"
NO_OPTION = "no option"


def elicitation_section(data: RunData) -> Section | None:
    """The section; None for a run asked one way (or not analysed)."""
    table = data.table("elicitation_stats")
    if table is None or data.responses is None or FACTOR not in data.plan.columns:
        return None
    levels = _levels(data.plan)
    if len(levels) < 2:
        return None
    intro = paragraph(
        "The same prompt cells asked for their answer in different ways: the probability of "
        "each option label as the next token (first_token), a label generated under a "
        "constraint (constrained), an answer written with the options shown (written), an "
        "answer in the model's own words mapped back to an option (open)."
    )
    sentences = [
        str(claim["sentence"])
        for claim in data.summary.get("claims", [])
        if "elicitation" in str(claim.get("key", ""))
    ]
    parts = [intro]
    if sentences:
        parts.append(bullet_list(sentences, "verdicts"))
    frame = _answer_shares(data.plan, data.responses, levels)
    if not frame.empty:
        parts.append(_chart(frame, data.plan, levels))
    caption = "One row per level: for the study, each item, and each item and proxy (scope)."
    rows = described_table(
        table,
        column_labels("elicitation_stats"),
        STATS_TABLE["elicitation_stats"].element_id,
        caption,
    )
    # a study of many items and proxies has hundreds of rows: folded away past a screenful
    parts.append(collapsible(f"elicitation_stats ({len(table)} rows)", rows, open=len(table) <= 40))
    return Section("How the answer is asked for", join(*parts))


def _levels(plan: pd.DataFrame) -> list[str]:
    present = set(plan[FACTOR].dropna().astype(str))
    return [level for level in ELICITATION_LEVELS if level in present] + sorted(
        present - set(ELICITATION_LEVELS)
    )


def _answer_shares(plan: pd.DataFrame, responses: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Per item and level: the mean probability of each option (canonical order) over the
    culture prompts, each answer without an option counting as one unit of ``NO_OPTION``."""
    columns = ["prompt_id", "item_id", FACTOR, "proxy_kind"]
    joined = plan.loc[:, columns].merge(responses[["prompt_id", "probs"]], on="prompt_id")
    joined = joined.loc[joined["proxy_kind"] == "culture"].reset_index(drop=True)
    if joined.empty:
        return pd.DataFrame()
    matrix = probability_matrix(joined)
    no_option = np.isnan(matrix).all(axis=1)
    shares = pd.DataFrame(
        np.nan_to_num(matrix), columns=[f"option {k + 1}" for k in range(matrix.shape[1])]
    )
    shares[NO_OPTION] = no_option.astype(float)
    shares["item_id"] = joined["item_id"].astype(str)
    shares[FACTOR] = pd.Categorical(joined[FACTOR].astype(str), categories=levels, ordered=True)
    return shares.groupby(["item_id", FACTOR], observed=True, sort=True).mean().reset_index()


def _chart(frame: pd.DataFrame, plan: pd.DataFrame, levels: list[str]) -> Markup:
    labels = [
        f"{item} · {level}" for item, level in zip(frame["item_id"], frame[FACTOR], strict=True)
    ]
    segments = {
        name: [float(v) for v in frame[name]]
        for name in frame.columns
        if name not in ("item_id", FACTOR) and (name == NO_OPTION or frame[name].gt(0).any())
    }
    chart = stacked_bar_chart(
        labels,
        segments,
        title="Answers per item and elicitation level",
        value_label="share of answers",
        domain=(0.0, 1.0),
        value_format="{:.0%}",
    )
    return figure(chart, _caption(plan, levels), "chart-elicitation")


def _caption(plan: pd.DataFrame, levels: list[str]) -> str:
    """What one bar holds, from the design: the levels, the prompts per level, the options."""
    culture = plan.loc[plan["proxy_kind"] == "culture"]
    counts = culture[FACTOR].astype(str).value_counts()
    per_level = ", ".join(f"{level} {int(counts.get(level, 0))}" for level in levels)
    equal = len({int(counts.get(level, 0)) for level in levels}) == 1
    options = int(np.max(culture["n_options"])) if "n_options" in culture and len(culture) else 0
    return (
        f"One bar per item and level: the mean option probabilities over the item's culture "
        f"prompts (culture prompts per level: {per_level}"
        + ("" if equal else "; the levels hold different numbers of prompts")
        + f"). Options 1 to {options} in each item's own order; written and open answers count "
        "fully for the option they were parsed or mapped to; answers that name no option are "
        "their own segment."
    )
