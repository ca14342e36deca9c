"""How the answer is asked for, as a factor: the decomposition, ``elicitation_stats``, the verdict,
the claims, the report section and the comparison of runs asked different ways."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.proportion import proportion_confint

from culture_probe.analysis import (
    analyze,
    claim_problems,
    format_terminal_summary,
    tidy_responses,
)
from culture_probe.analysis._elicitation import DOMINATED, elicitation_table
from culture_probe.analysis.cli import analyze_run
from culture_probe.analysis.synthetic import Outcomes, PlantedEffects, simulate_study
from culture_probe.columns import ELICITATION_LEVELS
from culture_probe.compare import PlanMismatchError, compare
from culture_probe.report.run_report import render_run_report
from test_compare_stats import make_run

PLANTED = PlantedEffects(elicitation=0.25, noise=0.02)
NULL = PlantedEffects(noise=0.05)


@functools.cache
def _run(effects: PlantedEffects, n_items: int, seed: int) -> tuple[pd.DataFrame, Any]:
    plan, responses = simulate_study(
        effects,
        n_items=n_items,
        n_proxies=4,
        n_paraphrases=3,
        elicitation_levels=ELICITATION_LEVELS,
        seed=seed,
    )
    tidy = tidy_responses(plan, responses)
    return tidy, analyze(tidy, n_bootstrap=100, n_permutations=19)


def _items(result: Any) -> pd.DataFrame:
    table = result.tables["elicitation_stats"]
    return table.loc[(table["scope"] == "item") & (table["level"] == "first_token")]


# --- the decomposition and the verdict --------------------------------------------------------------


def test_elicitation_is_a_fixed_factor_of_the_decomposition_with_its_culture_interaction() -> None:
    _, result = _run(PLANTED, 8, 3)
    factors = result.tables["factor_stats"]
    own = factors.loc[factors["factor"] == "elicitation"]
    assert len(own) == 8 and set(own["effect"]) == {"fixed"} and set(own["df"]) == {3.0}
    assert "culture x elicitation" in set(factors["factor"])
    levels = result.tables["factor_levels"]
    study = levels.loc[(levels["scope"] == "study") & (levels["factor"] == "elicitation")]
    assert sorted(study["level"]) == sorted(ELICITATION_LEVELS)


def test_only_the_level_moving_the_answer_makes_every_item_elicitation_dominated() -> None:
    _, result = _run(PLANTED, 8, 3)
    items = _items(result)
    assert (items["verdict"] == DOMINATED).all(), items[["item_id", "verdict"]]
    assert (items["elicitation_share"] > items["culture_share"]).all()
    assert result.summary["elicitation"]["region"]["verdicts"][DOMINATED] == 8


def test_a_null_run_calls_at_most_five_percent_of_items_elicitation_dominated() -> None:
    _, result = _run(NULL, 40, 5)
    items = _items(result)
    assert len(items) == 40
    assert (items["verdict"] == DOMINATED).mean() <= 0.05
    # the unadjusted F test itself holds its level on null items
    assert (items["p_elicitation"] < 0.05).mean() <= 0.15


# --- agreement, distance, outcomes -----------------------------------------------------------------


def _hand_built() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One item, two proxies, two wordings; first-token and written answers on the same cells.

    First-token most likely options: (C0, p1) 0, (C0, p2) 1, (C1, p1) 2, (C1, p2) 0. Written
    answers: 0, 1, 1, refused. Agreement: 2 of the 3 answered cells.
    """
    first = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]
    written: list[list[float]] = [[1, 0, 0], [0, 1, 0], [0, 1, 0], []]
    cells = [("C0", "p1"), ("C0", "p2"), ("C1", "p1"), ("C1", "p2")]
    rows = []
    for level, probs in (("first_token", first), ("written", written)):
        for (proxy, paraphrase), p in zip(cells, probs, strict=True):
            rows.append((level, proxy, paraphrase, p))
    ids = [f"{k:016x}" for k in range(len(rows))]
    plan = pd.DataFrame(
        {
            "prompt_id": ids,
            "row": range(len(rows)),
            "item_id": "Q0",
            "scale": "ordinal",
            "n_options": 3,
            "axis": "region",
            "proxy": [r[1] for r in rows],
            "proxy_kind": "culture",
            "paraphrase": [r[2] for r in rows],
            "wording": [r[2] + "/imagine" for r in rows],
            "order": "canonical",
            "display_to_canonical": [[0, 1, 2]] * len(rows),
            "seed": 0,
            "elicitation": [r[0] for r in rows],
        }
    )
    responses = pd.DataFrame(
        {
            "prompt_id": ids,
            "probs": [r[3] for r in rows],
            "answer": [int(np.argmax(r[3])) if r[3] else -1 for r in rows],
            "outcome": ["answered" if r[3] else "refused" for r in rows],
        }
    )
    return plan, responses


