"""Culture or wording: the report's charts of the two-way split, spreads, position and controls."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from culture_probe.columns import SCORE_LEGEND
from culture_probe.formatting import PERCENT
from culture_probe.report._design_captions import option_position_caption
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import (
    floats,
    missing_note,
    nominal_note,
    ordinal_rows,
    prompt_link,
    unit_labels,
)
from culture_probe.report.page import Section, collapsible, figure, heading, join, note
from culture_probe.report.svg import forest_plot, heatmap, histogram, stacked_bar_chart

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


def charts_section(data: RunData, names: dict[str, str]) -> Section:
    parts = [
        nominal_note(data.table("item_stats"), data.plan),
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
        return missing_note(data, "item_stats")
    items = ordinal_rows(items, data.plan)
    if items.empty:
        return join(heading("Culture against wording"))
    labels = unit_labels(items)
    chart = forest_plot(
        labels,
        floats(items["cwi"]),
        floats(items.get("cwi_low")),
        floats(items.get("cwi_high")),
        title="Culture-vs-wording index per item (95% CI)",
        reference=1.0,
        log_scale=True,
        value_format="{:.2g}",
        value_label="CWI = s2_culture / (s2_wording + s2_wording x culture); log scale",
    )
    caption = "Right of the dashed line, culture moves the answer more than the wording does."
    return join(heading("Culture against wording"), figure(chart, caption, "chart-cwi"))


def _variance_shares(data: RunData) -> Markup:
    items = data.table("item_stats")
    if items is None:
        return Markup("")
    items = ordinal_rows(items, data.plan)
    if items.empty:
        return join(heading("Variance shares"))
    shares = {label: floats(items[c]) for c, label in SHARE_COLUMNS.items() if c in items}
    if not shares:
        return note("item_stats has no variance shares; the stacked bars are left out.")
    chart = stacked_bar_chart(
        unit_labels(items),
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
        return join(heading("Answers per proxy and wording"), missing_note(data, "wording_cells"))
    shown = ordinal_rows(cells.loc[cells["proxy_kind"].isin(["culture", "placebo"])], data.plan)
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
            [floats(grid.loc[key]) for key in grid.index],
            title=f"{item}: expected answer per proxy and wording",
            domain=(0.0, 1.0),
            legend_label=SCORE_LEGEND,
        )
        link = Markup('<p><a href="{}">Prompts of {}</a></p>').format(prompt_link(item), item)
        folds.append(collapsible(str(item), join(figure(chart), link), open=index == 0))
    return join(heading("Answers per proxy and wording"), *folds)


def _spread_histogram(data: RunData) -> Markup:
    cells = data.table("cell_stats")
    if cells is None or "wording_spread" not in cells:
        return join(heading("Wording spread"), missing_note(data, "cell_stats"))
    ordinal = ordinal_rows(cells, data.plan)
    culture = ordinal.loc[ordinal["proxy_kind"] == "culture", "wording_spread"]
    chart = histogram(
        floats(culture),
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
        return join(heading("Option position"), missing_note(data, "position_bias"))
    grid = bias.pivot_table(index="item_id", columns="position", values="choice_share")
    columns = [f"position {int(c) + 1}" for c in grid.columns]
    chart = heatmap(
        [str(i) for i in grid.index],
        columns,
        [floats(grid.loc[i]) for i in grid.index],
        title="Share of probability on each displayed position",
        palette="cividis",
        value_format="{:.0%}",
        legend_label="share of probability",
    )
    caption = option_position_caption(data.plan)
    return join(heading("Option position"), figure(chart, caption, "chart-position"))


def _information_split(data: RunData) -> Markup:
    information = data.table("information")
    if information is None:
        return join(heading("Information"), missing_note(data, "information"))
    series = {label: floats(information[c]) for c, label in INFORMATION_COLUMNS.items()
              if c in information}  # fmt: skip
    chart = stacked_bar_chart(
        unit_labels(information),
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
        return join(heading("Controls"), missing_note(data, "controls"))
    needed = ("culture_minus_placebo", "culture_minus_placebo_low", "culture_minus_placebo_high")
    if not all(c in controls for c in needed) or controls[needed[0]].isna().all():
        return join(heading("Controls"), note("This run has no placebo proxies to compare with."))
    controls = ordinal_rows(controls, data.plan)
    if controls.empty:
        return join(heading("Controls"))
    total = _total_variance(controls, data.table("item_stats"))
    caption = "Right of zero: real proxies move the answer more than irrelevant personas do."
    if total.isna().all():  # no components to divide by: raw variance, named so on the axis
        scaled, value_format = controls, "{:.3g}"
        value_label = "s2_culture - s2_placebo (variance of the expected answer, not a share)"
    else:
        scaled, value_format = controls[list(needed)].div(total, axis=0), PERCENT
        value_label = "(s2_culture - s2_placebo) / the item's total answer variance"
        caption += (
            " Both variances are divided by the item's total variance (culture, wording, "
            "interaction, residual), so the axis is in shares of the answer variance."
        )
    chart = forest_plot(
        unit_labels(controls),
        *(floats(scaled[c]) for c in needed),
        title="Culture minus placebo variance (95% CI)",
        reference=0.0,
        value_format=value_format,
        value_label=value_label,
    )
    return join(heading("Controls"), figure(chart, caption, "chart-placebo"))


def _total_variance(controls: pd.DataFrame, items: pd.DataFrame | None) -> pd.Series:
    """Per row of ``controls``, its item's total answer variance (the culture share's
    denominator); missing where item_stats lacks the components."""
    components = ["var_proxy", "var_wording", "var_interaction", "var_residual"]
    if items is None or not all(c in items for c in components):
        return pd.Series(float("nan"), index=controls.index)
    totals = items[components[:3]].sum(axis=1, min_count=3) + items["var_residual"].fillna(0.0)
    units = pd.MultiIndex.from_frame(items[["item_id", "axis"]])
    keys = pd.MultiIndex.from_frame(controls[["item_id", "axis"]])
    return pd.Series(pd.Series(totals.to_numpy(), index=units).reindex(keys).to_numpy(),
                     index=controls.index)  # fmt: skip
