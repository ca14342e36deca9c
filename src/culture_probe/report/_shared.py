"""Helpers every section of the run report uses: links, labels, numbers for charts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import pandas as pd
from markupsafe import Markup

from culture_probe.report._missing import is_missing
from culture_probe.report._rundir import RunData
from culture_probe.report.page import note
from culture_probe.report.tables import html_table


def item_links(frame: pd.DataFrame) -> dict[str, Any]:
    if "item_id" not in frame:
        return {}
    return {"item_id": lambda row: prompt_link(row["item_id"])}


def described_table(
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
        links=item_links(frame),
    )


def missing_note(data: RunData, name: str) -> Markup:
    where = name if name.endswith(".json") else f"stats/{name}.parquet"
    return note(f"{where} is not in this run, so this part is left out.")


def prompt_link(item_id: object) -> str:
    return "#prompts/" + quote(str(item_id), safe="")


def proxy_names(plan: pd.DataFrame) -> dict[str, str]:
    if "proxy_name" not in plan or "proxy" not in plan:
        return {}
    pairs = plan.drop_duplicates("proxy")[["proxy", "proxy_name"]]
    return {str(p): str(n) for p, n in zip(pairs["proxy"], pairs["proxy_name"], strict=True)}


def _names_of(group: pd.DataFrame) -> set[str]:
    column = "proxy_name" if "proxy_name" in group else "proxy"
    return {str(v) for v in group[column].unique()}


def unit_labels(frame: pd.DataFrame) -> list[str]:
    """Item ids, with the axis added when the study compares several axes."""
    several = "axis" in frame and frame["axis"].nunique() > 1
    if several:
        return [f"{i} ({a})" for i, a in zip(frame["item_id"], frame["axis"], strict=True)]
    return [str(i) for i in frame["item_id"]]


def floats(values: Iterable[Any] | None) -> list[float | None]:
    """Numbers for a chart; missing and infinite values become None (drawn as gaps)."""
    if values is None:
        return []
    out: list[float | None] = []
    for value in values:
        number = pd.to_numeric(value, errors="coerce")
        out.append(float(number) if present(number) else None)
    return out


def present(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def first_value(frame: pd.DataFrame, column: str) -> str | None:
    if column not in frame or frame.empty:
        return None
    value = frame[column].iloc[0]
    return None if is_missing(value) else str(value)


def model_name(manifest: dict[str, Any]) -> str | None:
    model = manifest.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("id") or model.get("path")
    return str(model) if model else None


def ordinal_rows(frame: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` on ordinal items.

    An expected answer (0 = first option, 1 = last) and every variance of it mean nothing for
    options with no order, so charts of it show ordinal items only; nominal items are measured on
    their option distributions (docs/statistics.md, "Nominal items"), see :func:`nominal_note`.
    """
    return frame.loc[_item_scales(frame, plan).eq("ordinal").to_numpy()]


def nominal_note(frame: pd.DataFrame | None, plan: pd.DataFrame) -> Markup:
    """A note naming the items of ``frame`` that charts of the expected answer leave out."""
    if frame is None:
        return Markup("")
    scales = _item_scales(frame, plan)
    left_out = sorted(set(frame.loc[scales.ne("ordinal").to_numpy(), "item_id"].astype(str)))
    if not left_out:
        return Markup("")
    by_item = dict(zip(frame["item_id"].astype(str), scales, strict=True))
    listed = ", ".join(f"{item} ({by_item[item]})" for item in left_out)
    return note(
        f"The charts of this section leave out {listed}. The expected answer is a position on an "
        "ordered scale, so it is charted for ordinal items only; nominal items are measured on "
        "their option distributions (Gini variation, Jensen-Shannon distances, modal agreement: "
        "the verdict and the nominal_stats table)."
    )


def _item_scales(frame: pd.DataFrame, plan: pd.DataFrame) -> pd.Series:
    scales = plan.drop_duplicates("item_id").set_index("item_id")["scale"].astype(str)
    return frame["item_id"].astype(str).map(scales).fillna("no scale")