def test_agreement_with_the_first_token_choice_is_the_hand_count_with_a_wilson_interval() -> None:
    plan, responses = _hand_built()
    tidy = tidy_responses(plan, responses)
    probs = np.stack([np.array(p + [np.nan] * (3 - len(p))) for p in tidy["probs"]])
    table = elicitation_table(tidy, probs, {}, None, 200, 0)
    assert table is not None
    written = table.loc[(table["scope"] == "item") & (table["level"] == "written")].iloc[0]
    assert written["n_pairs"] == 3 and written["agreement"] == pytest.approx(2 / 3)
    low, high = proportion_confint(2, 3, alpha=0.05, method="wilson")
    assert (written["agreement_low"], written["agreement_high"]) == pytest.approx((low, high))
    # C1's one written answer disagrees: the bound is exactly 0, not a rounding error above it
    c1 = table.loc[(table["proxy"] == "C1") & (table["level"] == "written")].iloc[0]
    _, upper = proportion_confint(0, 1, alpha=0.05, method="wilson")
    assert c1["agreement_low"] == 0.0 and c1["agreement_high"] == pytest.approx(upper)
    assert written["refusal_rate"] == pytest.approx(1 / 4)
    per_proxy = table.loc[(table["scope"] == "proxy") & (table["level"] == "written")]
    assert per_proxy.set_index("proxy")["agreement"].to_dict() == pytest.approx(
        {"C0": 1.0, "C1": 0.0}
    )


def test_the_distribution_shift_is_scipys_jensen_shannon_distance_of_the_pooled_answers() -> None:
    tidy, result = _run(PLANTED, 8, 3)
    table = result.tables["elicitation_stats"]
    culture = tidy.loc[(tidy["proxy_kind"] == "culture") & (tidy["item_id"] == "Q2")]
    culture = culture.loc[culture["probs"].map(len) > 0]

    def pooled(level: str) -> np.ndarray:
        rows = culture.loc[culture["elicitation"] == level]
        by_wording = [
            np.stack(g["probs"].to_numpy()).mean(axis=0) for _, g in rows.groupby("wording")
        ]
        return np.mean(by_wording, axis=0)

    for level in ("constrained", "written", "open"):
        expected = jensenshannon(pooled("first_token"), pooled(level), base=2)
        row = table.loc[
            (table["scope"] == "item") & (table["item_id"] == "Q2") & (table["level"] == level)
        ].iloc[0]
        assert row["js_shift"] == pytest.approx(expected, abs=1e-9)
        assert row["js_shift_low"] <= row["js_shift_high"]


def test_similarity_to_people_per_level_is_avgp_from_scipys_distance() -> None:
    plan, responses = simulate_study(
        PLANTED, n_items=2, n_proxies=3, n_paraphrases=3, seed=6,
        elicitation_levels=("first_token", "written"),
    )  # fmt: skip
    human = [0.1, 0.2, 0.3, 0.4]
    reference = pd.DataFrame(
        [
            (item, proxy, option, share)
            for item in ("Q0", "Q1")
            for proxy in ("C00", "C01", "C02")
            for option, share in enumerate(human)
        ],
        columns=["item_id", "proxy", "option", "share"],
    )
    tidy = tidy_responses(plan, responses)
    result = analyze(tidy, reference, n_bootstrap=50, n_permutations=9)
    table = result.tables["elicitation_stats"]
    answered = tidy.loc[(tidy["probs"].map(len) > 0) & (tidy["item_id"] == "Q1")]
    expected = {}
    for level in ("first_token", "written"):
        rows = answered.loc[answered["elicitation"] == level]
        avg_p = [
            np.mean(
                [
                    1
                    - jensenshannon(np.stack(cell["probs"].to_numpy()).mean(axis=0), human, base=2)
                    for _, cell in by_proxy.groupby("wording")
                ]
            )
            for _, by_proxy in rows.groupby("proxy")
        ]
        expected[level] = np.mean(avg_p)
    item = table.loc[(table["scope"] == "item") & (table["item_id"] == "Q1")].set_index("level")
    assert item.at["first_token", "human_similarity"] == pytest.approx(expected["first_token"])
    assert item.at["written", "human_similarity"] == pytest.approx(expected["written"])
    assert item.at["written", "human_similarity_change"] == pytest.approx(
        expected["written"] - expected["first_token"]
    )
    claim = next(c for c in result.claims if c.key == "region:elicitation_people")
    assert claim_problems([claim], result.tables, result.summary) == []


