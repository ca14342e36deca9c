"""The report of one run: verdicts in words, charts, tables, every prompt, the manifest.

:func:`render_run_report` reads a run directory (the plan, the responses, the ``stats/`` tables and
``summary.json`` written by :mod:`culture_probe.analysis`) and writes one self-contained
``report.html``. It computes no statistics: every number on the page comes from the analysis tables,
except the model's pooled answer distribution per proxy, the plain mean of its option probabilities,
shown beside the human one. A table the run does not have leaves its section with a note.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from markupsafe import Markup

from culture_probe.formatting import format_interval
from culture_probe.report._missing import is_missing
from culture_probe.report._prompts import prompt_blob
from culture_probe.report._rundir import RunData, read_run_data
from culture_probe.report._short_answer import language_section, short_answer_section
from culture_probe.report.page import (
    Section,
    bullet_list,
    collapsible,
    figure,
    heading,
    join,
    key_values,
    note,
    paragraph,
    render_page,
    write_page,
)
from culture_probe.report.svg import (
    distribution_bars,
    forest_plot,
    heatmap,
    histogram,
    range_plot,
    stacked_bar_chart,
)
from culture_probe.report.tables import html_table
from culture_probe.store import RunDirectory

SCORE_LEGEND = "expected answer: 0 = first option, 1 = last"

ITEM_COLUMNS = {
    "item_id": ("item", "Probe item; the link opens its prompts"),
    "axis": ("axis", "Demographic axis whose proxies were compared"),
    "verdict": ("verdict", "Decision rule of robustness.md §3.11"),
    "cwi": ("CWI", "Culture-vs-wording index s2_C / (s2_P + s2_CP)"),
    "cwi_low": ("CWI low", "95% paraphrase-bootstrap interval, lower end"),
    "cwi_high": ("CWI high", "95% paraphrase-bootstrap interval, upper end"),
    "culture_share": ("culture", "Share of variance due to the proxy (s2_C / total)"),
    "wording_share": ("wording", "Share of variance due to the wording level (s2_P / total)"),
    "wording_contrast_share": ("wording x culture", "Share due to wording-by-proxy changes"),
    "kendall_w": ("Kendall W", "Agreement of the proxy ranking across wordings (Friedman)"),
    "rho2_1": ("Eρ²(1)", "Reliability of a culture comparison from a single wording (G-theory)"),
    "paraphrases_needed_for_0_8": ("wordings for 0.8", "Wordings to average for Eρ² >= 0.8"),
    "p_proxy_bh": ("p culture (BH)", "F_C = MS_C / MS_CP, Benjamini-Hochberg adjusted"),
    "alpha_wording": ("α wordings", "Krippendorff's alpha of the answers across wordings"),
    "alpha_order": ("α orders", "Krippendorff's alpha of the answers across option orders"),
    "beats_placebo": ("beats placebo", "Culture variance above the placebo personas' (CI > 0)"),
    "nsr": ("NSR", "Noise-to-human-signal ratio; >= 1: wording moves answers as much as countries"),
    "order_share": ("order", "Share of variance due to the option order as a third factor"),
    "reversal_shift": ("reversal shift", "Mean answer, canonical minus reversed option order"),
    "cow_ratio": ("COW", "Proxy flip rate / wording flip rate; > 1: culture flips answers more"),
}
CELL_COLUMNS = {
    "item_id": ("item", "Probe item"),
    "axis": ("axis", "Demographic axis"),
    "proxy_name": ("proxy", "Proxy value"),
    "proxy_kind": ("kind", "culture, placebo or baseline"),
    "mean_score": ("mean answer", SCORE_LEGEND),
    "wording_spread": ("wording spread", "max - min of the mean answer over wordings"),
    "order_spread": ("order spread", "max - min of the mean answer over option orders"),
    "wording_flip_rate": (
        "wording flips",
        "Share of wording pairs whose most likely answer differs",
    ),
    "order_flip_rate": ("order flips", "Share of order pairs whose most likely answer differs"),
    "normalised_entropy": ("entropy", "Entropy of the pooled answer distribution / log K"),
    "low_option_mass_rate": ("low mass", "Share of prompts with < 50% probability on the options"),
    "refusal_rate": ("refusals", "Share of refused answers"),
}
SHARE_COLUMNS = {
    "culture_share": "culture",
    "wording_share": "wording level",
    "wording_contrast_share": "wording x culture",
    "residual_share": "order and noise",
}
INFORMATION_COLUMNS = {
    "info_culture": "culture I(A;C)",
    "info_wording": "wording I(A;P|C)",
    "info_order": "order I(A;O|C,P)",
    "noise": "left over H(A|C,P,O)",
}


def render_run_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the HTML report of a run directory.

    Args:
        run_dir: The run directory (``plan.parquet`` required; the rest adds sections).
        out: Where to write; default ``run_dir / "report.html"``. Written atomically.

    Returns:
        The path written.

    Raises:
        InputError: the run directory has no plan, or one of its files cannot be read.

    Example:
        >>> render_run_report(Path("reports/values/run-1"))  # doctest: +SKIP
        PosixPath('reports/values/run-1/report.html')
    """
    data = read_run_data(Path(run_dir))
    target = Path(out) if out is not None else RunDirectory(data.path).report_path
    return write_page(target, build_run_page(data))


