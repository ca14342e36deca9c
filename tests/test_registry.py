"""The registry (culture_probe.columns) is the one list: design, analysis, report and docs agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culture_probe import design
from culture_probe.analysis import tidy_responses
from culture_probe.analysis._factorial import factor_tables
from culture_probe.analysis.cli import analyze_run
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.columns import (
    CONTEXT_FACTORS,
    DESIGN_FACTORS,
    PLAN_COLUMNS,
    STATS_TABLE,
    STATS_TABLES,
    with_docs_tables,
)
from culture_probe.design import build_plan
from culture_probe.export import DESIGN_COLUMNS
from culture_probe.report.run_report import render_run_report
from culture_probe.study import load_study

REPO = Path(__file__).resolve().parents[1]
RUN_DIRECTORY_DOC = REPO / "docs" / "run-directory.md"
#: the pages whose reference tables are rendered from the registry
REGISTRY_PAGES = (RUN_DIRECTORY_DOC, REPO / "docs" / "extending.md")


@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A synthetic run with placebos, a baseline, two prompt languages and human data, analysed.

    Returns the run directory and the names of the stats tables the analysis wrote.
    """
    effects = PlantedEffects(culture=0.15, wording=0.03, interaction=0.02, noise=0.01, placebo=0.01)
    plan, responses = simulate_study(
        effects, n_items=3, n_proxies=4, n_paraphrases=4, n_placebos=2, baseline=True, seed=3
    )
    # the odd paraphrases asked in Japanese: a second prompt language, crossed with every proxy
    japanese = plan["paraphrase"].isin(["p1", "p3"])
    plan["language"] = np.where(japanese, "ja", "en")
    plan["wording"] = plan["wording"] + np.where(japanese, "@ja", "@en")
    culture = plan.loc[plan["proxy_kind"] == "culture"].drop_duplicates(["item_id", "proxy"])
    reference = pd.DataFrame(
        [
            (item, proxy, option, share)
            for item, proxy in zip(culture["item_id"], culture["proxy"], strict=True)
            for option, share in enumerate([0.1, 0.2, 0.3, 0.4])
        ],
        columns=["item_id", "proxy", "option", "share"],
    )
    directory = tmp_path_factory.mktemp("run")
    plan.to_parquet(directory / "plan.parquet")
    responses.to_parquet(directory / "responses.parquet")
    reference.to_parquet(directory / "reference.parquet")
    result = analyze_run(directory, n_bootstrap=50, n_permutations=19)
    return directory, set(result.tables)


def test_every_table_the_analysis_writes_is_registered(analysed_run: tuple[Path, set[str]]) -> None:
    directory, written = analysed_run
    on_disk = {path.stem for path in (directory / "stats").glob("*.parquet")}
    assert on_disk == written
    assert written <= set(STATS_TABLE)
    # the run exercises every optional table but the short answers (their own test module), the
    # nominal items' (tests/test_claims.py writes and shows them) and the elicitation levels'
    # (tests/test_elicitation.py)
    assert set(STATS_TABLE) - written == {"short_answer", "nominal_stats", "elicitation_stats"}


def test_the_report_shows_every_table_the_analysis_writes(
    analysed_run: tuple[Path, set[str]],
) -> None:
    directory, written = analysed_run
    html = render_run_report(directory).read_text(encoding="utf-8")
    element_ids = set(re.findall(r'id="(table-[\w-]+)"', html))
    missing = {name for name in written if STATS_TABLE[name].element_id not in element_ids}
    assert not missing, f"written to stats/ but not shown by the report: {sorted(missing)}"


def test_the_report_labels_columns_with_the_registry(analysed_run: tuple[Path, set[str]]) -> None:
    directory, _ = analysed_run
    html = (directory / "report.html").read_text(encoding="utf-8")
    wording_stats = html[html.index(f'id="{STATS_TABLE["wording_stats"].element_id}"') :]
    label = {column.name: column for column in STATS_TABLE["wording_stats"].shown}
    assert f">{label['proxy_flip_rate'].label}<" in wording_stats.split("</table>")[0]
    assert label["proxy_flip_rate"].description in wording_stats.split("</table>")[0]


def test_the_docs_list_every_stats_table_and_design_factor() -> None:
    stats_doc = RUN_DIRECTORY_DOC.read_text(encoding="utf-8")
    for table in STATS_TABLES:
        assert f"| `{table.name}` | {table.grain} |" in stats_doc
    guide = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    for factor in DESIGN_FACTORS:
        assert f"| `{factor.name}` | `{factor.study_key}` |" in guide


@pytest.mark.parametrize("page", REGISTRY_PAGES, ids=[page.name for page in REGISTRY_PAGES])
def test_the_docs_tables_match_the_registry(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "<!-- registry:" in text
    assert with_docs_tables(text) == text, (
        f"docs/{page.name} differs from the registry: "
        f"run `python -m culture_probe.columns docs/{page.name}`"
    )


def test_a_plan_has_every_registered_column_and_factor() -> None:
    plan = build_plan(load_study(REPO / "taxonomy" / "values.yaml"))
    assert set(PLAN_COLUMNS) <= set(plan.columns)
    assert set(CONTEXT_FACTORS) <= set(plan.columns)
    assert set(DESIGN_COLUMNS) <= set(plan.columns)


def test_the_design_draws_its_cells_over_every_registered_factor() -> None:
    # each unit of the design is one item in one language; its cells cross the other factors
    assert {*design.CONTEXT_FACTORS, "language"} == set(CONTEXT_FACTORS)


@pytest.mark.parametrize("factor", [factor.name for factor in DESIGN_FACTORS])
def test_the_decomposition_fits_every_registered_factor_that_varies(factor: str) -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1, noise=0.05), n_items=2, n_proxies=3, n_paraphrases=2, seed=1
    )
    if factor not in {"paraphrase", "order"}:  # the two the synthetic design varies already
        levels = np.random.default_rng(5).integers(0, 2, size=len(plan))
        plan[factor] = np.where(levels == 0, "level-a", "level-b")
    tidy = tidy_responses(plan, responses)
    stats, _, _, _ = factor_tables(tidy, {"Q0": 0, "Q1": 1}, 20, 0)
    fitted = set(stats["factor"])
    assert factor in fitted and f"culture x {factor}" in fitted
