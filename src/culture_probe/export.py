"""Tidy export of runs and comparisons: one row per prompt x model x option, as CSV or Parquet.

The long format is what pandas, R (``readr::read_csv``, ``arrow::read_parquet``) and spreadsheet users
read without reshaping. Columns:

================  =================================================================================
prompt_id         the prompt (the same id in every run of one plan)
model             the model's label ("SmolLM2-135M-Instruct (hf, float32)")
study ... shots   the prompt's design cell: item_id, topic, scale, axis, proxy, proxy_name,
                  proxy_kind, paraphrase, framing, wording, order, language, seed, the format
                  factors enumerator, separator, instruction, shots, and one ``axis_<axis>``
                  column per proxy axis where the plan has them
option_index      the option's canonical index (0 = the first option of the item)
option_text       the option's text
display_position  where the option was shown (0 = first), and ``option_label`` its label there
probability       the model's probability of the option (NaN for a refused or invalid answer)
chosen            whether it is the model's answer (the most probable option)
outcome           "answered", "refused" or "invalid"; ``option_mass`` and ``score`` of the prompt
================  =================================================================================

In CSV a text cell that a spreadsheet would evaluate as a formula (starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return: :data:`culture_probe.spreadsheet.FORMULA_TRIGGERS`) is written with
a leading apostrophe, as OWASP recommends against CSV injection: option texts and proxy names come
from user files and must stay text. Unlike the survey sheets, a text that looks like a number
(an option labelled ``-1``) is neutralised too, so that a spreadsheet keeps it as the text it was.
Cells holding a line break are quoted (:func:`culture_probe.spreadsheet.write_csv`), so every reader
sees one row per record.

The format follows the file's suffix (``.csv`` or ``.parquet``); any other suffix is refused rather
than filled with CSV text under a name that promises something else.
"""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.arguments import Argument, path_list, run_path, text
from culture_probe.arguments import path as path_argument
from culture_probe.atomic import atomic_write_bytes
from culture_probe.columns import EXPORT_DESIGN_COLUMNS
from culture_probe.compare import ComparedRun, read_run, unique_labels
from culture_probe.errors import InputError
from culture_probe.spreadsheet import FORMULA_TRIGGERS, write_csv
from culture_probe.store import atomic_write_parquet, disk_errors

DESIGN_COLUMNS = EXPORT_DESIGN_COLUMNS
FORMATS = ("csv", "parquet")
FORMULA_STARTS = FORMULA_TRIGGERS


def export(source: Any, path: str | Path, format: str | None = None) -> Path:
    """Write the answers of a run, several runs or a comparison in long format.

    Args:
        source: A run directory, an object with a ``.path`` to one (``cp.run``'s result), a
            :class:`~culture_probe.compare.Comparison`, or a list of runs.
        path: The file to write (written whole or not at all).
        format: ``"csv"`` or ``"parquet"``; by default from the file's suffix (``.csv`` or
            ``.parquet``; a file without a suffix is CSV, another suffix is refused).

    Returns:
        The path written.

    Example:
        >>> import culture_probe as cp  # doctest: +SKIP
        >>> cp.export("reports/values/run-1", "answers.csv")  # doctest: +SKIP
        >>> pd.read_csv("answers.csv").groupby(["model", "item_id"])["probability"].mean()  # doctest: +SKIP
    """
    target = path_argument(path, Argument("path", "--out"))
    chosen = _export_format(target, format)
    table = long_table(_runs_of(source))
    with disk_errors(target):
        if chosen == "parquet":
            atomic_write_parquet(target, table)
        else:
            buffer = io.StringIO()
            write_csv(neutralise_formulas(table), buffer)
            atomic_write_bytes(target, buffer.getvalue().encode("utf-8"))
    return target


def _export_format(target: Path, given: str | None) -> str:
    """The format asked for, or the one the file's suffix names; a suffix that says otherwise is
    refused (``answers.xlsx`` filled with CSV text would not open as a workbook)."""
    if given is not None:
        chosen = text(given, Argument("format")).lower()
        if chosen not in FORMATS:
            raise InputError(
                f"unknown export format '{chosen}'; expected csv or parquet", key="format"
            )
        return chosen
    suffix = target.suffix.lower()
    if suffix in ("", ".csv"):
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    raise InputError(
        f"cannot export to a '{target.suffix}' file; export writes CSV or Parquet",
        path=target,
        hint=f"give {target.with_suffix('.csv').name} (spreadsheets open it) or "
        f"{target.with_suffix('.parquet').name}",
    )


