"""Runs are compared prompt by prompt, so they must have been made from the same plan."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from culture_probe.compare._runs import ComparedRun
from culture_probe.errors import CultureProbeError

TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2")


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


def shared_prompts(runs: Sequence[ComparedRun], *, shared_only: bool) -> SharedPrompts:
    """The prompts to compare: all of them when the plans agree, else (with ``shared_only``) the
    prompts every run has.

    Raises:
        PlanMismatchError: the plans differ and ``shared_only`` is off, or they share no prompt.
    """
    first = runs[0]
    differences = [
        difference for other in runs[1:] for difference in plan_differences(first, other)
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


def plan_differences(first: ComparedRun, other: ComparedRun) -> list[str]:
    """What differs between two runs' plans: study hash, template hashes, items, prompts."""
    out = []
    a, b = first.manifest, other.manifest
    where = f"{first.path} vs {other.path}"
    if a.get("study_hash") != b.get("study_hash"):
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
