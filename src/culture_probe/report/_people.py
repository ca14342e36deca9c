"""Compared with people: similarity to the human reference, per item, proxy and wording."""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup

from culture_probe.report._rundir import RunData
from culture_probe.report._shared import floats
from culture_probe.report.page import Section, collapsible, figure, join, note, paragraph
from culture_probe.report.svg import distribution_bars, range_plot


def alignment_section(data: RunData, names: dict[str, str]) -> Section:
    summary = data.table("alignment_summary")
    if summary is None:
        text = "No human reference data in this run: the comparison with people is left out."
        return Section("Compared with people", note(text), collapsible=True, open=False)
    distributions = _model_and_human(data)
    folds = []
    for index, ((item, axis), unit) in enumerate(summary.groupby(["item_id", "axis"], sort=True)):
        labels = [names.get(str(p), str(p)) for p in unit["proxy"]]
        chart = range_plot(
            labels,
            floats(unit["min_p"]),
            floats(unit["max_p"]),
            floats(unit["avg_p"]),
            title=f"{item}: similarity to people, range over wordings",
            domain=(0.0, 1.0),
            value_label="1 - Jensen-Shannon distance (base 2); dot: mean over wordings",
        )
        bars = [
            _distribution_chart(str(item), str(proxy), names, distributions)
            for proxy in unit["proxy"]
        ]
        body = join(figure(chart), Markup('<div class="grid-2">'), *bars, Markup("</div>"))
        folds.append(collapsible(f"{item} ({axis})", body, open=index == 0))
    intro = paragraph(
        "For each country, how close the model's answers are to what people there answer, and how "
        "much that closeness moves when only the wording changes (Durmus et al. 2023)."
    )
    return Section("Compared with people", join(intro, *folds))


def _model_and_human(data: RunData) -> dict[tuple[str, str], dict[str, list[Any]]]:
    """Per (item, proxy): option texts, the model's mean option probabilities, the human shares."""
    if data.reference is None or data.responses is None or "probs" not in data.responses:
        return {}
    joined = data.plan.loc[data.plan["proxy_kind"] == "culture"].merge(
        data.responses[["prompt_id", "probs"]], on="prompt_id"
    )
    found: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for (item, proxy), rows in joined.groupby(["item_id", "proxy"], sort=True):
        matrix = [list(p) for p in rows["probs"] if p is not None and len(p)]
        if matrix:
            options = rows["options"].iloc[0] if "options" in rows else None
            found[(str(item), str(proxy))] = {
                "model": np.nanmean(matrix, axis=0).tolist(),
                "options": [] if options is None else [str(o) for o in options],
            }
    for (item, proxy), rows in data.reference.groupby(["item_id", "proxy"], sort=True):
        entry = found.get((str(item), str(proxy)))
        if entry is not None:
            shares = rows.groupby("option")["share"].sum()
            entry["people"] = [float(shares.get(k, 0.0)) for k in range(len(entry["model"]))]
    return found


def _distribution_chart(
    item: str,
    proxy: str,
    names: dict[str, str],
    distributions: dict[tuple[str, str], dict[str, list[Any]]],
) -> Markup:
    entry = distributions.get((str(item), str(proxy)))
    if not entry or "people" not in entry:
        return Markup("")
    count = len(entry["model"])
    shown = entry.get("options", [])
    options = shown if len(shown) == count else [f"option {k + 1}" for k in range(count)]
    chart = distribution_bars(
        options,
        {"model (mean over wordings)": entry["model"], "people": entry["people"]},
        title=f"{names.get(str(proxy), proxy)}: model and people",
        domain=(0.0, 1.0),
        width=340,
    )
    return figure(chart)