def build_run_page(data: RunData) -> str:
    """The HTML text of the report for an already loaded run."""
    names = _proxy_names(data.plan)
    sections = [
        _verdict_section(data),
        short_answer_section(data),
        _charts_section(data, names),
        _factors_section(data),
        language_section(data),
        _alignment_section(data, names),
        _tables_section(data, names),
        _prompts_section(data),
        _coverage_section(data),
        _manifest_section(data),
    ]
    study = _first(data.plan, "study") or data.path.name
    model = _model_name(data.manifest)
    lead = f"{len(data.plan)} prompts" + (f" put to {model}" if model else "")
    return render_page(
        f"culture-probe report: {study}",
        [section for section in sections if section is not None],
        lead=lead + ". Is it culture, or is it the wording?",
        data={"prompt-data": prompt_blob(data.plan, data.responses)},
        scripts=("prompts.js",),
    )


# --- the verdict ---------------------------------------------------------------------------------


def _verdict_section(data: RunData) -> Section:
    items = data.table("item_stats")
    if items is None:
        return Section("Verdict", _missing_note(data, "item_stats"))
    parts = [paragraph(sentence, "verdict") for sentence in _study_verdicts(items, data.summary)]
    if data.headline:
        parts.append(heading("What the analysis found"))
        parts.append(bullet_list(data.headline, "verdicts"))
    per_item = bullet_list([_item_verdict(row) for row in _records(items)], "verdicts")
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


def _interval(aggregate: dict[str, Any], value_format: str) -> str:
    return format_interval(
        aggregate["estimate"], aggregate.get("ci_low"), aggregate.get("ci_high"), value_format
    )


def _item_verdict(row: dict[str, Any]) -> Markup:
    parts = []
    for name, label, value_format in (
        ("cwi", "CWI", "{:.2f}"),
        ("culture_share", "culture share", "{:.0%}"),
        ("kendall_w", "Kendall's W", "{:.2f}"),
        ("rho2_1", "single-wording reliability", "{:.2f}"),
    ):
        if _present(row.get(name)):
            bounds = {"estimate": row[name], "ci_low": None, "ci_high": None}
            if _present(row.get(f"{name}_low")) and _present(row.get(f"{name}_high")):
                bounds.update(ci_low=row[f"{name}_low"], ci_high=row[f"{name}_high"])
            parts.append(f"{label} {_interval(bounds, value_format)}")
    verdict = str(row.get("verdict", "no verdict"))
    return Markup('<a href="{}">{}</a> ({}): <strong>{}</strong>. {}').format(
        _prompt_link(row["item_id"]), row["item_id"], row.get("axis", ""), verdict, "; ".join(parts)
    )


