"""Preparing a study: load, validate and expand it into the plan, before anything is written.

:func:`prepare` is the first stage of every command that takes a study (``plan``, ``run``,
``score``): everything that can fail on bad input fails here, before a run folder is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.design import MAX_PROMPTS, build_plan, describe_design
from culture_probe.errors import InputError
from culture_probe.study import Study, load_study


@dataclass
class PlanFilter:
    """Restrict a plan to some items or proxies, then draw a balanced fraction of it (``budget``)."""

    items: tuple[str, ...] = ()
    proxies: tuple[str, ...] = ()
    #: prompts to draw as a balanced fraction of the design; None keeps the study's own ``budget``
    budget: int | None = None
    #: the most prompts a plan may have (``--max-prompts``); None: :data:`design.MAX_PROMPTS`
    max_prompts: int | None = None

    def as_dict(self) -> dict[str, Any]:
        chosen: dict[str, Any] = {"items": list(self.items), "proxies": list(self.proxies)}
        if self.budget is not None:
            chosen["budget"] = self.budget
        return chosen


@dataclass
class PreparedStudy:
    """A loaded study, its plan (one row per prompt) and the design line ``plan`` prints."""

    study: Study
    plan: pd.DataFrame
    design: str
    filters: PlanFilter = field(default_factory=PlanFilter)


def prepare(study_path: str | Path, filters: PlanFilter | None = None) -> PreparedStudy:
    """Load, validate and expand a study: everything that can fail on bad input, before any write."""
    _require_study_file(Path(study_path))
    filters = filters or PlanFilter()
    study = load_study(study_path, budget=filters.budget)
    plan = build_plan(
        study,
        items=filters.items,
        proxies=filters.proxies,
        max_prompts=filters.max_prompts or MAX_PROMPTS,
    )
    return PreparedStudy(study, plan, describe_design(plan), filters)


def _require_study_file(path: Path) -> None:
    if not path.is_dir():
        return  # a missing file is reported by the loader, with the same wording as elsewhere
    studies = sorted(str(found) for found in path.glob("*.yaml") if _names_a_study(found))[:3]
    hint = f"for example {', '.join(studies)}" if studies else "give the path of a .yaml file"
    raise InputError("is a folder; expected a study file", path=path, hint=hint)


def _names_a_study(path: Path) -> bool:
    """Whether a YAML file starts a study (a ``study:`` key), not a taxonomy or its additions."""
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return re.search(r"^study:", head, flags=re.MULTILINE) is not None
