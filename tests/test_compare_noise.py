"""compare's claims checked against its tables, and the numeric noise floor that keeps rounding
from being called a difference between models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from test_compare_stats import make_run, synthetic_plan, synthetic_responses

REPO = Path(__file__).resolve().parents[1]


def planted_runs(root: Path, floors: tuple[float, float] | None) -> list[Path]:
    """Model b answers q1 0.8 positions (about 0.27 on the score scale) higher than model a."""
    plan = synthetic_plan()
    runs = [
        make_run(root / "a", "model-a", plan, synthetic_responses(plan, seed=1)),
        make_run(root / "b", "model-b", plan, synthetic_responses(plan, seed=2, shift={"q1": 0.8})),
    ]
    for run, floor in zip(runs, floors or (), strict=False):
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["noise_floor"] = {"n_prompts": 32, "max_abs_score": floor, "mean_abs_score": floor}
        (run / "manifest.json").write_text(json.dumps(manifest))
    return runs


def compared(root: Path, floors: tuple[float, float] | None) -> Any:
    from culture_probe.compare import compare

    return compare(planted_runs(root, floors), n_bootstrap=50)


def test_every_sentence_is_a_claim_that_agrees_with_its_table(tmp_path: Path) -> None:
    from culture_probe.analysis import assert_consistent
    from culture_probe.compare._claims import compare_claims

    comparison = compared(tmp_path, (0.001, 0.002))
    claims = compare_claims(comparison.summary, comparison.tables)
    assert_consistent(claims, comparison.tables, comparison.summary)
    assert [claim.sentence for claim in claims] == comparison.summary["headline"]
    assert [c["sentence"] for c in comparison.summary["claims"]] == comparison.summary["headline"]
    pair = comparison.tables["pairs"].iloc[0]
    first = comparison.summary["headline"][0]
    # the planted difference is claimed with its interval and test, and the floor is named
    assert f"{pair['mean_difference']:+.3f} [{pair['low']:+.3f}, {pair['high']:+.3f}]" in first
    assert "1 of 3 items differ" in first and "up to 0.003" in first
    assert claims[0].test is not None and claims[0].test.significant == (pair["p"] < 0.05)
    # the models' order across wordings, over the one item where they differ: q1
    ranking = comparison.tables["ranking"].set_index("item_id")
    assert ranking["claimed"].tolist() == [True, False, False]
    assert comparison.summary["mean_kendall_w"] == ranking.loc["q1", "kendall_w"]
    last = comparison.summary["headline"][-1]
    assert "over the 1 item where they differ" in last
    assert f"mean Kendall's W {ranking.loc['q1', 'kendall_w']:.2f}" in last


def test_models_that_do_not_differ_are_not_ranked(tmp_path: Path) -> None:
    """A null pair: two draws of one model's answers, beyond a tiny floor but not different."""
    from culture_probe.analysis import assert_consistent
    from culture_probe.compare import compare
    from culture_probe.compare._claims import compare_claims

    plan = synthetic_plan()
    runs = [
        make_run(tmp_path / name, f"model-{name}", plan, synthetic_responses(plan, seed=seed))
        for name, seed in (("a", 1), ("b", 2))
    ]
    for run in runs:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["noise_floor"] = {"n_prompts": 32, "max_abs_score": 1e-4, "mean_abs_score": 1e-5}
        (run / "manifest.json").write_text(json.dumps(manifest))
    comparison = compare(runs, n_bootstrap=50)
    ranking = comparison.tables["ranking"]
    assert not ranking["within_noise"].any()  # beyond the floor: the old rule would have ranked
    assert not ranking["claimed"].any() and ranking["kendall_w"].notna().all()
    assert comparison.summary["pairs"][0]["n_items_different"] == 0
    assert np.isnan(comparison.summary["mean_kendall_w"])
    headline = comparison.summary["headline"]
    assert "0 of 3 items differ" in headline[0]
    assert not any("Kendall's W 0" in sentence for sentence in headline)
    assert "withheld: no item's difference between the models is claimed" in headline[-1]
    claims = compare_claims(comparison.summary, comparison.tables)
    assert_consistent(claims, comparison.tables, comparison.summary)


def test_the_checker_finds_a_ranking_beside_no_difference(tmp_path: Path) -> None:
    import dataclasses

    from culture_probe.analysis import claim_problems
    from culture_probe.compare._claims import compare_claims

    comparison = compared(tmp_path, (0.001, 0.002))
    claims = compare_claims(comparison.summary, comparison.tables)
    assert claim_problems(claims, comparison.tables, comparison.summary) == []
    # the pair's sentence as if no item differed, beside the ranking over one item
    pair = claims[0]
    figures = dict(pair.figures)
    figures["n_different"] = dataclasses.replace(figures["n_different"], value=0, source=None)
    changed = [dataclasses.replace(pair, figures=figures), *claims[1:]]
    problems = claim_problems(changed, comparison.tables, comparison.summary)
    assert problems == [
        ":ranking: ranks the models (W "
        f"{claims[-1].figures['estimate'].text()}) over 1 items, but a difference between them "
        "is claimed on 0: no difference is claimed"
    ]