# --- charts --------------------------------------------------------------------------------------


def _charts_section(data: RunData, names: dict[str, str]) -> Section:
    parts = [
        _cwi_forest(data),
        _variance_shares(data),
        _wording_heatmaps(data, names),
        _spread_histogram(data),
        _position_bias(data),
        _information_split(data),
        _placebo_forest(data),
    ]
    return Section("Culture or wording", join(*parts))


def _cwi_forest(data: RunData) -> Markup:
    items = data.table("item_stats")
    if items is None or "cwi" not in items:
        return _missing_note(data, "item_stats")
    labels = _unit_labels(items)
    chart = forest_plot(
        labels,
        _floats(items["cwi"]),
        _floats(items.get("cwi_low")),
        _floats(items.get("cwi_high")),
        title="Culture-vs-wording index per item (95% CI)",
        reference=1.0,
        log_scale=True,
        value_label="CWI = s2_culture / (s2_wording + s2_wording x culture); log scale",
    )
    caption = "Right of the dashed line, culture moves the answer more than the wording does."
    return join(heading("Culture against wording"), figure(chart, caption, "chart-cwi"))


def _variance_shares(data: RunData) -> Markup:
    items = data.table("item_stats")
    if items is None:
        return Markup("")
    shares = {label: _floats(items[c]) for c, label in SHARE_COLUMNS.items() if c in items}
    if not shares:
        return note("item_stats has no variance shares; the stacked bars are left out.")
    chart = stacked_bar_chart(
        _unit_labels(items),
        shares,
        title="Where the answer variance comes from",
        domain=(0.0, 1.0),
        value_format="{:.0%}",
    )
    caption = (
        "Variance components of the expected answer (proxy x wording, wording as a random facet)."
    )
    return join(heading("Variance shares"), figure(chart, caption, "chart-shares"))


def _wording_heatmaps(data: RunData, names: dict[str, str]) -> Markup:
    cells = data.table("wording_cells")
    if cells is None:
        return join(heading("Answers per proxy and wording"), _missing_note(data, "wording_cells"))
    shown = cells.loc[cells["proxy_kind"].isin(["culture", "placebo"])]
    folds = []
    for index, (item, unit) in enumerate(shown.groupby("item_id", sort=True)):
        grid = unit.pivot_table(
            index=["proxy_kind", "proxy"], columns="wording", values="mean_score", aggfunc="mean"
        ).sort_index(level=0, key=lambda level: level != "culture", sort_remaining=True)
        rows = [
            names.get(str(proxy), str(proxy)) + (" (placebo)" if kind == "placebo" else "")
            for kind, proxy in grid.index
        ]
        chart = heatmap(
            rows,
            [str(c) for c in grid.columns],
            [_floats(grid.loc[key]) for key in grid.index],
            title=f"{item}: expected answer per proxy and wording",
            domain=(0.0, 1.0),
            legend_label=SCORE_LEGEND,
        )
        link = Markup('<p><a href="{}">Prompts of {}</a></p>').format(_prompt_link(item), item)
        folds.append(collapsible(str(item), join(figure(chart), link), open=index == 0))
    return join(heading("Answers per proxy and wording"), *folds)


def _spread_histogram(data: RunData) -> Markup:
    cells = data.table("cell_stats")
    if cells is None or "wording_spread" not in cells:
        return join(heading("Wording spread"), _missing_note(data, "cell_stats"))
    culture = cells.loc[cells["proxy_kind"] == "culture", "wording_spread"]
    chart = histogram(
        _floats(culture),
        title="How far the wording alone moves one proxy's answer",
        bins=20,
        domain=(0.0, 1.0),
        value_label="wording spread: max - min of the expected answer over wordings",
    )
    caption = f"{len(culture)} item x proxy cells; each tick below the bars is one cell."
    return join(heading("Wording spread"), figure(chart, caption, "chart-spread"))


