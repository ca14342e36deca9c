"""Crossed axes (e.g. religion x country): the mean answer per level of each axis, and the axis x
axis grid, one facet per option order so that a position bias is shown, never averaged away.

These means are descriptive and computed here from the scored prompts (the analysis tables hold
shares and tests, not cell means per order): a cell is one persona (one level of every axis), its
value under one wording and order the mean expected answer of its prompts. An axis level's mean
gives every cell it contains the same weight, so an excluded pair does not tilt it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from markupsafe import Markup
from scipy import stats

from culture_probe.analysis import tidy_responses
from culture_probe.columns import AXIS_PREFIX, SCORE_LEGEND
from culture_probe.report._rundir import RunData
from culture_probe.report._shared import floats, prompt_link
from culture_probe.report.page import Section, collapsible, figure, heading, join, note, paragraph
from culture_probe.report.svg import forest_plot, heatmap

#: how the proxy names of a crossed persona join the names of its levels ("India × Hinduism")
NAME_SEPARATOR = " × "
#: how a crossed axis joins its axes' names ("region x religion")
AXIS_SEPARATOR = " x "


def crossed_section(data: RunData) -> Section | None:
    """Marginal means per axis and the axis x axis grid of every crossed axis; None without one."""
    scored = _crossed_scores(data)
    if scored is None:
        return None
    parts = [paragraph(_intro(scored))]
    for index, (item, rows) in enumerate(scored.groupby("item_id", sort=True)):
        body = join(*_item_charts(str(item), rows))
        link = Markup('<p><a href="{}">Prompts of {}</a></p>').format(prompt_link(item), item)
        parts.append(collapsible(str(item), join(body, link), open=index == 0))
    skipped = sorted(set(data.plan["item_id"]) - set(scored["item_id"]))
    if skipped:
        parts.append(note(_skipped_note(data.plan, skipped)))
    return Section("Crossed axes", join(*parts), anchor="crossed-axes")


def _crossed_scores(data: RunData) -> pd.DataFrame | None:
    """The scored culture prompts of the crossed axes, ordinal items only, with the level of
    every axis and its name (``level:<axis>``, ``name:<axis>``); None where there are none."""
    plan = data.plan
    crossed = plan["axis"].astype(str).str.contains(AXIS_SEPARATOR, regex=False)
    if data.responses is None or not crossed.any() or "proxy_name" not in plan:
        return None
    tidy = tidy_responses(plan, data.responses)
    crossed_rows = tidy["axis"].astype(str).str.contains(AXIS_SEPARATOR, regex=False)
    tidy = tidy.loc[crossed_rows & (tidy["proxy_kind"] == "culture") & (tidy["scale"] == "ordinal")]
    tidy = tidy.loc[tidy["score"].notna()]
    if tidy.empty:
        return None
    for axis, rows in tidy.groupby("axis", sort=False):
        names = rows["proxy_name"].astype(str).str.split(NAME_SEPARATOR, regex=False)
        for position, part in enumerate(str(axis).split(AXIS_SEPARATOR)):
            tidy.loc[rows.index, f"level:{part}"] = rows[AXIS_PREFIX + part].astype(str)
            tidy.loc[rows.index, f"name:{part}"] = names.str[position].fillna(
                rows[AXIS_PREFIX + part].astype(str)
            )
    return tidy


def _intro(scored: pd.DataFrame) -> str:
    orders = _listed(_orders(scored))
    return (
        "Each crossed persona is one level of every axis. Per item: the mean expected answer at "
        "each level of each axis (every persona with that level weighing the same) under each "
        f"option order ({orders}), then the grid of both axes, one per option order, so that a "
        "position bias shows rather than averaging away. Intervals are 95% t intervals over the "
        "wordings."
    )


def _item_charts(item: str, rows: pd.DataFrame) -> list[Markup]:
    charts: list[Markup] = []
    for axis, unit in rows.groupby("axis", sort=True):
        parts = str(axis).split(AXIS_SEPARATOR)
        for part in parts:
            charts.append(heading(f"{item}: mean answer per {part}", level=4))
            charts.append(_marginal_chart(item, unit, part, parts))
        if len(parts) == 2:
            charts.append(heading(f"{item}: {parts[0]} x {parts[1]}", level=4))
            charts.append(
                _facets([_grid_chart(item, unit, parts, order) for order in _orders(unit)])
            )
            charts.append(paragraph(_grid_caption(unit, parts), "note"))
    return charts


def _orders(rows: pd.DataFrame) -> list[str]:
    return sorted(rows["order"].astype(str).unique())


def _facets(charts: list[Markup]) -> Markup:
    return join(Markup('<div class="grid-2">'), *charts, Markup("</div>"))


def cell_means(rows: pd.DataFrame, parts: list[str]) -> pd.DataFrame:
    """Mean score per persona (one level of every axis), order and wording."""
    keys = [f"level:{part}" for part in parts] + ["order", "wording"]
    return rows.groupby(keys, as_index=False, observed=True)["score"].mean()


def marginal_means(rows: pd.DataFrame, part: str, parts: list[str]) -> pd.DataFrame:
    """Per level of ``part`` and order: the mean over wordings of the equal-weight mean of its
    personas, with a 95% t interval over the wordings (none with a single wording).

    Returns:
        Columns ``level, order, mean, low, high, n_wordings``.
    """
    per_wording = (
        cell_means(rows, parts)
        .groupby([f"level:{part}", "order", "wording"], as_index=False)["score"]
        .mean()
    )
    out = []
    for (level, order), group in per_wording.groupby([f"level:{part}", "order"], sort=True):
        low, high = t_interval(group["score"].to_numpy(dtype=float))
        out.append({"level": level, "order": order, "mean": float(group["score"].mean()),
                    "low": low, "high": high, "n_wordings": len(group)})  # fmt: skip
    return pd.DataFrame(out)


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean; NaN bounds with fewer than two values."""
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + level) / 2, len(values) - 1) * stats.sem(values)
    return float(values.mean() - half), float(values.mean() + half)