def test_the_pair_interval_agrees_with_its_welch_test(tmp_path: Path) -> None:
    """The pair's interval is the Welch t interval of the mean of the items' means, by hand."""
    from scipy import stats

    comparison = compared(tmp_path, None)
    a, b = comparison.runs
    merged = a.tidy.merge(b.tidy[["prompt_id", "score"]], on="prompt_id", suffixes=("_a", "_b"))
    merged = merged.loc[merged["proxy_kind"] == "culture"]
    merged["d"] = merged["score_b"] - merged["score_a"]
    groups = [g.groupby("wording")["d"].mean().to_numpy() for _, g in merged.groupby("item_id")]
    variances = np.array([g.var(ddof=1) / len(g) for g in groups])
    error = np.sqrt(variances.sum()) / len(groups)
    df = variances.sum() ** 2 / (variances**2 / np.array([len(g) - 1 for g in groups])).sum()
    estimate = np.mean([g.mean() for g in groups])
    pair = comparison.tables["pairs"].iloc[0]
    assert pair["low"] == pytest.approx(estimate - stats.t.ppf(0.975, df) * error, abs=1e-12)
    assert pair["high"] == pytest.approx(estimate + stats.t.ppf(0.975, df) * error, abs=1e-12)
    assert pair["p"] == pytest.approx(2 * stats.t.sf(abs(estimate) / error, df), rel=1e-9)
    # without a floor recorded nothing is set aside as noise, and the sentence says so
    assert not comparison.tables["item_differences"]["within_noise"].any()
    assert "no numeric noise floor recorded" in comparison.summary["headline"][0]


def test_a_difference_within_the_noise_floor_is_not_called_a_difference(tmp_path: Path) -> None:
    from culture_probe.analysis import assert_consistent
    from culture_probe.compare._claims import compare_claims

    # floors of 0.2 each: the planted 0.27 on q1 is no larger than rounding could make it
    comparison = compared(tmp_path, (0.2, 0.2))
    items = comparison.tables["item_differences"].set_index("item_id")
    assert items["within_noise"].all() and not items["significant"].any()
    assert items.loc["q1", "p_bh"] < 0.05  # the t test alone would have called it
    assert comparison.summary["pairs"][0]["n_items_different"] == 0
    headline = comparison.summary["headline"]
    assert "within numeric noise" in headline[0] and "no difference is claimed" in headline[0]
    assert "[" not in headline[0]  # no interval is printed for a difference not claimed
    # W and reversals over items within noise rank rounding: withheld
    assert comparison.tables["ranking"]["within_noise"].all()
    assert np.isnan(comparison.summary["mean_kendall_w"])
    assert "Kendall's W and the reversal probability are withheld" in headline[-1]
    assert_consistent(
        compare_claims(comparison.summary, comparison.tables),
        comparison.tables,
        comparison.summary,
    )


def test_a_test_that_cannot_speak_is_not_printed(tmp_path: Path) -> None:
    """One wording per item: no t test over wordings and no Friedman test can reach p < 0.05."""
    from culture_probe.analysis import assert_consistent
    from culture_probe.compare import compare
    from culture_probe.compare._claims import compare_claims, friedman_min_wordings

    plan = synthetic_plan()
    plan = plan.loc[plan["wording"] == "p1/imagine"].reset_index(drop=True)
    runs = [
        make_run(tmp_path / "a", "model-a", plan, synthetic_responses(plan, seed=1)),
        make_run(tmp_path / "b", "model-b", plan, synthetic_responses(plan, seed=2)),
    ]
    comparison = compare(runs, n_bootstrap=50)
    headline = comparison.summary["headline"]
    assert "untested" in headline[0] and "at least 2 wordings per item" in headline[0]
    assert "p " not in headline[0].replace("prompts", "")
    assert "needs 4" in headline[-1] and "Kendall" not in headline[-1]
    assert friedman_min_wordings(2) == 4 and friedman_min_wordings(3) == 3
    assert_consistent(
        compare_claims(comparison.summary, comparison.tables),
        comparison.tables,
        comparison.summary,
    )