def _position_bias(data: RunData) -> Markup:
    bias = data.table("position_bias")
    if bias is None:
        return join(heading("Option position"), _missing_note(data, "position_bias"))
    grid = bias.pivot_table(index="item_id", columns="position", values="choice_share")
    columns = [f"position {int(c) + 1}" for c in grid.columns]
    chart = heatmap(
        [str(i) for i in grid.index],
        columns,
        [_floats(grid.loc[i]) for i in grid.index],
        title="Share of probability on each displayed position",
        palette="cividis",
        value_format="{:.0%}",
        legend_label="share of probability",
    )
    caption = (
        "Every option is shown at every position equally often, so a model that answers by "
        "content spreads evenly: 1/K per position. Unevenness is position or label bias."
    )
    return join(heading("Option position"), figure(chart, caption, "chart-position"))


def _information_split(data: RunData) -> Markup:
    information = data.table("information")
    if information is None:
        return join(heading("Information"), _missing_note(data, "information"))
    series = {label: _floats(information[c]) for c, label in INFORMATION_COLUMNS.items()
              if c in information}  # fmt: skip
    chart = stacked_bar_chart(
        _unit_labels(information),
        series,
        title="What the answer's entropy is made of (bits)",
        value_format="{:.2f}",
        value_label="bits",
    )
    caption = "H(A) = I(A;C) + I(A;P|C) + I(A;O|C,P) + H(A|C,P,O), uniform design weights."
    return join(heading("Information"), figure(chart, caption, "chart-information"))


def _placebo_forest(data: RunData) -> Markup:
    controls = data.table("controls")
    if controls is None:
        return join(heading("Controls"), _missing_note(data, "controls"))
    needed = ("culture_minus_placebo", "culture_minus_placebo_low", "culture_minus_placebo_high")
    if not all(c in controls for c in needed) or controls[needed[0]].isna().all():
        return join(heading("Controls"), note("This run has no placebo proxies to compare with."))
    chart = forest_plot(
        _unit_labels(controls),
        *(_floats(controls[c]) for c in needed),
        title="Culture variance minus placebo variance (95% CI)",
        reference=0.0,
        value_format="{:.3g}",  # variance differences run from 1e-5 to 0.1: significant digits
        value_label="s2_culture - s2_placebo of the expected answer",
    )
    caption = "Right of zero: real proxies move the answer more than irrelevant personas do."
    return join(heading("Controls"), figure(chart, caption, "chart-placebo"))


# --- every declared factor ------------------------------------------------------------------------


FACTOR_COLUMNS = {
    "item_id": ("item", "Probe item; the link opens its prompts"),
    "axis": ("axis", "Demographic axis (crossed axes: 'region x religion')"),
    "factor": ("factor", "Declared factor, interaction of proxy axes, or 'culture x' a factor"),
    "df": ("df", "Degrees of freedom the factor adds (0: not estimable in this design)"),
    "var": ("variance", "Variance component of the expected answer (truncated at 0)"),
    "share": ("share", "Share of the answer variance"),
    "share_low": ("share low", "95% interval (generalised pivotal quantities), lower end"),
    "share_high": ("share high", "95% interval, upper end"),
    "p_largest": ("P(largest)", "Share of pivotal draws in which this factor explains the most"),
    "method": ("method", "anova: balanced cells; type I (Henderson III): incomplete design"),
}


