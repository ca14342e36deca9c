"""The tidy responses table, bad input, the run-directory entry point and the terminal summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from culture_probe.analysis import analyze, format_terminal_summary, tidy_responses
from culture_probe.analysis.cli import analyze_run
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.errors import InputError


@pytest.fixture(scope="module")
def small_study() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_study(
        PlantedEffects(culture=0.1, wording=0.04, noise=0.02),
        n_items=3,
        n_proxies=4,
        n_paraphrases=3,
        n_orders=2,
        baseline=True,
        seed=9,
    )


def test_tidy_keeps_plan_order_and_scores_expected_position(
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    shuffled = responses.sample(frac=1.0, random_state=0)
    tidy = tidy_responses(plan, shuffled.iloc[:-5])
    kept = plan.loc[plan["prompt_id"].isin(shuffled["prompt_id"].iloc[:-5]), "prompt_id"]
    assert list(tidy["prompt_id"]) == list(kept)
    probs = np.stack(tidy["probs"].to_numpy())
    expected = probs @ (np.arange(4) / 3)
    np.testing.assert_allclose(tidy["score"], expected)


def test_missing_column_names_it_with_a_suggestion(
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    with pytest.raises(InputError) as caught:
        tidy_responses(plan.rename(columns={"wording": "wordings"}), responses)
    assert caught.value.key == "wording"
    assert caught.value.path == "plan.parquet"
    assert "did you mean 'wordings'" in str(caught.value)


def test_duplicate_and_unknown_prompt_ids_are_rejected(
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    with pytest.raises(InputError, match="more than once") as caught:
        tidy_responses(plan, pd.concat([responses, responses.iloc[[3]]]))
    assert caught.value.path == "responses.parquet" and caught.value.key == "prompt_id"
    stray = responses.copy()
    stray.loc[7, "prompt_id"] = "ffffffffffffffff"
    with pytest.raises(InputError, match="not in the plan") as caught:
        tidy_responses(plan, stray)
    assert caught.value.line == 7


def test_probability_vector_of_wrong_length_is_rejected(
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    bad = responses.copy()
    bad["probs"] = bad["probs"].astype(object)
    bad.at[2, "probs"] = np.array([0.5, 0.5])
    with pytest.raises(InputError, match="wrong length") as caught:
        tidy_responses(plan, bad)
    assert caught.value.key == "probs" and plan["prompt_id"].iloc[2] in str(caught.value)


def test_refusals_have_no_score_and_count_as_refusals(
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    refused = responses.copy()
    refused["probs"] = refused["probs"].astype(object)
    refused.at[0, "probs"] = np.array([])
    refused.loc[0, "outcome"] = "refused"
    tidy = tidy_responses(plan, refused)
    assert np.isnan(tidy["score"].iloc[0])
    result = analyze(tidy, n_bootstrap=20, n_permutations=9)
    cells = result.tables["cell_stats"]
    first = tidy.iloc[0]
    row = cells.loc[(cells["item_id"] == first["item_id"]) & (cells["proxy"] == first["proxy"])]
    assert row["refusal_rate"].iloc[0] == pytest.approx(1 / row["n_rows"].iloc[0])
    # The refusal leaves one cell short: balancing drops one replicate of the item.
    assert result.summary["rows_dropped_to_balance"] > 0


def test_alignment_against_scipy_distances(small_study: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    plan, responses = small_study
    tidy = tidy_responses(plan, responses)
    rng = np.random.default_rng(1)
    proxies = sorted(tidy.loc[tidy["proxy_kind"] == "culture", "proxy"].unique())
    records = []
    for item in ("Q0", "Q1", "Q2"):
        for proxy in proxies:
            share = rng.dirichlet(np.ones(4))
            records += [
                {"item_id": item, "proxy": proxy, "option": k, "share": share[k]} for k in range(4)
            ]
    reference = pd.DataFrame(records)
    result = analyze(tidy, reference, n_bootstrap=20, n_permutations=99)
    alignment = result.tables["alignment"]
    row = alignment.iloc[5]
    cell = tidy.loc[
        (tidy["item_id"] == row["item_id"])
        & (tidy["proxy"] == row["proxy"])
        & (tidy["wording"] == row["wording"])
    ]
    model = np.stack(cell["probs"].to_numpy()).mean(axis=0)
    human = reference.loc[
        (reference["item_id"] == row["item_id"]) & (reference["proxy"] == row["proxy"])
    ].sort_values("option")["share"]
    assert row["sim_jsd"] == pytest.approx(1 - jensenshannon(model, human, base=2), abs=1e-9)
    positions = np.arange(4)
    w1 = wasserstein_distance(positions, positions, model, human.to_numpy())
    assert row["representativeness"] == pytest.approx(1 - w1 / 3)
    summary = result.tables["alignment_summary"]
    first = summary.iloc[0]
    sims = alignment.loc[
        (alignment["item_id"] == first["item_id"]) & (alignment["proxy"] == first["proxy"]),
        "sim_jsd",
    ]
    assert first["max_p"] == pytest.approx(sims.max())
    assert first["cps"] == pytest.approx(sims.max() * (1 - (sims.max() - sims.mean())))
    assert first["steering_effect"] == pytest.approx(first["avg_p"] - first["baseline_sim"])
    assert 0 < first["specificity_p"] <= 1 and "nsr" in result.tables["item_stats"].columns


def test_reference_shares_must_sum_to_one(small_study: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    plan, responses = small_study
    reference = pd.DataFrame(
        {"item_id": ["Q0", "Q0"], "proxy": ["C00", "C00"], "option": [0, 1], "share": [0.5, 0.3]}
    )
    with pytest.raises(InputError, match=r"sum to 0\.8") as caught:
        analyze(tidy_responses(plan, responses), reference, n_bootstrap=10, n_permutations=9)
    assert caught.value.path == "reference.parquet" and caught.value.key == "share"


def test_analyze_run_writes_every_table_and_the_summary(
    tmp_path: Path,
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    plan.to_parquet(tmp_path / "plan.parquet")
    responses.to_parquet(tmp_path / "responses.parquet")
    result = analyze_run(tmp_path, n_bootstrap=30, n_permutations=19)
    written = sorted(p.name for p in (tmp_path / "stats").iterdir())
    assert written == sorted(f"{name}.parquet" for name in result.tables)
    assert {
        "item_stats",
        "cell_stats",
        "wording_cells",
        "information",
        "position_bias",
        "controls",
    } <= set(result.tables)
    reread = pd.read_parquet(tmp_path / "stats" / "item_stats.parquet")
    assert list(reread["verdict"]) == list(result.tables["item_stats"]["verdict"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["headline"] == result.headline
    assert not list(tmp_path.rglob("*.tmp"))


def test_analyze_run_without_responses_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing plan\.parquet") as caught:
        analyze_run(tmp_path)
    assert caught.value.path == str(tmp_path) and caught.value.key == "plan.parquet"
    assert not (tmp_path / "stats").exists()


def test_terminal_summary_renders_shares_and_verdicts(
    small_study: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    plan, responses = small_study
    result = analyze(tidy_responses(plan, responses), n_bootstrap=30, n_permutations=19)
    console = Console(width=160, record=True)
    console.print(format_terminal_summary(result))
    text = console.export_text()
    assert "region" in text and "culture-dominant" in text
    assert result.headline[0][:40] in text.replace("\n", " ")


def test_design_without_two_proxies_and_two_wordings_still_describes_the_cells() -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.1), n_items=2, n_proxies=1, n_paraphrases=1, baseline=True, seed=1
    )
    result = analyze(tidy_responses(plan, responses), n_bootstrap=10, n_permutations=9)
    assert result.tables["item_stats"].empty and "verdict" in result.tables["item_stats"]
    assert len(result.tables["cell_stats"]) == 4  # 2 items x (1 culture proxy + baseline)
    assert "could not be separated" in " ".join(result.headline)
