"""What identifies a run: the same study, design and model give the same run key and folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from culture_probe.backends import Backend
from culture_probe.columns import WRITTEN_LEVELS
from culture_probe.design import short_hash
from culture_probe.planning import PreparedStudy
from culture_probe.scoring._levels import levels_asked
from culture_probe.study import SHORT_ANSWER_SCALE


def plan_hash(plan: pd.DataFrame) -> str:
    return short_hash(list(plan["prompt_id"]))


def has_short_answers(plan: pd.DataFrame) -> bool:
    """Whether the plan has short-answer items, which are written rather than read off labels."""
    return bool((plan["scale"] == SHORT_ANSWER_SCALE).any())


def build_manifest(prepared: PreparedStudy, backend: Backend) -> dict[str, Any]:
    """What identifies the run: the same study, design and model give the same run key."""
    info = backend.info()
    study = prepared.study
    key = info.key()
    writes = has_short_answers(prepared.plan)
    if writes:
        # Written answers depend on the decoding even when choice items read log-probabilities.
        key = {**key, "short_answers": backend.short_answer_decoding()}
    if set(levels_asked(prepared.plan)) & set(WRITTEN_LEVELS):
        key = {**key, "written_answers": backend.short_answer_decoding()}
    manifest = {
        "study": study.id,
        "title": study.title,
        "study_path": study.path,
        "study_hash": study.content_hash,
        "files": study.files,
        "design": prepared.design,
        "n_prompts": len(prepared.plan),
        "filters": prepared.filters.as_dict(),
        "plan_hash": plan_hash(prepared.plan),
        "backend": {**info.key(), "options": info.options},
        "run_key": short_hash(study.content_hash, plan_hash(prepared.plan), key),
        "semantic_proxy": study.semantic_proxy,
        "axes": sorted({p.axis for p in study.proxies if p.kind == "culture"}),
    }
    if writes:
        manifest["short_answers"] = {"decoding": key["short_answers"]}
    return manifest


def default_run_dir(prepared: PreparedStudy, manifest: dict[str, Any], root: Path) -> Path:
    """reports/<study>/<model>-<dtype>-<run key>: the same command finds the same folder again."""
    backend = manifest["backend"]
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", str(backend["model"]).split("/")[-1]).strip("-")
    name = f"{model}-{backend['dtype']}-{manifest['run_key'][:8]}"
    return root / prepared.study.id / name