def _factors_section(data: RunData) -> Section | None:
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
        parts.append(figure(_factor_chart(str(axis), rows), _FACTOR_CAPTION, "chart-factors"))
        widened = rows.loc[rows["interval_extended"].astype(bool), "factor"].tolist()
        if widened:
            parts.append(
                note(
                    "Widened to reach the estimate (the resampled shares all lie on one side "
                    "of it): " + ", ".join(map(str, widened)) + "."
                )
            )
    per_item = item_verdicts_list(data.table("factor_verdicts"))
    if per_item is not None:
        parts.append(collapsible("Leading factor per item", per_item, open=False))
    parts.append(heading("Per item and factor"))
    parts.append(_described_table(stats, FACTOR_COLUMNS, "table-factors", None))
    return Section("Every declared factor", join(*parts))


_FACTOR_CAPTION = (
    "Mean over items of each factor's share of the answer variance, with a 95% interval that "
    "resamples items and the uncertainty of each item's components. 'culture x F' is how much the "
    "culture profile changes with F; the residual pools the interactions the model leaves out."
)


def _factor_chart(axis: str, rows: pd.DataFrame) -> Markup:
    ordered = rows.sort_values("share", ascending=False, kind="stable", na_position="last")
    return forest_plot(
        [str(f) for f in ordered["factor"]],
        _floats(ordered["share"]),
        _floats(ordered["share_low"]),
        _floats(ordered["share_high"]),
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
            _prompt_link(row["item_id"]), row["item_id"], row["axis"], row["verdict"]
        )
        for row in _records(verdicts)
    ]
    return bullet_list(lines, "verdicts")


# --- human data ----------------------------------------------------------------------------------


def _alignment_section(data: RunData, names: dict[str, str]) -> Section:
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
            _floats(unit["min_p"]),
            _floats(unit["max_p"]),
            _floats(unit["avg_p"]),
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


# --- tables --------------------------------------------------------------------------------------


def _tables_section(data: RunData, names: dict[str, str]) -> Section:
    parts = []
    items = data.table("item_stats")
    if items is None:
        parts.append(_missing_note(data, "item_stats"))
    else:
        parts.append(_described_table(items, ITEM_COLUMNS, "table-items", "One row per item."))
    cells = data.table("cell_stats")
    if cells is not None:
        cells = cells.assign(proxy_name=cells["proxy"].map(lambda p: names.get(str(p), str(p))))
        parts.append(heading("Per item and proxy"))
        parts.append(_described_table(cells, CELL_COLUMNS, "table-cells", None))
    for name, title in (
        ("information", "Information split"),
        ("controls", "Controls"),
        ("alignment_summary", "Similarity to people"),
    ):
        frame = data.table(name)
        if frame is not None:
            parts.append(heading(title))
            parts.append(html_table(frame, table_id=f"table-{name}", links=_item_links(frame)))
    return Section("Tables", join(*parts))


def _described_table(
    frame: pd.DataFrame, columns: dict[str, tuple[str, str]], table_id: str, caption: str | None
) -> Markup:
    shown = [c for c in columns if c in frame]
    return html_table(
        frame,
        table_id=table_id,
        caption=caption,
        columns=shown,
        labels={c: columns[c][0] for c in shown},
        descriptions={c: columns[c][1] for c in shown},
        links=_item_links(frame),
    )


def _item_links(frame: pd.DataFrame) -> dict[str, Any]:
    if "item_id" not in frame:
        return {}
    return {"item_id": lambda row: _prompt_link(row["item_id"])}


# --- prompts, coverage, manifest -----------------------------------------------------------------


def _prompts_section(data: RunData) -> Section:
    scored = "" if data.responses is not None else " This run has no responses yet."
    tools = Markup(
        '<div class="prompt-tools no-print"><label>Item <select id="prompt-item">'
        '<option value="">choose an item</option></select></label>'
        '<label>Filter <input id="prompt-filter" type="search" '
        'placeholder="proxy, wording or order"></label></div>'
        '<div id="prompt-viewer"><p class="note">Choose an item, or follow an item link.</p></div>'
    )
    text = (
        "Every prompt of the study, with its system and user messages and the probability the "
        "model gave each option, in the order the options were shown." + scored
    )
    return Section("Prompts", join(paragraph(text), tools), anchor="prompts", collapsible=True)