def test_refusals_abstentions_and_invalid_answers_are_counted_per_level() -> None:
    outcomes = Outcomes(refused=0.1, abstained=0.2, invalid=0.05)
    plan, responses = simulate_study(
        NULL, n_items=4, n_proxies=4, n_paraphrases=3, seed=2,
        elicitation_levels=("first_token", "written", "open"), outcomes=outcomes,
    )  # fmt: skip
    result = analyze(tidy_responses(plan, responses), n_bootstrap=50, n_permutations=9)
    table = result.tables["elicitation_stats"]
    study = table.loc[table["scope"] == "study"].set_index("level")
    joined = plan.merge(responses, on="prompt_id")
    for level in ("first_token", "written", "open"):
        counts = joined.loc[joined["elicitation"] == level, "outcome"].value_counts(normalize=True)
        assert study.at[level, "refusal_rate"] == pytest.approx(counts.get("refused", 0.0))
        assert study.at[level, "abstention_rate"] == pytest.approx(counts.get("abstained", 0.0))
        assert study.at[level, "invalid_rate"] == pytest.approx(counts.get("invalid", 0.0))
    assert (
        study.at["open", "abstention_rate"] > 0.1 and study.at["first_token", "refusal_rate"] == 0
    )


def test_a_run_asked_one_way_has_no_elicitation_table() -> None:
    plan, responses = simulate_study(NULL, n_items=2, n_proxies=3, n_paraphrases=2, seed=1)
    result = analyze(tidy_responses(plan, responses), n_bootstrap=20, n_permutations=9)
    assert "elicitation_stats" not in result.tables
    assert not any("elicitation" in claim.key for claim in result.claims)


# --- claims -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("effects, n_items, seed", [(PLANTED, 8, 3), (NULL, 40, 5)])
def test_the_elicitation_claims_agree_with_their_tables(
    effects: PlantedEffects, n_items: int, seed: int
) -> None:
    _, result = _run(effects, n_items, seed)
    assert claim_problems(result.claims, result.tables, result.summary) == []
    keys = {claim.key for claim in result.claims}
    assert {"region:elicitation_verdicts", "region:elicitation_agreement"} <= keys
    verdict = next(c for c in result.claims if c.key == "region:elicitation_verdicts")
    dominated = int((_items(result)["verdict"] == DOMINATED).sum())
    assert f"{dominated} of {n_items} items" in verdict.sentence
    assert verdict.sentence in result.headline


def test_a_verdict_count_beyond_its_significant_tests_is_caught() -> None:
    _, result = _run(PLANTED, 8, 3)
    claim = next(c for c in result.claims if c.key == "region:elicitation_verdicts")
    assert claim.test is not None
    fewer = dataclasses.replace(claim.test, n_significant=5)
    problems = claim_problems(
        [dataclasses.replace(claim, test=fewer)], result.tables, result.summary
    )
    assert problems == [
        "region:elicitation_verdicts: counts 8 items decided by "
        + claim.test.name
        + ", which is significant in only 5"
    ]


def test_the_terminal_summary_says_how_many_items_depend_on_how_they_are_asked() -> None:
    _, result = _run(PLANTED, 8, 3)
    console = Console(width=80, record=True)
    console.print(format_terminal_summary(result))
    printed = console.export_text()
    assert "8 of 8 items on the region axis are elicitation-dominated" in " ".join(printed.split())
    assert max(len(line) for line in printed.splitlines()) <= 80


def test_a_changed_agreement_is_caught_by_the_consistency_checker() -> None:
    _, result = _run(PLANTED, 8, 3)
    tables = dict(result.tables)
    changed = tables["elicitation_stats"].copy()
    changed.loc[changed["scope"] == "study", "agreement"] += 0.1
    tables["elicitation_stats"] = changed
    problems = claim_problems(result.claims, tables, result.summary)
    assert any("elicitation_agreement" in problem for problem in problems)


# --- the report ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    plan, responses = simulate_study(
        PLANTED,
        n_items=3,
        n_proxies=4,
        n_paraphrases=3,
        elicitation_levels=ELICITATION_LEVELS,
        seed=3,
    )
    directory = tmp_path_factory.mktemp("elicited")
    plan.to_parquet(directory / "plan.parquet")
    responses.to_parquet(directory / "responses.parquet")
    analyze_run(directory, n_bootstrap=50, n_permutations=9)
    render_run_report(directory)
    return directory


