"""Budgets: the balanced fraction drawn per item from the factor levels, the fewest prompts that
leave every term of the analysis estimable, and the limit on a design's size."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culture_probe.analysis._factorial import (
    fit_components,
    term_codes,
    unit_decomposition,
    unit_terms,
    with_design_columns,
)
from culture_probe.budget import balanced_fraction, min_cells_for, split_evenly
from culture_probe.design import (
    MAX_PROMPTS,
    build_plan,
    design_size,
    design_units,
    smallest_budget,
)
from culture_probe.errors import InputError
from culture_probe.runner import PlanFilter, prepare
from culture_probe.study import load_study
from culture_probe.taxonomy import load_taxonomy

LEVELS = {"axis_region": 10, "axis_religion": 4, "paraphrase": 5, "separator": 3, "order": 2}


def _grid() -> pd.DataFrame:
    index = pd.MultiIndex.from_product([range(n) for n in LEVELS.values()], names=list(LEVELS))
    grid = index.to_frame(index=False)
    grid["prompt"] = [f"cell{k}" for k in range(len(grid))]  # rides along
    return grid


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25, 0.5])
def test_every_level_and_axis_pair_within_one_of_even(share: float) -> None:
    grid = _grid()
    n = int(len(grid) * share)
    picked = balanced_fraction(grid, list(LEVELS), n, seed=3)
    assert len(picked) == n and not picked.index.duplicated().any()
    for factor, levels in LEVELS.items():
        counts = picked[factor].value_counts().reindex(range(levels), fill_value=0)
        assert counts.max() - counts.min() <= 1, factor
    pairs = picked.groupby(["axis_region", "axis_religion"]).size()
    pairs = pairs.reindex(pd.MultiIndex.from_product([range(10), range(4)]), fill_value=0)
    assert pairs.max() - pairs.min() <= 3  # a random draw of 300 spreads them over ~10
    assert (picked["prompt"] == grid.loc[picked.index, "prompt"]).all()


def test_deterministic_by_seed() -> None:
    grid = _grid()
    first = balanced_fraction(grid, list(LEVELS), 120, seed=1)
    again = balanced_fraction(grid, list(LEVELS), 120, seed=1)
    other = balanced_fraction(grid, list(LEVELS), 120, seed=2)
    assert first.index.tolist() == again.index.tolist()
    assert first.index.tolist() != other.index.tolist()


def test_excluded_combinations_never_drawn_and_levels_stay_close() -> None:
    grid = _grid()
    allowed = grid.loc[~((grid["axis_region"] == 0) & (grid["axis_religion"] == 0))]
    picked = balanced_fraction(allowed, list(LEVELS), 300, seed=0)
    assert picked.index.isin(allowed.index).all()
    counts = picked["axis_region"].value_counts()
    assert counts.max() - counts.min() <= 1


def test_fraction_at_min_cells_estimates_every_main_effect() -> None:
    grid = _grid()
    n = min_cells_for(LEVELS)
    assert n == 2 + 9 + 3 + 4 + 2 + 1
    picked = balanced_fraction(grid, list(LEVELS), n, seed=0)
    rows = picked.assign(axis="region x religion", score=np.random.default_rng(0).normal(size=n))
    terms = [t for t in unit_terms(rows, "region x religion") if t.kind in ("proxy", "context")]
    fit = fit_components(rows["score"].to_numpy(), term_codes(rows, terms))
    assert fit.df[:-1].tolist() == [9, 3, 4, 2, 1] and fit.df[-1] >= 1


def test_bad_arguments_name_the_key() -> None:
    grid = _grid()
    with pytest.raises(InputError, match=r"key 'paraphrse'.*did you mean 'paraphrase'"):
        balanced_fraction(grid, ["paraphrse"], 10, seed=0)
    with pytest.raises(InputError, match=r"key 'budget'.*between 1 and the 1200 cells, got 0"):
        balanced_fraction(grid, ["paraphrase"], 0, seed=0)
    with pytest.raises(InputError, match=r"key 'order'.*at least one level"):
        min_cells_for({"order": 0})


# ------------------------------------------------------------------------- budgets drawn per item

ITEMS = """\
items:
  - id: pork
    scale: ordinal
    options: [Often, Sometimes, Rarely, Never]
    paraphrases: ["How often do you eat pork?", "How often is pork on your table?",
                  "How often does your family cook pork?"]
  - id: tea
    scale: ordinal
    options: [Every day, Some days, Never]
    paraphrases: ["How often do you drink tea?", "How often is there tea in your cup?",
                  "How often do you have a cup of tea?"]
  - id: staple
    scale: nominal
    options: [Rice, Bread, Potatoes]
    paraphrases: ["Which staple do you eat most?", "Which of these is on your plate most days?",
                  "Which of these do you eat with most meals?"]
