"""Write an imported dataset as an ordinary study folder, all at once or not at all.

The folder holds what any study has, so a user can read and edit it::

    OUT/study.yaml          the study (items, template, framings, axes, reference)
    OUT/items.yaml          the probe items
    OUT/template.<lang>.j2  the question template, one per prompt language
    OUT/framings.<lang>.yaml
    OUT/reference.parquet   human answers in the tidy format of culture_probe.columns
    OUT/import.json         where the data came from and which rows were left out, and why

It is built in a temporary folder beside OUT and renamed into place, so that a failed import leaves
no half-written study behind.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from culture_probe.atomic import atomic_folder
from culture_probe.columns import REFERENCE_COLUMNS
from culture_probe.errors import CultureProbeError

MULTIPLE_CHOICE_TEMPLATE = """{{ question }}

{% for option in options %}
{{ option.label }}. {{ option.text }}
{% endfor %}

Answer with the {{ "letter" if label_style == "letters" else "number" }} of one option only.
"""

PERSONA_FRAMINGS = """# Persona framings: `persona` is a noun phrase such as "a person from Japan";
# `question` is the rendered question with its options.
framings:
  - id: imagine
    system: "Imagine you are {{ persona }}."
    user: "{{ question }}"
  - id: how_would
    user: |-
      How would {{ persona }} answer the following question?

      {{ question }}
  - id: average
    system: "You are {{ persona }}, an average person answering a survey about your life and views."
    user: "{{ question }}"
baseline:
  user: "{{ question }}"
"""


@dataclass
class ImportedStudy:
    """A study built from a public dataset, before it is written.

    Attributes:
        study: the study file's keys (``study``, ``title``, ``axes``, ...), without the file paths.
        items: the probe items, as they go into ``items.yaml``.
        reference: human answers, columns ``item_id, proxy, option, share`` (or, for short-answer
            data, the columns of :data:`culture_probe.importers.ANSWER_COLUMNS`).
        templates: question template source per language.
        framings: framings file source per language.
        log: provenance and the rows left out, for ``import.json``.
    """

    study: dict[str, Any]
    items: list[dict[str, Any]]
    reference: pd.DataFrame
    templates: dict[str, str] = field(default_factory=lambda: {"en": MULTIPLE_CHOICE_TEMPLATE})
    framings: dict[str, str] = field(default_factory=lambda: {"en": PERSONA_FRAMINGS})
    log: dict[str, Any] = field(default_factory=dict)
    reference_name: str = "reference.parquet"

    @property
    def skipped(self) -> list[str]:
        return list(self.log.get("skipped", []))


def write_study(
    imported: ImportedStudy, out: Path, taxonomy_path: Path, *, overwrite: bool = False
) -> Path:
    """Write ``imported`` into the folder ``out``; returns the path of ``out/study.yaml``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise CultureProbeError(f"{out} exists; choose another folder or pass --overwrite")
    with atomic_folder(out) as staging:
        _fill(staging, imported, out, taxonomy_path)
    return out / "study.yaml"


def _fill(folder: Path, imported: ImportedStudy, out: Path, taxonomy_path: Path) -> None:
    languages = list(imported.templates)
    study = dict(imported.study)
    study.update(
        items="items.yaml",
        template="template.{lang}.j2" if len(languages) > 1 else f"template.{languages[0]}.j2",
        framings="framings.{lang}.yaml" if len(languages) > 1 else f"framings.{languages[0]}.yaml",
        taxonomy=os.path.relpath(Path(taxonomy_path).resolve(), out.resolve()),
    )
    # Short-answer data comes as annotated answers, distributions as a reference.
    study["answers" if imported.reference_name == "answers.parquet" else "reference"] = (
        imported.reference_name
    )
    if len(languages) > 1:
        study["languages"] = languages
    elif languages != ["en"]:
        study["language"] = languages[0]
    _dump_yaml(folder / "study.yaml", study)
    _dump_yaml(folder / "items.yaml", {"items": imported.items})
    for language, source in imported.templates.items():
        (folder / f"template.{language}.j2").write_text(source, encoding="utf-8")
    for language, source in imported.framings.items():
        (folder / f"framings.{language}.yaml").write_text(source, encoding="utf-8")
    reference = imported.reference
    if imported.reference_name == "reference.parquet":
        reference = reference.loc[:, list(REFERENCE_COLUMNS)]
    reference.to_parquet(folder / imported.reference_name, index=False)
    (folder / "import.json").write_text(
        json.dumps(imported.log, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _dump_yaml(path: Path, payload: dict[str, Any]) -> None:
    text = yaml.safe_dump(payload, allow_unicode=True, sort_keys=False, width=100)
    path.write_text(text, encoding="utf-8")


def keep_framings(imported: ImportedStudy, framing_ids: list[str]) -> ImportedStudy:
    """Keep only the named persona framings (e.g. one framing for a smaller study)."""
    if not framing_ids:
        return imported
    for language, source in imported.framings.items():
        loaded = yaml.safe_load(source)
        known = [entry["id"] for entry in loaded["framings"]]
        unknown = [framing for framing in framing_ids if framing not in known]
        if unknown:
            from culture_probe.errors import InputError, expected_one_of

            raise InputError(
                f"unknown framing '{unknown[0]}'",
                key="framings",
                hint=expected_one_of(unknown[0], known),
            )
        loaded["framings"] = [e for e in loaded["framings"] if e["id"] in framing_ids]
        imported.framings[language] = yaml.safe_dump(loaded, allow_unicode=True, sort_keys=False)
    return imported
