"""Claims: every printed sentence agrees with its table, with the other claims, and with its test."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from scipy import stats

from culture_probe.analysis import (
    SummaryCell,
    analyze,
    format_terminal_summary,
    summary_cells,
    tidy_responses,
)
from culture_probe.analysis._claims import Claim, Figure
from culture_probe.analysis._consistency import (
    ClaimsInconsistent,
    assert_consistent,
    cell_problems,
    claim_problems,
)
from culture_probe.analysis._headline import MIN_ITEMS_SIGNED_RANK
from culture_probe.analysis._items import CONFIDENCE
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study
from culture_probe.formatting import format_interval, format_percent, format_ratio

PLANTED = {
    "null": PlantedEffects(noise=0.05),
    "culture-only": PlantedEffects(culture=0.2, noise=0.02),
    "order-only": PlantedEffects(position_bias=0.6, noise=0.01),
    "interaction": PlantedEffects(culture=0.1, interaction=0.1, noise=0.02),
}


@functools.cache
def _run(effects: PlantedEffects, *, n_items: int = 4, scale: str = "ordinal", seed: int = 1):  # type: ignore[no-untyped-def]
    """A planted run and its analysis (cached: the tests only read them)."""
    plan, responses = simulate_study(
        effects,
        n_items=n_items,
        n_proxies=4,
        n_paraphrases=3,
        n_placebos=2,
        baseline=True,
        scale=scale,
        seed=seed,
    )
    tidy = tidy_responses(plan, responses)
    return tidy, analyze(tidy, n_bootstrap=100, n_permutations=19)


@pytest.fixture(scope="module", params=sorted(PLANTED))
def planted(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return request.param, *_run(PLANTED[request.param])


def _claim(result, suffix: str) -> Claim:  # type: ignore[no-untyped-def]
    found = [c for c in result.claims if c.key.endswith(suffix)]
    assert len(found) == 1, [c.key for c in result.claims]
    return found[0]


# --- the percentage formatter ------------------------------------------------------------------


def test_small_percentages_keep_two_significant_digits() -> None:
    assert format_percent(0.41) == "41%"
    assert format_percent(0.000083) == "0.0083%"
    assert format_percent(0.0001) == "0.010%"
    assert format_percent(0.004) == "0.40%"
    assert format_percent(0.0) == "0%"
    assert format_interval(0.00008, 0.00005, 0.0001, "{:.0%}") == "0.0080% [0.0050%, 0.010%]"


# --- planted runs: consistent claims, and the right ones ---------------------------------------


def test_planted_runs_have_consistent_claims(planted) -> None:  # type: ignore[no-untyped-def]
    _, _, result = planted
    cells = summary_cells(result.summary)
    assert len(cells) == 6  # culture, wording, w×c, order, CWI, W of the one axis
    assert_consistent(result.claims, result.tables, result.summary, cells)
    assert result.summary["claims"] == [c.to_json() for c in result.claims]
    assert result.headline == [
        s for s in result.headline if s in [c.sentence for c in result.claims]
    ]


def test_every_claim_says_its_measure_and_unit(planted) -> None:  # type: ignore[no-untyped-def]
    _, _, result = planted
    for claim in result.claims:
        assert claim.measure and claim.unit and claim.quantity


def test_reversal_sentence_moves_the_mean_the_way_the_answers_move() -> None:
    tidy, result = _run(PLANTED["order-only"], n_items=8)
    culture = tidy.loc[tidy["proxy_kind"] == "culture"]
    means = culture.groupby(["item_id", "order"])["score"].mean().unstack()
    before, after = means["canonical"].mean(), means["reversed"].mean()
    assert after > before + 0.3  # the first option shown is pulled up: reversing raises the mean
    claim = _claim(result, "region:reversal")
    assert claim.direction == "up"
    assert f"from {before:.2f} to {after:.2f} ({after - before:+.2f}" in claim.sentence
    shifts = (means["canonical"] - means["reversed"]).to_numpy()
    p = stats.wilcoxon(shifts).pvalue
    assert claim.test is not None and claim.test.p == pytest.approx(p)
    assert f"Wilcoxon signed-rank over 8 items, p {claim.figures['p'].text()}" in claim.sentence


def test_a_test_that_cannot_reach_significance_is_not_printed() -> None:
    _, result = _run(PLANTED["order-only"], n_items=4)
    for suffix in ("region:reversal", "region:placebo"):
        claim = _claim(result, suffix)
        assert claim.test is not None and not claim.test.can_speak
        assert "p = " not in claim.sentence and "p < 0.001" not in claim.sentence
        assert f"at least {MIN_ITEMS_SIGNED_RANK}" in claim.sentence
    # the exact two-sided signed-rank test cannot go below 2 / 2^n: 0.0625 at 5, 0.031 at 6
    assert stats.wilcoxon([1, 2, 3, 4, 5]).pvalue > 0.05 > stats.wilcoxon([1, 2, 3, 4, 5, 6]).pvalue


def test_tiny_but_consistent_culture_is_said_with_its_digits() -> None:
    # the first option shown takes 95% of the mass: culture moves the rest consistently
    _tidy, result = _run(PlantedEffects(culture=0.2, position_bias=0.95), n_items=6)
    claim = _claim(result, "region:culture_share")
    share = result.summary["axes"]["region"]["aggregates"]["mean_culture_share"]["estimate"]
    assert 0 < share < 0.01
    assert claim.test is not None and claim.test.significant
    assert f"culture explains {format_percent(share)} [" in claim.sentence
    assert "tiny, but consistent across wordings (Kendall's W = " in claim.sentence
    assert "culture explains 0% " not in claim.sentence


def test_the_remainder_names_the_factors_that_vary_and_no_other() -> None:
    _, result = _run(PLANTED["null"])
    claim = _claim(result, "region:within_cell_share")
    assert claim.sentence.endswith("lies within a proxy-by-wording prompt, where order varies.")
    assert "seed" not in claim.sentence


def test_the_leading_factor_dominates_only_above_the_residual() -> None:
    _, culture = _run(PLANTED["culture-only"])
    factors = culture.tables["factor_summary"]
    estimable = int(((factors["kind"] != "residual") & factors["share"].notna()).sum())
    leading = _claim(culture, "region:leading_factor").sentence
    assert f"Over all {estimable} declared factors, region dominates with" in leading
    _, null = _run(PLANTED["null"])
    leader = _claim(null, "region:leading_factor")
    residual = _claim(null, "region:factor:residual")
    assert residual.estimate is not None and leader.estimate is not None
    assert residual.estimate > leader.estimate
    assert "dominates" not in leader.sentence and "explains the most" in leader.sentence
    assert "more than any declared factor" in residual.sentence
    assert "does not dominate" in null.summary["factors"]["region"]["verdict"]


def test_placebo_sentence_gives_both_magnitudes_and_the_sign_test() -> None:
    _, result = _run(PLANTED["culture-only"], n_items=8)
    items = result.tables["item_stats"]
    claim = _claim(result, "region:placebo")
    culture = format_percent(items["culture_share"].mean())
    placebo = format_percent(items["placebo_culture_share"].mean())
    above = int((items["culture_minus_placebo"] > 0).sum())
    assert f"explain a mean {culture} of the answer variance and placebo personas {placebo}" in (
        claim.sentence
    )
    assert f"the larger in {above} of 8 items" in claim.sentence
    assert claim.test is not None
    assert claim.test.p == pytest.approx(stats.binomtest(above, 8).pvalue)


def _cell(result, header: str) -> SummaryCell:  # type: ignore[no-untyped-def]
    return next(c for c in summary_cells(result.summary) if c.header == header)


def test_a_share_not_distinguishable_from_zero_reads_so_in_the_table_too() -> None:
    # culture only: the wording-by-culture component is truncated at zero on every item
    _, result = _run(PLANTED["culture-only"])
    aggregate = result.summary["axes"]["region"]["aggregates"]["mean_wording_contrast_share"]
    assert aggregate["estimate"] == 0 and aggregate["ci_low"] == 0 and aggregate["ci_high"] > 0
    claim = _claim(result, "region:wording_contrast_share")
    high = format_percent(aggregate["ci_high"])
    assert f"are not distinguishable from zero (upper bound {high})" in claim.sentence
    assert _cell(result, "w×c").text == f"≈0\n≤{high.rstrip('%')}"
    console = Console(width=120, record=True)
    console.print(format_terminal_summary(result))
    printed = console.export_text()
    assert "≈0" in printed and f"≤{high.rstrip('%')}" in printed


def test_the_checker_finds_a_table_cell_that_contradicts_its_sentence() -> None:
    _, result = _run(PLANTED["culture-only"])
    cells = summary_cells(result.summary)
    assert cell_problems(cells, result.claims) == []
    # the cell as it was written before: "0%" over "0-0" beside "not distinguishable from zero"
    zero = [dataclasses.replace(c, text="0%\n0-0") if c.header == "w×c" else c for c in cells]
    problems = cell_problems(zero, result.claims)
    assert len(problems) == 1 and "w×c cell of region reads '0%\\n0-0'" in problems[0]
    # a culture share one digit off its sentence
    culture = _claim(result, "region:culture_share")
    shown = culture.figures["share"].text()
    other = [
        dataclasses.replace(c, text="1" + c.text) if c.header == "culture" else c for c in cells
    ]
    problems = cell_problems(other, result.claims)
    assert len(problems) == 1 and "region:culture_share" in problems[0] and shown in problems[0]
    with pytest.raises(ClaimsInconsistent, match="terminal table's culture cell"):
        assert_consistent(result.claims, result.tables, result.summary, other)


def test_a_ratio_cell_is_written_as_its_sentence_writes_it() -> None:
    # Kendall's W sits in the culture sentence where culture is tiny but consistent
    _tidy, result = _run(PlantedEffects(culture=0.2, position_bias=0.95), n_items=6)
    claim = _claim(result, "region:culture_share")
    w = claim.figures["w"]
    assert w.text() in claim.sentence
    assert _cell(result, "W").text.split("\n")[0] == format_ratio(w.value)
    assert cell_problems(summary_cells(result.summary), result.claims) == []


# --- the checker finds what is wrong -----------------------------------------------------------


def _with_figure(claim: Claim, name: str, **changes: object) -> Claim:
    figures = dict(claim.figures)
    figures[name] = dataclasses.replace(figures[name], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(claim, figures=figures)


def _replaced(result, key: str, claim: Claim) -> list[Claim]:  # type: ignore[no-untyped-def]
    return [claim if c.key == key else c for c in result.claims]


def test_the_checker_finds_a_number_that_is_not_the_tables() -> None:
    _, result = _run(PLANTED["culture-only"])
    claim = _claim(result, "region:culture_share")
    wrong = _with_figure(claim, "share", value=claim.figures["share"].value + 0.05)
    problems = claim_problems(_replaced(result, claim.key, wrong), result.tables, result.summary)
    assert any("share is written" in p for p in problems)


def test_the_checker_finds_a_backwards_sign() -> None:
    _, result = _run(PLANTED["order-only"])
    claim = _claim(result, "region:reversal")
    change = claim.figures["change"]
    wrong = dataclasses.replace(
        _with_figure(claim, "change", value=-change.value, source=None), direction="down"
    )
    problems = claim_problems(_replaced(result, claim.key, wrong), result.tables, result.summary)
    assert any("wrong sign" in p for p in problems)
    assert any("direction 'down'" in p for p in problems)


def test_the_checker_finds_zero_beside_a_significant_test() -> None:
    _, result = _run(PLANTED["culture-only"])
    claim = _claim(result, "region:culture_share")
    zero = _with_figure(claim, "share", value=0.0, source=None)
    problems = claim_problems(_replaced(result, claim.key, zero), result.tables, result.summary)
    assert any("writes '0%' beside a significant" in p for p in problems)


def test_the_checker_finds_a_culture_factor_written_zero_beside_a_significant_test() -> None:
    _, result = _run(PLANTED["culture-only"])
    leader = _claim(result, "region:leading_factor")
    assert leader.subject == "region"
    zero = _with_figure(leader, "estimate", value=0.0)
    problems = claim_problems(_replaced(result, leader.key, zero), result.tables, result.summary)
    assert any("writes region as 0% beside a significant culture F test" in p for p in problems)


def test_a_culture_factor_truncated_to_zero_is_said_in_words() -> None:
    from culture_probe.analysis._headline import factor_claims

    _, result = _run(PLANTED["culture-only"])
    summary = result.tables["factor_summary"].copy()
    region = summary["factor"] == "region"
    summary.loc[region, ["share", "share_low", "share_high"]] = 0.0
    claims = factor_claims("region", summary, culture_significant=True)
    sentences = " ".join(claim.sentence for claim in claims)
    assert "That model puts region at zero" in sentences
    assert "region 0%" not in sentences
    tables = {**result.tables, "factor_summary": summary}
    others = [c for c in result.claims if ":factor:" not in c.key and "leading" not in c.key]
    assert claim_problems([*others, *claims], tables, result.summary) == []


def test_the_checker_finds_a_largest_factor_that_is_not() -> None:
    _, result = _run(PLANTED["culture-only"])
    leader = _claim(result, "region:leading_factor")
    residual = _claim(result, "region:factor:residual")
    larger = _with_figure(residual, "estimate", value=1.0, source=None)
    problems = claim_problems(
        _replaced(result, residual.key, larger), result.tables, result.summary
    )
    assert any("'dominates' beside a residual of 100%" in p for p in problems)
    rival = dataclasses.replace(
        leader,
        key="region:other",
        kind="share",
        subject="paraphrase",
        template="Paraphrase explains {estimate}.",
        words={},
        figures={"estimate": Figure(1.0, "percent")},
    )
    problems = claim_problems([*result.claims, rival], result.tables, result.summary)
    assert any("is called the largest" in p for p in problems)


def test_the_checker_finds_a_mute_test_printed_and_a_factor_that_does_not_vary() -> None:
    _, result = _run(PLANTED["order-only"])
    claim = _claim(result, "region:reversal")
    loud = dataclasses.replace(claim, template=claim.template + " p = 0{n}.")
    problems = claim_problems(_replaced(result, claim.key, loud), result.tables, result.summary)
    assert any("prints a p-value" in p for p in problems)
    remainder = _claim(result, "region:within_cell_share")
    seeds = dataclasses.replace(remainder, words={"factors": "order and seed"})
    problems = claim_problems(
        _replaced(result, remainder.key, seeds), result.tables, result.summary
    )
    assert any("'seed' as varying" in p for p in problems)


def test_the_checker_finds_one_quantity_printed_twice_with_two_values() -> None:
    _, result = _run(PLANTED["culture-only"])
    claim = _claim(result, "region:culture_share")
    twin = _with_figure(
        dataclasses.replace(claim, key="region:again"), "share", value=0.5, source=None
    )
    problems = claim_problems([*result.claims, twin], result.tables, result.summary)
    assert any("print culture's" in p for p in problems)


def test_confidence_level_is_the_one_the_sentences_say() -> None:
    assert CONFIDENCE == 0.95  # the sentences write "95%" as a phrase of the method


# --- nominal items -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nominal_run():  # type: ignore[no-untyped-def]
    return _run(PlantedEffects(culture=0.2, wording=0.05, noise=0.05), scale="nominal")


def test_nominal_items_are_not_analysed_on_the_ordinal_position(nominal_run) -> None:  # type: ignore[no-untyped-def]
    _, result = nominal_run
    assert result.summary["axes"] == {}
    assert result.tables["factor_summary"].empty
    items = result.tables["item_stats"]
    assert set(items["verdict"]) == {"nominal"}
    assert items["measure"].str.contains("not meaningful").all()
    assert set(result.tables["nominal_stats"]["measure"]) == {"Gini variation (CATANOVA)"}
    assert_consistent(result.claims, result.tables, result.summary)
    assert any("CATANOVA" in sentence for sentence in result.headline)


def test_catanova_is_the_sum_of_per_option_anovas(nominal_run) -> None:  # type: ignore[no-untyped-def]
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    from culture_probe.analysis._factorial import with_design_columns

    tidy, result = nominal_run
    table = result.tables["nominal_stats"]
    rows = table.loc[table["item_id"] == "Q1"]
    data = with_design_columns(
        tidy.loc[(tidy["item_id"] == "Q1") & (tidy["proxy_kind"] == "culture")]
    ).reset_index(drop=True)
    probs = np.stack(data["probs"].to_numpy())
    terms = [
        ":".join(f"C({c})" for c in columns.split(":"))
        for columns in rows.loc[rows["factor"] != "residual", "columns"]
    ]
    total = pd.Series(0.0, index=[*terms, "Residual"])
    for option in range(probs.shape[1]):
        frame = data.assign(y=probs[:, option])
        fit = ols("y ~ " + " + ".join(terms), data=frame).fit()
        total += anova_lm(fit, typ=1)["sum_sq"].to_numpy()
    np.testing.assert_allclose(rows["ss"].to_numpy(), total.to_numpy(), rtol=1e-8, atol=1e-12)
    # Light and Margolin: the total is n times the Gini index of the mean distribution
    # plus the within-answer Gini of each distribution, here the sum of squared deviations
    deviations = ((probs - probs.mean(axis=0)) ** 2).sum()
    assert rows["ss"].sum() == pytest.approx(deviations)
    assert rows["share"].sum() == pytest.approx(1.0)


def test_nominal_distances_and_modal_agreement_match_a_hand_computation(nominal_run) -> None:  # type: ignore[no-untyped-def]
    from scipy.spatial.distance import jensenshannon

    tidy, result = nominal_run
    data = tidy.loc[(tidy["item_id"] == "Q2") & (tidy["proxy_kind"] == "culture")]
    probs = np.stack(data["probs"].to_numpy())
    cells = (
        pd.DataFrame(probs).groupby([data["proxy"].to_numpy(), data["wording"].to_numpy()]).mean()
    )
    proxies = sorted(data["proxy"].unique())
    distances, same = [], []
    for wording in sorted(data["wording"].unique()):
        for i, first in enumerate(proxies):
            for second in proxies[i + 1 :]:
                a, b = (
                    cells.loc[(first, wording)].to_numpy(),
                    cells.loc[(second, wording)].to_numpy(),
                )
                distances.append(jensenshannon(a, b, base=2))
                same.append(a.argmax() == b.argmax())
    row = result.tables["nominal_stats"].query("item_id == 'Q2' and factor == 'residual'").iloc[0]
    assert row["js_between_proxies"] == pytest.approx(np.mean(distances))
    assert row["modal_agreement_proxies"] == pytest.approx(np.mean(same))


# --- where the sentences are shown -------------------------------------------------------------


def test_the_report_verdict_and_findings_are_the_claims_sentences(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import html
    import json

    from culture_probe.analysis.cli import analyze_run
    from culture_probe.report.run_report import render_run_report

    plan, responses = simulate_study(
        PlantedEffects(culture=0.2, noise=0.02), n_items=3, n_proxies=3, n_paraphrases=3, seed=2
    )
    nominal, nominal_responses = simulate_study(
        PlantedEffects(culture=0.2), n_items=1, n_proxies=3, n_paraphrases=3, scale="nominal"
    )
    nominal = nominal.assign(item_id="N0", prompt_id="n" + nominal["prompt_id"])
    nominal_responses = nominal_responses.assign(prompt_id="n" + nominal_responses["prompt_id"])
    pd.concat([plan, nominal]).to_parquet(tmp_path / "plan.parquet")
    pd.concat([responses, nominal_responses]).to_parquet(tmp_path / "responses.parquet")
    result = analyze_run(tmp_path, n_bootstrap=100, n_permutations=19)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["headline"] == result.headline
    assert [c["sentence"] for c in summary["claims"]] == [c.sentence for c in result.claims]
    page = html.unescape(render_run_report(tmp_path).read_text(encoding="utf-8"))
    for claim in result.claims:
        assert claim.sentence in page
    assert "Nominal items: Gini variation (CATANOVA)" in page and 'id="table-nominal-stats"' in page