"""

CROSSED = """\
axes:
  region: [IN, IL, US, JP]
  religion: [islam, hinduism, judaism]
cross: [region, religion]
persona:
  culture: "a {{ religion.adjective }} person {{ region.in_phrase }}"
  placebo: "a person {{ placebo.clause }}"
controls:
  baseline: true
  placebos: [colour_green]
formats:
  enumerator: ["A.", "1."]
"""


def write_study(folder: Path, repo: Path, body: str) -> Path:
    """A study beside its own items, with the packaged taxonomy, template and framings."""
    (folder / "items.yaml").write_text(ITEMS)
    study = folder / "study.yaml"
    study.write_text(
        "study: probe\n"
        "semantic_proxy: food_and_drink\n"
        f"taxonomy: {repo / 'taxonomy' / 'taxonomy.yaml'}\n"
        "items: items.yaml\n"
        f"template: {repo / 'probes' / 'templates' / 'multiple_choice.en.j2'}\n"
        f"framings: {repo / 'probes' / 'framings' / 'persona.en.yaml'}\n"
        "use_framings: [how_would, imagine]\n" + body
    )
    return study


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "culture_probe.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def spread(counts: pd.Series) -> int:
    return int(counts.max() - counts.min())


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_each_item_is_balanced_over_proxies_crossed_cells_and_every_factor(
    tmp_path: Path, repo: Path, share: float
) -> None:
    study = load_study(write_study(tmp_path, repo, CROSSED))
    full = design_size(study)
    # 3 items x (12 personas + placebo) x 2 framings x 3 paraphrases x 2 orders x 2 enumerators,
    # and the baseline in one framing
    assert full == 3 * (13 * 2 + 1) * 3 * 2 * 2 == 972
    budget = max(int(full * share), smallest_budget(design_units(study)))
    plan = build_plan(study, budget)
    assert len(plan) == budget and plan["prompt_id"].is_unique
    assert spread(plan["item_id"].value_counts()) <= 1
    for item, rows in plan.groupby("item_id"):
        per_proxy = rows["proxy"].value_counts()
        assert len(per_proxy) == 14 and spread(per_proxy) <= 1, (item, per_proxy.to_dict())
        cultures = rows[rows["proxy_kind"] == "culture"]
        for axis, levels in (("axis_region", 4), ("axis_religion", 3)):
            counts = cultures[axis].value_counts()
            assert len(counts) == levels and spread(counts) <= 1, (item, axis, counts.to_dict())
        for factor in ("paraphrase", "order", "enumerator", "framing"):
            framed = rows if factor != "framing" else rows[rows["proxy_kind"] != "baseline"]
            counts = framed[factor].value_counts()
            assert spread(counts) <= 1, (item, factor, counts.to_dict())
            expected = {"paraphrase": 3, "enumerator": 2, "framing": 2}.get(factor)
            assert expected is None or len(counts) == expected
        # within every persona too: each sees every paraphrase, as evenly as its count allows
        by_persona = cultures.groupby("proxy")["paraphrase"].value_counts().unstack(fill_value=0)
        assert (by_persona.max(axis=1) - by_persona.min(axis=1)).max() <= 1


def test_the_smallest_budget_leaves_every_term_of_the_analysis_estimable(
    tmp_path: Path, repo: Path
) -> None:
    study = load_study(write_study(tmp_path, repo, CROSSED))
    smallest = smallest_budget(design_units(study))
    plan = build_plan(study, smallest)
    rng = np.random.default_rng(0)
    for item, rows in plan[plan["proxy_kind"] == "culture"].groupby("item_id"):
        rows = with_design_columns(rows.reset_index(drop=True))
        terms = unit_terms(rows, "region x religion")
        # the analysis' own model: both axes, their interaction, every context factor and every
        # culture x factor interaction, each with degrees of freedom, and a residual
        assert {"region", "religion", "region x religion", "culture x paraphrase"} <= {
            t.name for t in terms
        }
        fit = fit_components(rng.normal(size=len(rows)), term_codes(rows, terms))
        assert (fit.df > 0).all(), (item, dict(zip([t.name for t in terms], fit.df, strict=False)))
    with pytest.raises(InputError, match=f"needs at least {smallest:,} \\(3 items"):
        build_plan(study, smallest - 1)


def test_filters_choose_before_the_budget_draws(repo: Path) -> None:
    values = repo / "taxonomy" / "values.yaml"
    one_item = PlanFilter(items=("family_importance",), budget=156)
    plan = prepare(values, one_item).plan
    # 156 of the item's 312 prompts, every one of its 13 proxies 12 times: all 10 countries
    assert len(plan) == 156 and set(plan["item_id"]) == {"family_importance"}
    assert plan["proxy"].value_counts().tolist() == [12] * 13
    assert "= 312 cells; budget: a balanced 156 prompts (50.0%)" in prepare(values, one_item).design
    with pytest.raises(InputError, match=r"needs at least 117 \(1 item, each proxy asked 9 times"):
        prepare(values, PlanFilter(items=("family_importance",), budget=100))
    two = prepare(values, PlanFilter(proxies=("JP", "US", "none"), budget=600)).plan
    assert len(two) == 600 and set(two["proxy"]) == {"JP", "US", "none"}
    assert two.groupby("item_id")["proxy"].value_counts().between(14, 15).all()


def test_the_command_line_refuses_a_design_over_the_limit_and_draws_a_budget_from_it(
    tmp_path: Path, repo: Path
) -> None:
    study = write_study(tmp_path, repo, CROSSED)
    refused = cli("plan", study, "--max-prompts", "900", cwd=repo)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "the design has 972 prompts, more than the limit of 900 (--max-prompts)" in (
        refused.stderr
    )
    assert "--budget N (N from 294 to 900)" in refused.stderr
    drawn = cli(
        "plan", study, "--max-prompts", "900", "--budget", "800", "-o", "p.parquet", cwd=tmp_path
    )
    assert drawn.returncode == 0, drawn.stderr
    assert "= 972 cells; budget: a balanced 800 prompts" in " ".join(drawn.stdout.split())
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 800
    over = cli("plan", study, "--max-prompts", "500", "--budget", "800", cwd=repo)
    assert over.returncode == 2 and "a budget of 800 prompts is more than the limit of 500" in (
        over.stderr
    )


def test_a_three_axis_crossing_is_refused_at_once(tmp_path: Path, repo: Path) -> None:
    taxonomy = load_taxonomy(repo / "taxonomy" / "taxonomy.yaml")
    values = {c.id: [v.id for v in c.values] for c in taxonomy.categories if c.values}
    axes = "".join(f"  {axis}: [{', '.join(values[axis])}]\n" for axis in AXES)
    study = write_study(
        tmp_path,
        repo,
        f"axes:\n{axes}cross: [{', '.join(AXES)}]\n"
        'persona:\n  culture: "a {{ religion.adjective }} {{ ethnicity.name }} person '
        '{{ region.in_phrase }}"\n',
    )
    assert len(study.read_bytes()) < 2500
    code = (
        "import resource, subprocess, sys; "
        f"done = subprocess.run([sys.executable, '-m', 'culture_probe.cli', 'plan', '{study}'], "
        "capture_output=True, text=True); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "print(done.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo)
    status, peak_kb = map(int, done.stdout.split("\n", 1)[0].split())
    personas = 85 * 19 * 23
    assert personas == 37145
    # 3 items x 37,145 personas x 3 paraphrases x 2 framings x 2 orders
    assert status == 2 and f"the design has {personas * 3 * 3 * 2 * 2:,} prompts" in done.stdout
    assert "even the smallest budget that estimates every factor needs" in done.stdout
    assert peak_kb < 600_000  # the plan is never expanded: 1.6 million prompts would take ~10 GB


AXES = ("region", "religion", "ethnicity")


def test_a_term_the_design_confounds_is_flagged_not_estimable_and_has_no_share() -> None:
    rng = np.random.default_rng(4)
    grid = pd.MultiIndex.from_product(
        [["JP", "US", "DE", "IN"], ["p1", "p2", "p3", "p4"], range(3)],
        names=["proxy", "paraphrase", "repeat"],
    ).to_frame(index=False)
    # the order follows the paraphrase: the two are confounded, and order comes second
    grid["order"] = (
        grid["paraphrase"].map({"p1": "canonical", "p2": "canonical"}).fillna("reversed")
    )
    rows = with_design_columns(
        grid.assign(axis="region", item_id="q", score=rng.normal(size=len(grid)))
    )
    fitted = unit_decomposition(rows, "q", "region", 200, rng)
    assert fitted is not None
    table = fitted.table.set_index("factor")
    assert not table.loc["order", "estimable"] and table.loc["order", "df"] == 0
    assert np.isnan(table.loc["order", "share"]) and np.isnan(table.loc["culture x order", "share"])
    assert table.loc[["region", "paraphrase", "residual"], "estimable"].all()
    estimable = table.loc[table["estimable"]]
    # the untruncated shares of the estimable terms add up to the whole variance; the printed
    # share is that value clipped to [0, 1] (docs/statistics.md, "Factor shares")
    assert estimable["raw_share"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(estimable["share"], estimable["raw_share"].clip(0, 1))


def test_a_four_axis_crossing_is_refused_before_its_personas_are_built(
    tmp_path: Path, repo: Path
) -> None:
    axes_four = (*AXES, "language")
    taxonomy = load_taxonomy(repo / "taxonomy" / "taxonomy.yaml")
    values = {c.id: [v.id for v in c.values] for c in taxonomy.categories if c.values}
    axes = "".join(f"  {axis}: [{', '.join(values[axis])}]\n" for axis in axes_four)
    study = write_study(
        tmp_path,
        repo,
        f"axes:\n{axes}cross: [{', '.join(axes_four)}]\n"
        'persona:\n  culture: "a {{ religion.adjective }} person {{ region.in_phrase }}"\n',
    )
    started = time.process_time()
    with pytest.raises(InputError) as caught:
        load_study(study)
    assert time.process_time() - started < 20  # 2.6 million personas would take minutes
    message = str(caught.value)
    assert f"{study}:{line_of(study, 'cross:')}: key 'cross': crossing 85 region x 19" in message
    assert "more than 200,000 personas" in message


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def test_the_help_states_the_limit_the_plan_applies(repo: Path) -> None:
    shown = cli("plan", "--help", cwd=repo)
    assert shown.returncode == 0
    assert f"Default {MAX_PROMPTS:,}" in " ".join(shown.stdout.replace("│", " ").split())


def test_shares_above_their_floor_go_to_those_at_the_even_level() -> None:
    # the first needs 5; the 5 left go to the other two as evenly as possible
    assert split_evenly(10, [5, 0, 0], [9, 9, 9]) == [5, 3, 2]
    assert split_evenly(12, [0, 0, 0], [2, 9, 9]) == [2, 5, 5]
    with pytest.raises(InputError):
        split_evenly(30, [0, 0], [9, 9])