def test_the_noise_floor_is_the_largest_change_of_a_rescored_prompt() -> None:
    """A rescoring that moves each prompt's mass by a known amount: the floor, by hand."""
    from culture_probe.noise_floor import measure_noise_floor

    plan = synthetic_plan(("q1",)).head(40)
    responses = synthetic_responses(plan, seed=1)
    moves = {pid: 0.001 * (i % 7) for i, pid in enumerate(plan["prompt_id"])}
    seen: list[str] = []

    def rescore(rows: pd.DataFrame) -> pd.DataFrame:
        seen.extend(rows["prompt_id"])
        first = responses.set_index("prompt_id").loc[rows["prompt_id"], "probs"]
        moved = [np.asarray(p) + moves[pid] * np.array([-1, 0, 0, 1]) for pid, p in first.items()]
        return pd.DataFrame({"prompt_id": rows["prompt_id"].to_numpy(), "probs": moved})

    floor = measure_noise_floor(plan, responses, rescore, size=32)
    assert floor["n_prompts"] == 32 == len(seen) == len(set(seen))
    assert seen == sorted(seen, key=list(plan["prompt_id"]).index, reverse=True)  # reversed order
    sampled = [moves[pid] for pid in seen]
    # moving mass m from option 0 to option 3 changes the score by 3 m / 3 = m
    assert floor["max_abs_prob"] == pytest.approx(max(sampled), abs=1e-15)
    assert floor["max_abs_score"] == pytest.approx(max(sampled), abs=1e-15)
    assert floor["mean_abs_score"] == pytest.approx(np.mean(sampled), abs=1e-15)


def _bfloat16_run(out: Path, batch_size: int) -> Path:
    """The 96 served prompts of the values study, scored by the embedded model in bfloat16."""
    from culture_probe.backends import create_backend
    from culture_probe.runner import PlanFilter, RunSettings, run_study
    from fault_server import SERVED_ITEMS, SERVED_PROXIES

    backend = create_backend("hf", model="embedded", dtype="bfloat16", batch_size=batch_size)
    try:
        settings = RunSettings(
            study=REPO / "taxonomy" / "values.yaml",
            dtype="bfloat16",
            out=out,
            filters=PlanFilter(items=SERVED_ITEMS, proxies=SERVED_PROXIES),
        )
        run_study(settings, backend=backend, analyse=False)
    finally:
        backend.close()
    return out


def _assert_no_difference_claimed(runs: list[Path]) -> None:
    from culture_probe.compare import compare

    comparison = compare(runs, n_bootstrap=50)
    items = comparison.tables["item_differences"]
    assert not items["significant"].any() and items["within_noise"].all()
    assert comparison.summary["pairs"][0]["n_items_different"] == 0
    headline = comparison.summary["headline"]
    assert "no difference is claimed" in headline[0]
    assert not any("mean Kendall's W" in sentence for sentence in headline)


@pytest.fixture(scope="module")
def bfloat16_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served prompts scored in bfloat16, 3 per call, once for the module."""
    return _bfloat16_run(tmp_path_factory.mktemp("bfloat16"), batch_size=3)


@pytest.mark.slow
def test_float32_and_bfloat16_runs_of_one_model_show_no_difference(
    embedded_values_run: Path, bfloat16_run: Path
) -> None:
    """The embedded model at float32 (the session's run) and at bfloat16 in batches of 3, on the
    same 96 prompts: rounding and batch composition apart, the same model."""
    runs = [embedded_values_run, bfloat16_run]
    floors = [json.loads((run / "manifest.json").read_text())["noise_floor"] for run in runs]
    assert [floor["n_prompts"] for floor in floors] == [32, 32]
    assert floors[0]["max_abs_score"] < 1e-4 < floors[1]["max_abs_score"]
    _assert_no_difference_claimed(runs)


@pytest.mark.slow
def test_two_bfloat16_runs_of_one_model_show_no_difference(
    tmp_path: Path, bfloat16_run: Path
) -> None:
    """Two bfloat16 runs of the embedded model, one prompt per call and 3 per call: the engine
    groups prompts into the same prefix trees either way, so the scores are bit-identical, and
    the comparison claims no difference and reports no ranking change. (Rescoring in another
    grouping does move bfloat16 scores: each run's recorded noise floor says by how much.)"""
    runs = [_bfloat16_run(tmp_path / "batch-1", batch_size=1), bfloat16_run]
    probs = [
        pd.read_parquet(run / "responses.parquet").set_index("prompt_id")["probs"] for run in runs
    ]
    for first, second in zip(probs[0], probs[1].loc[probs[0].index], strict=True):
        np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    floors = [json.loads((run / "manifest.json").read_text())["noise_floor"] for run in runs]
    assert all(floor["max_abs_score"] > 1e-4 for floor in floors)
    _assert_no_difference_claimed(runs)
