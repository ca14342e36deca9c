"""The comparison's statistics on synthetic runs with known effects, each checked against an
independent computation (scipy, statsmodels, pingouin or a hand-worked example)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

OPTIONS = ["Very important", "Rather important", "Not very important", "Not at all important"]
ORDERS = {"canonical": [0, 1, 2, 3], "reversed": [3, 2, 1, 0]}
ITEMS = ("q1", "q2", "q3")
PROXIES = (("US", "culture"), ("JP", "culture"), ("DE", "culture"), ("green", "placebo"))
PARAPHRASES = ("p1", "p2", "p3", "p4")
FRAMINGS = ("imagine", "you_are")


def synthetic_plan(items: tuple[str, ...] = ITEMS) -> pd.DataFrame:
    """A plan of items x proxies x 4 paraphrases x 2 framings x 2 orders (the plan's columns)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        for proxy, kind in PROXIES:
            for paraphrase in PARAPHRASES:
                for framing in FRAMINGS:
                    for order, shown in ORDERS.items():
                        rows.append(
                            {
                                "prompt_id": f"{item}-{proxy}-{paraphrase}-{framing}-{order}",
                                "row": len(rows),
                                "study": "values",
                                "item_id": item,
                                "wvs_id": "Q1",
                                "topic": "Important in life",
                                "scale": "ordinal",
                                "n_options": 4,
                                "axis": "region" if kind == "culture" else "placebo",
                                "proxy": proxy,
                                "proxy_name": proxy,
                                "proxy_kind": kind,
                                "paraphrase": paraphrase,
                                "framing": framing,
                                "wording": f"{paraphrase}/{framing}",
                                "order": order,
                                "display_to_canonical": shown,
                                "option_labels": list("ABCD"),
                                "options": OPTIONS,
                                "seed": 0,
                                "language": "en",
                                "system": f"Imagine you are a person from {proxy}.",
                                "user": f"{paraphrase}: how important is {item}?",
                                "text_hash": f"{len(rows):016x}",
                            }
                        )
    return pd.DataFrame(rows)


def distributions(locations: np.ndarray) -> np.ndarray:
    """A distribution over 4 options peaked at each location (0..3), rows summing to 1."""
    positions = np.arange(4)
    weights = np.exp(-((positions[None, :] - locations[:, None]) ** 2))
    return weights / weights.sum(axis=1, keepdims=True)


def synthetic_responses(
    plan: pd.DataFrame,
    seed: int,
    shift: dict[str, float] | None = None,
    wording_noise: float = 0.3,
    interaction: float = 0.0,
) -> pd.DataFrame:
    """Responses located at an item x proxy level plus a wording effect (both shared by every
    model), a model ``shift`` per item, an optional model x wording ``interaction`` (this model's
    own wording effects) and a little prompt noise."""
    base = np.random.default_rng(0)  # what every model shares: items, proxies, wordings
    levels = {
        key: base.uniform(0.5, 2.5) for key in plan[["item_id", "proxy"]].itertuples(index=False)
    }
    wording_effect = {w: base.normal(0, wording_noise) for w in sorted(plan["wording"].unique())}
    rng = np.random.default_rng(seed)  # what is this model's own
    own_wording = {
        (i, w): rng.normal(0, interaction)
        for i in plan["item_id"].unique()
        for w in plan["wording"].unique()
    }
    location = np.array(
        [
            levels[(row.item_id, row.proxy)]
            + wording_effect[row.wording]
            + (shift or {}).get(row.item_id, 0.0)
            + own_wording[(row.item_id, row.wording)]
            + rng.normal(0, 0.05)
            for row in plan.itertuples()
        ]
    )
    probs = distributions(np.clip(location, -1, 4))
    return pd.DataFrame(
        {
            "prompt_id": plan["prompt_id"],
            "probs": list(probs),
            "option_mass": 0.9,
            "answer": probs.argmax(axis=1),
            "outcome": "answered",
            "generated": "",
        }
    )


def make_run(
    path: Path,
    model: str,
    plan: pd.DataFrame,
    responses: pd.DataFrame,
    *,
    study_hash: str = "s" * 64,
    template_hash: str = "t" * 64,
    reference: pd.DataFrame | None = None,
) -> Path:
    """A run directory as ``culture-probe run`` writes it (manifest, plan, responses)."""
    path.mkdir(parents=True)
    manifest = {
        "study": "values",
        "study_hash": study_hash,
        "files": {"/x/probes/templates/multiple_choice.en.j2": template_hash},
        "backend": {"backend": "hf", "model": model, "model_hash": "m" * 64, "dtype": "float32"},
        "run_key": model,
        "plan_hash": "p",
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    plan.to_parquet(path / "plan.parquet")
    responses.to_parquet(path / "responses.parquet")
    if reference is not None:
        reference.to_parquet(path / "reference.parquet")
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Model b answers q1 0.8 positions higher than model a; q2 and q3 are alike."""
    root = tmp_path_factory.mktemp("planted")
    plan = synthetic_plan()
    a = make_run(root / "a", "model-a", plan, synthetic_responses(plan, seed=1))
    b = make_run(root / "b", "model-b", plan, synthetic_responses(plan, seed=2, shift={"q1": 0.8}))
    return a, b


def wording_differences(comparison: Any, item: str) -> np.ndarray:
    """Per-wording mean of score_b - score_a over the item's culture prompts, by hand."""
    a, b = comparison.runs
    merged = a.tidy.merge(b.tidy[["prompt_id", "score"]], on="prompt_id", suffixes=("_a", "_b"))
    rows = merged.loc[(merged["item_id"] == item) & (merged["proxy_kind"] == "culture")]
    return (rows["score_b"] - rows["score_a"]).groupby(rows["wording"]).mean().to_numpy()


@pytest.fixture(scope="module")
def comparison(planted: tuple[Path, Path]) -> Any:
    from culture_probe.compare import compare

    return compare(list(planted), n_bootstrap=200)


def test_the_planted_item_differs_and_the_others_do_not(comparison: Any) -> None:
    items = comparison.tables["item_differences"].set_index("item_id")
    assert items.loc["q1", "significant"] and items.loc["q1", "difference"] > 0.15
    assert items.loc["q1", "low"] > 0
    assert not items.loc["q2", "significant"] and not items.loc["q3", "significant"]
    for item in ("q2", "q3"):
        assert items.loc[item, "low"] < 0 < items.loc[item, "high"]
    pair = comparison.summary["pairs"][0]
    assert (pair["n_items_different"], pair["n_items_b_higher"]) == (1, 1)


def test_item_differences_match_scipy_and_statsmodels(comparison: Any) -> None:
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    items = comparison.tables["item_differences"].set_index("item_id")
    pvalues = []
    for item in ITEMS:
        per_wording = wording_differences(comparison, item)
        assert items.loc[item, "difference"] == pytest.approx(per_wording.mean(), abs=1e-12)
        test = stats.ttest_1samp(per_wording, 0.0)
        assert items.loc[item, "t"] == pytest.approx(test.statistic, rel=1e-9)
        assert items.loc[item, "p"] == pytest.approx(test.pvalue, rel=1e-9)
        pvalues.append(test.pvalue)
        # the interval is the t interval of the same wording means, by hand with t.ppf
        half = stats.t.ppf(0.975, len(per_wording) - 1) * stats.sem(per_wording)
        assert items.loc[item, "low"] == pytest.approx(per_wording.mean() - half, abs=1e-12)
        assert items.loc[item, "high"] == pytest.approx(per_wording.mean() + half, abs=1e-12)
    adjusted = multipletests(pvalues, method="fdr_bh")[1]
    np.testing.assert_allclose(items.loc[list(ITEMS), "p_bh"], adjusted, rtol=1e-9)


def test_the_interval_is_the_paired_t_interval_and_agrees_with_its_test(comparison: Any) -> None:
    """Per item, scipy's paired t test of the two models' per-wording means gives the printed t,
    p and (through its confidence_interval) the printed interval; the interval excludes 0 exactly
    when p < 0.05."""
    from scipy import stats

    a, b = comparison.runs
    items = comparison.tables["item_differences"].set_index("item_id")
    for item in ITEMS:
        means = [
            run.tidy.loc[(run.tidy["item_id"] == item) & (run.tidy["proxy_kind"] == "culture")]
            .groupby("wording")["score"]
            .mean()
            for run in (a, b)
        ]
        test = stats.ttest_rel(means[1], means[0])
        reference = test.confidence_interval(0.95)
        assert items.loc[item, "t"] == pytest.approx(test.statistic, rel=1e-9)
        assert items.loc[item, "p"] == pytest.approx(test.pvalue, rel=1e-9)
        assert items.loc[item, "low"] == pytest.approx(reference.low, abs=1e-12)
        assert items.loc[item, "high"] == pytest.approx(reference.high, abs=1e-12)
        excludes_zero = items.loc[item, "low"] > 0 or items.loc[item, "high"] < 0
        assert excludes_zero == (items.loc[item, "p"] < 0.05)


def test_proxy_differences_are_paired_per_proxy_and_adjusted_across_rows(comparison: Any) -> None:
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    proxies = comparison.tables["proxy_differences"]
    assert len(proxies) == len(ITEMS) * len(PROXIES)
    a, b = comparison.runs
    merged = a.tidy.merge(b.tidy[["prompt_id", "score"]], on="prompt_id", suffixes=("_a", "_b"))
    merged["d"] = merged["score_b"] - merged["score_a"]
    pvalues = []
    for row in proxies.itertuples():
        cell = merged.loc[(merged["item_id"] == row.item_id) & (merged["proxy"] == row.proxy)]
        per_wording = cell.groupby("wording")["d"].mean().to_numpy()
        assert row.difference == pytest.approx(per_wording.mean(), abs=1e-12)
        pvalues.append(stats.ttest_1samp(per_wording, 0.0).pvalue)
    np.testing.assert_allclose(proxies["p"], pvalues, rtol=1e-9)
    np.testing.assert_allclose(
        proxies["p_bh"], multipletests(pvalues, method="fdr_bh")[1], rtol=1e-9
    )
    # the placebo persona is a prompt like the others: the planted shift shows there too
    q1 = proxies.loc[proxies["item_id"] == "q1"]
    assert q1["significant"].all() and set(q1["proxy"]) == {"US", "JP", "DE", "green"}


def test_a_smallest_difference_that_matters_is_a_minimum_effect_test(comparison: Any) -> None:
    from scipy import stats

    from culture_probe.compare._paired import wording_test

    per_wording = wording_differences(comparison, "q1")  # mean about +0.24
    for margin in (0.1, 0.2, 0.3):
        one_sided = stats.ttest_1samp(per_wording, margin, alternative="greater").pvalue
        assert wording_test(per_wording, margin)[1] == pytest.approx(min(1.0, 2 * one_sided))
        negative = stats.ttest_1samp(-per_wording, -margin, alternative="less").pvalue
        assert wording_test(-per_wording, margin)[1] == pytest.approx(min(1.0, 2 * negative))
    assert wording_test(per_wording, 0.0)[1] == pytest.approx(
        stats.ttest_1samp(per_wording, 0.0).pvalue
    )


def test_the_model_test_is_the_two_way_anova_against_the_interaction(comparison: Any) -> None:
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    a, b = comparison.runs
    interaction = comparison.tables["interaction"].set_index("item_id")
    for item in ITEMS:
        cells = []
        for run in (a, b):
            rows = run.tidy.loc[
                (run.tidy["item_id"] == item) & (run.tidy["proxy_kind"] == "culture")
            ]
            means = rows.groupby("wording")["score"].mean().rename("score").reset_index()
            cells.append(means.assign(model=run.label))
        # model x wording on cell means, one per cell: the residual is the interaction
        table = anova_lm(smf.ols("score ~ C(model) + C(wording)", pd.concat(cells)).fit())
        expected = table.loc["C(model)"]
        assert interaction.loc[item, "f_model"] == pytest.approx(expected["F"], rel=1e-8)
        assert interaction.loc[item, "p_model"] == pytest.approx(expected["PR(>F)"], rel=1e-6)


def test_the_interaction_test_matches_a_one_way_anova_of_the_paired_differences(
    tmp_path: Path,
) -> None:
    import statsmodels.formula.api as smf
    from scipy import stats
    from statsmodels.stats.anova import anova_lm

    from culture_probe.compare import compare

    plan = synthetic_plan()
    a = make_run(tmp_path / "a", "model-a", plan, synthetic_responses(plan, seed=1))
    b = make_run(
        tmp_path / "b", "model-b", plan, synthetic_responses(plan, seed=2, interaction=0.4)
    )
    result = compare([a, b], n_bootstrap=200)
    interaction = result.tables["interaction"].set_index("item_id")
    run_a, run_b = result.runs
    merged = run_a.tidy.merge(run_b.tidy[["prompt_id", "score"]], on="prompt_id")
    merged["d"] = merged["score_y"] - merged["score_x"]
    pvalues = []
    for item in ITEMS:
        rows = merged.loc[(merged["item_id"] == item) & (merged["proxy_kind"] == "culture")]
        groups = [group["d"].to_numpy() for _, group in rows.groupby("wording")]
        expected = stats.f_oneway(*groups)
        assert interaction.loc[item, "f_interaction"] == pytest.approx(expected.statistic, rel=1e-8)
        assert interaction.loc[item, "p_interaction"] == pytest.approx(expected.pvalue, rel=1e-6)
        table = anova_lm(smf.ols("d ~ C(wording)", rows).fit())
        assert 2 * interaction.loc[item, "ss_interaction"] == pytest.approx(
            table.loc["C(wording)", "sum_sq"], rel=1e-8
        )
        pvalues.append(expected.pvalue)
    # each item's differences move with the wording: found on every item after BH
    assert (interaction["p_interaction_bh"] < 0.05).all()
    assert result.summary["pairs"][0]["n_items_interaction"] == 3
    np.testing.assert_allclose(
        interaction.loc[list(ITEMS), "p_interaction_bh"],
        __import__("statsmodels.stats.multitest").stats.multitest.multipletests(
            pvalues, method="fdr_bh"
        )[1],
        rtol=1e-9,
    )


def test_the_overall_tests_match_statsmodels(comparison: Any) -> None:
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    a, b = comparison.runs
    merged = a.tidy.merge(b.tidy[["prompt_id", "score"]], on="prompt_id")
    merged = merged.loc[merged["proxy_kind"] == "culture"].assign(
        d=lambda frame: frame["score_y"] - frame["score_x"]
    )
    overall = comparison.summary["pairs"][0]["overall"]
    wording_means = merged.groupby(["item_id", "wording"])["d"].mean().rename("d").reset_index()
    fit = smf.ols("d ~ 0 + C(item_id)", wording_means).fit()
    every_item_zero = fit.f_test(np.eye(len(ITEMS)))
    assert overall["f_model"] == pytest.approx(float(every_item_zero.fvalue), rel=1e-8)
    assert overall["p_model"] == pytest.approx(float(every_item_zero.pvalue), rel=1e-6, abs=1e-300)
    table = anova_lm(smf.ols("d ~ C(item_id) + C(item_id):C(wording)", merged).fit())
    nested = table.loc["C(item_id):C(wording)"]
    assert overall["f_interaction"] == pytest.approx(nested["F"], rel=1e-8)
    assert overall["p_interaction"] == pytest.approx(nested["PR(>F)"], rel=1e-6)


def test_kendalls_w_matches_pingouin_for_three_models(tmp_path: Path) -> None:
    import pingouin

    from culture_probe.compare import compare

    plan = synthetic_plan()
    runs = [
        make_run(
            tmp_path / name,
            name,
            plan,
            synthetic_responses(plan, seed=seed, shift={"q1": shift}, interaction=0.05),
        )
        for name, seed, shift in (("a", 1, 0.0), ("b", 2, 0.5), ("c", 3, 1.0))
    ]
    result = compare(runs, n_bootstrap=200)
    ranking = result.tables["ranking"].set_index("item_id")
    for item in ITEMS:
        long = pd.concat(
            [
                run.tidy.loc[(run.tidy["item_id"] == item) & (run.tidy["proxy_kind"] == "culture")]
                .groupby("wording")["score"]
                .mean()
                .reset_index()
                .assign(model=run.label)
                for run in result.runs
            ]
        )
        expected = pingouin.friedman(long, dv="score", within="model", subject="wording")
        assert ranking.loc[item, "kendall_w"] == pytest.approx(expected["W"].iat[0], rel=1e-9)
        assert ranking.loc[item, "friedman_p"] == pytest.approx(expected["p_unc"].iat[0], rel=1e-6)
    # q1 separates the models by 0.5 positions each: every wording orders them a < b < c
    assert ranking.loc["q1", "kendall_w"] == pytest.approx(1.0)
    assert ranking.loc["q1", "reversal_probability"] == 0.0
    assert len(result.tables["pair_reversals"]) == 3 * 3  # three pairs x three items


def test_the_reversal_probability_is_the_share_of_wordings_against_the_overall_sign() -> None:
    from culture_probe.compare._ranking import pair_reversals

    # hand-worked: differences b - a over four wordings are +0.2, +0.1, -0.05, +0.3; overall +0.1375,
    # so one wording in four ranks the pair the other way round
    index = pd.MultiIndex.from_product(
        [["q1"], ["w1", "w2", "w3", "w4"]], names=["item_id", "wording"]
    )
    means = pd.DataFrame({"a": [0.5, 0.5, 0.5, 0.5], "b": [0.7, 0.6, 0.45, 0.8]}, index=index)
    runs = [type("R", (), {"label": "a"})(), type("R", (), {"label": "b"})()]
    table = pair_reversals(runs, means)  # type: ignore[arg-type]
    assert table["reversals"].tolist() == [1]
    assert table["reversal_probability"].tolist() == [0.25]
    assert table["difference"].iat[0] == pytest.approx(0.1375)


def human_reference(items: tuple[str, ...] = ("q1", "q2")) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for item in items:
        for proxy in ("US", "JP", "DE"):
            shares = rng.dirichlet(np.ones(4))
            rows += [
                {"item_id": item, "proxy": proxy, "option": k, "share": float(s)}
                for k, s in enumerate(shares)
            ]
    return pd.DataFrame(rows)


def test_the_model_that_answers_like_the_people_is_closer_to_them(tmp_path: Path) -> None:
    from scipy.spatial.distance import jensenshannon

    from culture_probe.compare import compare

    plan = synthetic_plan(("q1", "q2"))
    reference = human_reference()
    human = reference.pivot_table(index=["item_id", "proxy"], columns="option", values="share")
    answers_like_people = synthetic_responses(plan, seed=2)
    for index, row in plan.iterrows():
        if row["proxy_kind"] == "culture":
            answers_like_people.at[index, "probs"] = human.loc[
                (row["item_id"], row["proxy"])
            ].to_numpy()
    a = make_run(
        tmp_path / "a", "model-a", plan, synthetic_responses(plan, seed=1), reference=reference
    )
    b = make_run(tmp_path / "b", "model-b", plan, answers_like_people, reference=reference)
    result = compare([a, b], n_bootstrap=200)
    alignment = result.tables["alignment"].set_index(["model", "item_id", "proxy"])
    assert alignment.xs("model-b (hf, float32)")["avg_p"].to_numpy() == pytest.approx(1.0)
    # model a's AvgP by hand: 1 - JS distance (base 2) of the answers pooled over orders, per wording
    run_a = result.runs[0]
    rows = run_a.tidy.loc[(run_a.tidy["item_id"] == "q2") & (run_a.tidy["proxy"] == "JP")]
    pooled = np.stack(rows["probs"].to_numpy()).reshape(-1, 4)
    per_wording = [
        1
        - jensenshannon(
            pooled[group.index - rows.index[0]].mean(axis=0), human.loc[("q2", "JP")], base=2
        )
        for _, group in rows.groupby("wording")
    ]
    values = alignment.loc[("model-a (hf, float32)", "q2", "JP")]
    assert values["avg_p"] == pytest.approx(np.mean(per_wording), rel=1e-9)
    assert values["max_p"] == pytest.approx(np.max(per_wording), rel=1e-9)
    assert values["min_p"] == pytest.approx(np.min(per_wording), rel=1e-9)
    max_p, avg_p = np.max(per_wording), np.mean(per_wording)
    assert values["cps"] == pytest.approx(max_p * (1 - (max_p - avg_p)), rel=1e-9)
    by_country = result.tables["alignment_by_country"].set_index("proxy")
    assert set(by_country["closer"]) == {"model-b (hf, float32)"}
    assert (by_country["low"] > 0).all()
    assert "3 of 3 country comparisons are decided" in " ".join(result.summary["headline"])
