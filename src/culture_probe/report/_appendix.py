"""The report's last sections: every prompt, the taxonomy cells covered, the manifest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from markupsafe import Markup

from culture_probe.report._rundir import RunData
from culture_probe.report._shared import first_value, missing_note
from culture_probe.report.page import Section, bullet_list, join, key_values, note, paragraph
from culture_probe.report.tables import html_table


def prompts_section(data: RunData) -> Section:
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


def coverage_section(data: RunData) -> Section:
    plan = data.plan
    if "axis" not in plan or "proxy" not in plan:
        return Section("Taxonomy cells", note("The plan names no proxies."), collapsible=True)
    semantic = _find_key(data.manifest, "semantic_proxy") or first_value(plan, "topic") or ""
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


def manifest_section(data: RunData) -> Section:
    if not data.manifest:
        return Section("Manifest", missing_note(data, "manifest.json"), collapsible=True)
    pairs = list(_flatten(data.manifest))
    missing = [f"{name} not found" for name in data.missing]
    body = join(key_values(pairs), bullet_list(missing) if missing else Markup(""))
    return Section("Manifest", body, collapsible=True, open=False)


def _names_of(group: pd.DataFrame) -> set[str]:
    column = "proxy_name" if "proxy_name" in group else "proxy"
    return {str(v) for v in group[column].unique()}


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