def test_the_report_shows_each_items_answers_per_level_in_chromium(
    run_dir: Path, browser: Any
) -> None:
    from browser import BrowserPage

    loaded = BrowserPage(browser, run_dir / "report.html")
    loaded.assert_clean()
    chart = loaded.page.locator("#chart-elicitation svg")
    assert chart.count() == 1
    bars = chart.locator("rect.segment")
    # 3 items x 4 levels, one segment per option shown and one for the answers without an option
    assert bars.count() == 3 * 4 * 5
    # the study's 4 levels, then 3 items x 4 levels, then 3 items x 4 proxies x 4 levels, once
    assert loaded.page.locator("#table-elicitation tbody tr").count() == 4 + 12 + 48
    assert loaded.page.locator("#table-elicitation").count() == 1
    caption = loaded.page.locator("#chart-elicitation figcaption").inner_text()
    assert "first_token 72, constrained 72, written 72, open 72" in caption
    section = loaded.page.locator("section", has=loaded.page.locator("#chart-elicitation"))
    assert "elicitation-dominated" in section.first.inner_text()


def test_a_run_asked_one_way_has_no_elicitation_section(tmp_path: Path) -> None:
    plan, responses = simulate_study(NULL, n_items=2, n_proxies=3, n_paraphrases=2, seed=1)
    plan.to_parquet(tmp_path / "plan.parquet")
    responses.to_parquet(tmp_path / "responses.parquet")
    analyze_run(tmp_path, n_bootstrap=20, n_permutations=9)
    html = render_run_report(tmp_path).read_text(encoding="utf-8")
    assert "chart-elicitation" not in html and "How the answer is asked for" not in html


# --- compare ----------------------------------------------------------------------------------------


def _runs_by_level(tmp_path: Path, levels: tuple[str, str]) -> list[Path]:
    plan, responses = simulate_study(
        PLANTED, n_items=3, n_proxies=4, n_paraphrases=3, elicitation_levels=levels, seed=4
    )
    paths = []
    for index, level in enumerate(levels):
        rows = (plan["elicitation"] == level).to_numpy()
        paths.append(
            make_run(
                tmp_path / level,
                "model",
                plan.loc[rows],
                responses.loc[rows],
                study_hash=str(index) * 64,  # the study files differ in their elicitation key
            )
        )
    return paths


def test_compare_pairs_runs_asked_different_ways_cell_by_cell_and_names_the_factor(
    tmp_path: Path,
) -> None:
    first, written = _runs_by_level(tmp_path, ("first_token", "written"))
    result = compare([first, written], n_bootstrap=100)
    assert result.summary["differing_factor"] == "elicitation"
    assert result.models == ["model (hf, float32) · first_token", "model (hf, float32) · written"]
    assert result.summary["headline"][0].startswith("The runs differ only in elicitation")
    # every written answer that names an option is paired with its first-token cell
    answered = pd.read_parquet(written / "responses.parquet")["outcome"].eq("answered").sum()
    assert result.summary["n_prompts"] == 3 * 4 * 3 * 2
    items = result.tables["item_differences"]
    assert items["n_prompts"].sum() == answered
    # the difference is the written minus the first-token score, averaged over wordings
    a, b = result.runs
    merged = a.tidy.merge(b.tidy, on="prompt_id", suffixes=("_a", "_b")).dropna(
        subset=["score_a", "score_b"]
    )
    merged = merged.loc[merged["item_id_a"] == "Q1"]
    by_wording = (merged["score_b"] - merged["score_a"]).groupby(merged["wording_a"]).mean()
    q1 = items.loc[items["item_id"] == "Q1"].iloc[0]
    assert q1["difference"] == pytest.approx(by_wording.mean())


def test_compare_still_refuses_a_run_holding_several_levels_against_one(tmp_path: Path) -> None:
    plan, responses = simulate_study(
        PLANTED,
        n_items=2,
        n_proxies=3,
        n_paraphrases=2,
        elicitation_levels=("first_token", "written"),
        seed=4,
    )
    both = make_run(tmp_path / "both", "model", plan, responses)
    rows = (plan["elicitation"] == "first_token").to_numpy()
    one = make_run(tmp_path / "one", "model", plan.loc[rows], responses.loc[rows])
    with pytest.raises(PlanMismatchError, match="elicitation several levels vs first_token"):
        compare([both, one])