def _level_names(rows: pd.DataFrame, part: str) -> dict[str, str]:
    pairs = rows[[f"level:{part}", f"name:{part}"]].drop_duplicates(f"level:{part}")
    return dict(zip(pairs[f"level:{part}"], pairs[f"name:{part}"], strict=True))


def _marginal_chart(item: str, rows: pd.DataFrame, part: str, parts: list[str]) -> Markup:
    """One row per level and order on one shared axis, so the orders' gap is read off directly."""
    means = marginal_means(rows, part, parts)
    names = _level_names(rows, part)
    chart = forest_plot(
        [
            f"{names.get(level, level)}, {order}"
            for level, order in zip(means["level"], means["order"], strict=True)
        ],
        floats(means["mean"]),
        floats(means["low"]),
        floats(means["high"]),
        title=f"{item}: mean answer per {part} and option order (95% CI over wordings)",
        value_label=SCORE_LEGEND,
    )
    return figure(chart, _marginal_caption(rows, part, parts), f"chart-marginal-{item}-{part}")


def _grid_chart(item: str, rows: pd.DataFrame, parts: list[str], order: str) -> Markup:
    cells = cell_means(rows.loc[rows["order"].astype(str) == order], parts)
    grid = cells.pivot_table(index=f"level:{parts[0]}", columns=f"level:{parts[1]}",
                             values="score", aggfunc="mean")  # fmt: skip
    levels = [sorted(rows[f"level:{part}"].unique()) for part in parts]
    grid = grid.reindex(index=levels[0], columns=levels[1])
    first, second = (_level_names(rows, part) for part in parts)
    chart = heatmap(
        [first[level] for level in grid.index],
        [second[level] for level in grid.columns],
        [floats(grid.loc[level]) for level in grid.index],
        title=f"{item}, {order} order: mean answer per {parts[0]} x {parts[1]}",
        domain=(0.0, 1.0),
        legend_label=SCORE_LEGEND,
    )
    return figure(chart, figure_id=f"chart-grid-{item}-{order}")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _marginal_caption(rows: pd.DataFrame, part: str, parts: list[str]) -> str:
    names = sorted(_level_names(rows, part).values())
    others = [p for p in parts if p != part]
    wordings = rows["wording"].nunique()
    orders = _orders(rows)
    text = f"{len(names)} levels of {part} ({_listed(names)}), each under every option order "
    text += f"({_listed(orders)}). Each point is the mean over {wordings} wordings of the "
    text += "equal-weight mean of the personas at that level"
    if others:
        text += f" (over the levels of {_listed(others)} asked with it)"
    return text + "; the bar is its 95% t interval over the wordings."


def _grid_caption(rows: pd.DataFrame, parts: list[str]) -> str:
    names = [sorted(_level_names(rows, part).values()) for part in parts]
    asked = rows[[f"level:{part}" for part in parts]].drop_duplicates()
    possible = len(names[0]) * len(names[1])
    text = f"{parts[0]} ({len(names[0])} levels) x {parts[1]} ({len(names[1])} levels): "
    text += f"{len(asked)} of {possible} personas asked"
    if len(asked) < possible:
        text += "; a grey n/a cell is a pair the study excludes or the budget left out"
    text += f". One grid per option order ({_listed(_orders(rows))}); each cell is the mean "
    return text + f"over its {rows['wording'].nunique()} wordings."


def _skipped_note(plan: pd.DataFrame, skipped: list[str]) -> str:
    scales = plan.drop_duplicates("item_id").set_index("item_id")["scale"]
    listed = ", ".join(f"{item} ({scales.get(item, 'no scored prompts')})" for item in skipped)
    return (
        f"Not charted here: {listed}. A mean answer exists only for ordinal items with scored "
        "crossed prompts; nominal items are compared on their option distributions (Tables)."
    )