def _coverage_section(data: RunData) -> Section:
    plan = data.plan
    if "axis" not in plan or "proxy" not in plan:
        return Section("Taxonomy cells", note("The plan names no proxies."), collapsible=True)
    semantic = _find_key(data.manifest, "semantic_proxy") or _first(plan, "topic") or ""
    grouped = plan.groupby(["axis", "proxy_kind"], sort=True)
    rows = [
        {
            "demographic axis": axis,
            "kind": kind,
            "semantic proxy": semantic,
            "proxies": ", ".join(sorted(_names_of(group))),
            "items": int(group["item_id"].nunique()),
            "prompts": len(group),
        }
        for (axis, kind), group in grouped
    ]
    table = html_table(pd.DataFrame(rows), table_id="table-coverage", filterable=False)
    text = "The cells of the proxy taxonomy (demographic x semantic) this study probes."
    return Section("Taxonomy cells", join(paragraph(text), table), collapsible=True)


def _manifest_section(data: RunData) -> Section:
    if not data.manifest:
        return Section("Manifest", _missing_note(data, "manifest.json"), collapsible=True)
    pairs = list(_flatten(data.manifest))
    missing = [f"{name} not found" for name in data.missing]
    body = join(key_values(pairs), bullet_list(missing) if missing else Markup(""))
    return Section("Manifest", body, collapsible=True, open=False)


# --- helpers -------------------------------------------------------------------------------------


def _missing_note(data: RunData, name: str) -> Markup:
    where = name if name.endswith(".json") else f"stats/{name}.parquet"
    return note(f"{where} is not in this run, so this part is left out.")


def _prompt_link(item_id: object) -> str:
    return "#prompts/" + quote(str(item_id), safe="")


def _proxy_names(plan: pd.DataFrame) -> dict[str, str]:
    if "proxy_name" not in plan or "proxy" not in plan:
        return {}
    pairs = plan.drop_duplicates("proxy")[["proxy", "proxy_name"]]
    return {str(p): str(n) for p, n in zip(pairs["proxy"], pairs["proxy_name"], strict=True)}


def _names_of(group: pd.DataFrame) -> set[str]:
    column = "proxy_name" if "proxy_name" in group else "proxy"
    return {str(v) for v in group[column].unique()}


def _unit_labels(frame: pd.DataFrame) -> list[str]:
    """Item ids, with the axis added when the study compares several axes."""
    several = "axis" in frame and frame["axis"].nunique() > 1
    if several:
        return [f"{i} ({a})" for i, a in zip(frame["item_id"], frame["axis"], strict=True)]
    return [str(i) for i in frame["item_id"]]


def _floats(values: Iterable[Any] | None) -> list[float | None]:
    """Numbers for a chart; missing and infinite values become None (drawn as gaps)."""
    if values is None:
        return []
    out: list[float | None] = []
    for value in values:
        number = pd.to_numeric(value, errors="coerce")
        out.append(float(number) if _present(number) else None)
    return out


def _present(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _first(frame: pd.DataFrame, column: str) -> str | None:
    if column not in frame or frame.empty:
        return None
    value = frame[column].iloc[0]
    return None if is_missing(value) else str(value)


def _model_name(manifest: dict[str, Any]) -> str | None:
    model = manifest.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("id") or model.get("path")
    return str(model) if model else None


def _find_key(value: Any, key: str) -> str | None:
    if isinstance(value, dict):
        if key in value and not isinstance(value[key], dict | list):
            return str(value[key])
        for child in value.values():
            found = _find_key(child, key)
            if found is not None:
                return found
    return None


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """Dotted keys and readable values; lists of scalars (a command line) are joined by spaces."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        yield prefix, " ".join(str(v) for v in value)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _flatten(child, f"{prefix}[{index}]")
    else:
        yield prefix, "" if value is None else str(value)
