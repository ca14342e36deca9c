"""The rendered prompts and the model's option probabilities, packed compactly for the page.

Every prompt of a study is kept (all proxies, wordings and option orders) so a reader can check what
the model was asked. Messages are split into lines and each distinct line is stored once: the
options block, the answer instruction and the persona sentences repeat across thousands of prompts,
so a 5,000-prompt study packs into a few hundred kilobytes. The page's script (``prompts.js``)
rebuilds an item's prompts on demand and writes them with ``textContent``.

Blob layout::

    {"lines": [str, ...],
     "items": {item_id: {"options": [str, ...],
                         "prompts": [[proxy name, wording, order, [labels], [display_to_canonical],
                                      [system line ids], [user line ids],
                                      [probability per canonical option] | null,
                                      answer, outcome, option mass, generated text], ...]}}}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.report._missing import is_missing

PROMPT_FIELDS = (
    "proxy",
    "wording",
    "order",
    "labels",
    "display_to_canonical",
    "system",
    "user",
    "probs",
    "answer",
    "outcome",
    "option_mass",
    "generated",
)


class _LineTable:
    """Interns lines: each distinct line gets one index."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._index: dict[str, int] = {}

    def encode(self, message: object) -> list[int]:
        if not isinstance(message, str) or message == "":
            return []
        ids = []
        for line in message.split("\n"):
            if line not in self._index:
                self._index[line] = len(self.lines)
                self.lines.append(line)
            ids.append(self._index[line])
        return ids


def prompt_blob(plan: pd.DataFrame, responses: pd.DataFrame | None) -> dict[str, Any]:
    """Pack the plan joined with its responses into the blob described in the module docstring."""
    table = _LineTable()
    rows = _joined(plan, responses)
    items: dict[str, dict[str, Any]] = {}
    for raw in rows.to_dict(orient="records"):
        record = {str(key): value for key, value in raw.items()}
        item_id = str(record["item_id"])
        entry = items.setdefault(
            item_id, {"options": _strings(record.get("options")), "prompts": []}
        )
        entry["prompts"].append(_packed(record, table))
    return {"lines": table.lines, "items": items}


def _joined(plan: pd.DataFrame, responses: pd.DataFrame | None) -> pd.DataFrame:
    ordered = plan.sort_values("row") if "row" in plan.columns else plan
    if responses is None or responses.empty:
        return ordered.assign(
            probs=None, answer=-1, outcome="not scored", option_mass=None, generated=""
        )
    names = ("prompt_id", "probs", "answer", "outcome", "option_mass", "generated")
    wanted = [c for c in names if c in responses]
    return ordered.merge(responses[wanted], on="prompt_id", how="left")


def _packed(record: dict[str, Any], table: _LineTable) -> list[Any]:
    proxy = record.get("proxy_name") or record.get("proxy") or ""
    return [
        str(proxy),
        str(record.get("wording", "")),
        str(record.get("order", "")),
        _strings(record.get("option_labels")),
        [int(v) for v in _sequence(record.get("display_to_canonical"))],
        table.encode(record.get("system")),
        table.encode(record.get("user")),
        _probabilities(record.get("probs")),
        _integer(record.get("answer")),
        "not scored" if is_missing(record.get("outcome")) else str(record.get("outcome")),
        _rounded(record.get("option_mass")),
        "" if is_missing(record.get("generated")) else str(record.get("generated")),
    ]


def _sequence(value: Any) -> list[Any]:
    if is_missing(value):
        return []
    return list(value.tolist() if isinstance(value, np.ndarray) else value)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in _sequence(value)]


def _rounded(value: Any, digits: int = 4) -> float | None:
    if is_missing(value):
        return None
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


def _probabilities(value: Any) -> list[float | None] | None:
    values = _sequence(value)
    return [_rounded(v) for v in values] if values else None


def _integer(value: Any) -> int:
    return -1 if is_missing(value) else int(value)
