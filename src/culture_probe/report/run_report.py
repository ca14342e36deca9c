"""The report of one run: verdicts in words, charts, tables, every prompt, the manifest.

:func:`render_run_report` reads a run directory (the plan, the responses, the ``stats/`` tables and
``summary.json`` written by :mod:`culture_probe.analysis`) and writes one self-contained
``report.html``, one section per module (``_verdict``, ``_charts``, ``_crossed``, ``_factors``,
``_elicitation``, ``_people``, ``_tables``, ``_appendix``; short answers and prompt languages in
``_short_answer``), with column labels from the registry (:mod:`culture_probe.columns`). It
computes no statistics: every number on the page comes from the analysis tables, except the
model's pooled answer distribution per proxy, the plain mean of its option probabilities, shown
beside the human one, the mean answers per level of a crossed axis (``_crossed``), descriptive
cell means per option order, and the mean answer distribution per item and elicitation level
(``_elicitation``). A table the run does not have leaves its section with a note.
"""

from __future__ import annotations

from pathlib import Path

from culture_probe.report._appendix import coverage_section, manifest_section, prompts_section
from culture_probe.report._charts import charts_section
from culture_probe.report._crossed import crossed_section
from culture_probe.report._elicitation import elicitation_section
from culture_probe.report._factors import factors_section
from culture_probe.report._people import alignment_section
from culture_probe.report._prompts import prompt_blob
from culture_probe.report._rundir import RunData, read_run_data
from culture_probe.report._shared import first_value, model_name, proxy_names
from culture_probe.report._short_answer import language_section, short_answer_section
from culture_probe.report._tables import tables_section
from culture_probe.report._verdict import verdict_section
from culture_probe.report.page import render_page, write_page
from culture_probe.store import RunDirectory


def render_run_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the HTML report of a run directory.

    Args:
        run_dir: The run directory (``plan.parquet`` required; the rest adds sections).
        out: Where to write; default ``run_dir / "report.html"``. Written atomically.

    Returns:
        The path written.

    Raises:
        InputError: the run directory has no plan, or one of its files cannot be read.

    Example:
        >>> render_run_report(Path("reports/values/run-1"))  # doctest: +SKIP
        PosixPath('reports/values/run-1/report.html')
    """
    data = read_run_data(Path(run_dir))
    target = Path(out) if out is not None else RunDirectory(data.path).report_path
    return write_page(target, build_run_page(data))


def build_run_page(data: RunData) -> str:
    """The HTML text of the report for an already loaded run."""
    names = proxy_names(data.plan)
    sections = [
        verdict_section(data),
        short_answer_section(data),
        charts_section(data, names),
        crossed_section(data),
        factors_section(data),
        elicitation_section(data),
        language_section(data),
        alignment_section(data, names),
        tables_section(data, names),
        prompts_section(data),
        coverage_section(data),
        manifest_section(data),
    ]
    study = first_value(data.plan, "study") or data.path.name
    model = model_name(data.manifest)
    lead = f"{len(data.plan)} prompts" + (f" put to {model}" if model else "")
    return render_page(
        f"culture-probe report: {study}",
        [section for section in sections if section is not None],
        lead=lead + ". Is it culture, or is it the wording?",
        data={"prompt-data": prompt_blob(data.plan, data.responses)},
        scripts=("prompts.js",),
    )
