"""Runs are compared prompt by prompt, so they must have been made from the same plan.

One exception: runs of one study that differ only in how the answer is asked for (each run asked
one ``elicitation`` level, the levels not all the same) are compared design cell by design cell.
Their prompt ids differ, since the level is part of the cell (and a written or open prompt's text
differs too), so each prompt is keyed by its cell without the level: the same item, proxy,
wording, option order, format, language and seed (docs/compare.md, "Runs asked different ways").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from culture_probe.columns import CONTEXT_FACTORS
from culture_probe.compare._runs import ComparedRun
from culture_probe.errors import CultureProbeError

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")
#: the design factor two runs may differ in and still be compared cell by cell
ELICITATION = "elicitation"
#: the level of a run whose plan has no elicitation column
DEFAULT_LEVEL = "first_token"
#: what makes a design cell, besides the context factors
CELL_COLUMNS = ("item_id", "axis", "proxy", "wording")


class PlanMismatchError(CultureProbeError):
    """The runs were made from different plans; the message names what differs."""


@dataclass(frozen=True)
class SharedPrompts:
    """The prompts every run has, and how many each run had beyond them."""

    prompt_ids: pd.Index
    left_out: dict[str, int]

    @property
    def n_left_out(self) -> int:
        return sum(self.left_out.values())


def run_level(run: ComparedRun) -> str | None:
    """The one elicitation level a run was asked in; None when it holds several."""
    if ELICITATION not in run.tidy.columns:
        return DEFAULT_LEVEL
    levels = run.tidy[ELICITATION].dropna().astype(str).unique()
    return str(levels[0]) if len(levels) == 1 else None


def differing_levels(runs: Sequence[ComparedRun]) -> list[str] | None:
    """Each run's elicitation level when every run was asked one way and not all the same way."""
    levels = [run_level(run) for run in runs]
    if any(level is None for level in levels) or len(set(levels)) < 2:
        return None
    return [str(level) for level in levels]


def keyed_by_cell(run: ComparedRun, level: str) -> ComparedRun:
    """The run with each prompt id replaced by its design cell without the elicitation level, and
    its label naming the level."""
    tidy = run.tidy.copy()
    columns = [
        c for c in (*CELL_COLUMNS, *CONTEXT_FACTORS) if c in tidy.columns and c != ELICITATION
    ]
    cells = tidy[list(dict.fromkeys(columns))].astype(str)
    tidy["prompt_id"] = pd.util.hash_pandas_object(cells, index=False).map("{:016x}".format)
    return replace(run, label=f"{run.label} · {level}", tidy=tidy)


def shared_prompts(
    runs: Sequence[ComparedRun], *, shared_only: bool, differing: str | None = None
) -> SharedPrompts:
    """The prompts to compare: all of them when the plans agree, else (with ``shared_only``) the
    prompts every run has.

    Args:
        runs: the runs.
        shared_only: compare the shared prompts when the plans differ.
        differing: the design factor the runs are known to differ in (their prompts keyed by
            cell, :func:`keyed_by_cell`): the study hash then differs by that factor's levels.

    Raises:
        PlanMismatchError: the plans differ and ``shared_only`` is off, or they share no prompt.
    """
    first = runs[0]
    differences = [
        difference
        for other in runs[1:]
        for difference in plan_differences(first, other, differing=differing)
    ]
    ids = [pd.Index(run.tidy["prompt_id"]) for run in runs]
    shared = ids[0]
    for other in ids[1:]:
        shared = shared.intersection(other, sort=False)
    if differences and not shared_only:
        raise PlanMismatchError(
            "the runs were made from different plans: "
            + "; ".join(differences)
            + f". {len(shared)} prompts are shared: pass shared_only=True (--shared-only) to "
            "compare those"
        )
    if len(shared) == 0:
        raise PlanMismatchError(
            "the runs share no prompt: " + ("; ".join(differences) or "different prompts")
        )
    left_out = {
        str(run.path): len(index) - len(shared) for run, index in zip(runs, ids, strict=True)
    }
    return SharedPrompts(shared, left_out)


def plan_differences(
    first: ComparedRun, other: ComparedRun, *, differing: str | None = None
) -> list[str]:
    """What differs between two runs' plans: study hash (unless the runs differ in the design
    factor ``differing``, which the study declares), template hashes, items, prompts."""
    out = []
    a, b = first.manifest, other.manifest
    where = f"{first.path} vs {other.path}"
    if differing is None and a.get("study_hash") != b.get("study_hash"):
        out.append(
            f"study hash {_short(a.get('study_hash'))} vs {_short(b.get('study_hash'))} ({where})"
        )
    out += _template_differences(a, b, where)
    items_a, items_b = set(first.tidy["item_id"]), set(other.tidy["item_id"])
    if items_a != items_b:
        out.append(
            f"items only in {first.path}: {_listing(items_a - items_b)}; "
            f"only in {other.path}: {_listing(items_b - items_a)}"
        )
    prompts_a, prompts_b = set(first.tidy["prompt_id"]), set(other.tidy["prompt_id"])
    if prompts_a != prompts_b:
        out.append(
            f"{len(prompts_a - prompts_b)} prompts only in {first.path}, "
            f"{len(prompts_b - prompts_a)} only in {other.path}"
        )
    level_a, level_b = run_level(first), run_level(other)
    if differing is None and level_a != level_b:
        out.append(
            f"elicitation {level_a or 'several levels'} vs {level_b or 'several levels'} ({where}): "
            "runs that each hold one level are compared cell by cell"
        )
    return out


def _template_differences(a: dict[str, Any], b: dict[str, Any], where: str) -> list[str]:
    templates_a, templates_b = _templates(a), _templates(b)
    out = []
    for name in sorted(set(templates_a) | set(templates_b)):
        hash_a, hash_b = templates_a.get(name), templates_b.get(name)
        if hash_a != hash_b:
            out.append(f"template {name} hash {_short(hash_a)} vs {_short(hash_b)} ({where})")
    return out


def _templates(manifest: dict[str, Any]) -> dict[str, str]:
    """Template file name -> hash, from the manifest's ``files`` (path -> sha256)."""
    files = manifest.get("files") or {}
    return {
        str(path).replace("\\", "/").split("/")[-1]: str(digest)
        for path, digest in files.items()
        if str(path).endswith(TEMPLATE_SUFFIXES)
    }


def _short(value: Any) -> str:
    return "none" if value is None else str(value)[:12]


def _listing(values: set[str], limit: int = 8) -> str:
    shown = sorted(values)
    return (", ".join(shown[:limit]) + (", ..." if len(shown) > limit else "")) or "none"