def long_table(runs: Sequence[ComparedRun]) -> pd.DataFrame:
    """One row per prompt x model x option (see the module docstring for the columns)."""
    return pd.concat([_run_rows(run) for run in runs], ignore_index=True)


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells starting like a spreadsheet formula begin with an apostrophe.

    Example:
        >>> neutralise_formulas(pd.DataFrame({"text": ["=1+1", "Yes", "-2"], "n": [-1, 2, 3]}))
            text  n
        0  '=1+1 -1
        1    Yes  2
        2    '-2  3
    """
    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_neutralise)
    return out


def _neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _runs_of(source: Any) -> list[ComparedRun]:
    """The runs behind a comparison, a run, or a list of runs (labels made unique)."""
    runs = getattr(source, "runs", None)
    if isinstance(runs, list) and all(isinstance(run, ComparedRun) for run in runs):
        return runs
    if isinstance(source, list | tuple):
        items = path_list(source, Argument("source"))
    else:
        items = [run_path(source, Argument("source"))]
    if not items:
        raise InputError("nothing to export: expected a run directory, a run or a comparison")
    loaded = _once_each([read_run(item) for item in items])
    labels = unique_labels([run.label for run in loaded], [run.path for run in loaded])
    return [
        ComparedRun(label, r.path, r.manifest, r.tidy, r.probs, r.reference)
        for label, r in zip(labels, loaded, strict=True)
    ]


def _once_each(runs: list[ComparedRun]) -> list[ComparedRun]:
    """The runs with a folder given twice kept once: its rows would be exported twice."""
    seen: set[Path] = set()
    kept = []
    for run in runs:
        folder = run.path.resolve()
        if folder not in seen:
            seen.add(folder)
            kept.append(run)
    return kept


def _run_rows(run: ComparedRun) -> pd.DataFrame:
    tidy = run.tidy
    counts = tidy["n_options"].to_numpy(dtype=np.int64)
    rows = np.repeat(np.arange(len(tidy)), counts)
    option = np.concatenate([np.arange(count) for count in counts]) if len(counts) else rows
    shown_at = [
        np.argsort(np.asarray(order)) for order in tidy["display_to_canonical"]
    ]  # canonical index -> display position
    position = np.array(
        [shown_at[row][index] for row, index in zip(rows, option, strict=True)], dtype=np.int64
    )
    width = run.probs.shape[1] if run.probs.ndim == 2 else 0
    probability = (
        run.probs[rows, np.minimum(option, max(width - 1, 0))]
        if width
        else np.full(len(rows), np.nan)
    )
    answer = tidy["answer"].to_numpy() if "answer" in tidy.columns else np.full(len(tidy), -1)
    # each proxy axis of a crossed design (axis_region, axis_religion, ...) after the fixed columns
    axes = sorted(column for column in tidy.columns if column.startswith("axis_"))
    design = {
        column: tidy[column].to_numpy()[rows]
        for column in (*DESIGN_COLUMNS, *axes)
        if column in tidy.columns
    }
    return pd.DataFrame(
        {
            "prompt_id": tidy["prompt_id"].to_numpy()[rows],
            "model": run.label,
            **design,
            "option_index": option,
            "option_text": [
                tidy["options"].iat[row][index] for row, index in zip(rows, option, strict=True)
            ],
            "display_position": position,
            "option_label": [
                tidy["option_labels"].iat[row][shown]
                for row, shown in zip(rows, position, strict=True)
            ],
            "probability": probability,
            "chosen": answer[rows] == option,
            "outcome": tidy["outcome"].to_numpy()[rows],
            "option_mass": tidy["option_mass"].to_numpy()[rows],
            "score": tidy["score"].to_numpy()[rows],
        }
    )


class _CallableModule(types.ModuleType):
    """Importing ``culture_probe.export`` binds the package attribute ``export`` to this module,
    which would hide the function of the same name that ``culture_probe`` re-exports; calling the
    module calls the function, so ``cp.export(...)`` works either way."""

    def __call__(self, source: Any, path: str | Path, format: str | None = None) -> Path:
        return export(source, path, format)


sys.modules[__name__].__class__ = _CallableModule
