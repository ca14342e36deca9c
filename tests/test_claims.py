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
from culture_probe.analysis._headline import MIN_ITEMS_SIGNED_RANK, _placebo_claim
from culture_probe.analysis._items import CONFIDENCE
from culture_probe.analysis._summary import placebo_summary
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


def test_placebo_sentence_gives_both_pooled_shares_and_the_sign_test() -> None:
    _, result = _run(PlantedEffects(culture=0.2, placebo=0.1, noise=0.02), n_items=8)
    items = result.tables["item_stats"]
    claim = _claim(result, "region:placebo")
    placebo = result.summary["axes"]["region"]["placebo"]["placebo_share"]
    # the placebo's share, pooled afresh from its own components in item_stats
    parts = items[[f"placebo_var_{p}" for p in ("proxy", "wording", "interaction", "residual")]]
    totals = parts.clip(lower=0).sum(axis=1)
    pooled = (items["placebo_raw_culture_share"] * totals).sum() / totals.sum()
    assert placebo["estimate"] == pytest.approx(pooled)
    assert placebo["ci_low"] <= placebo["estimate"] <= placebo["ci_high"]
    written = format_interval(placebo["estimate"], placebo["ci_low"], placebo["ci_high"], "{:.0%}")
    assert f" and placebo personas explain {written};" in claim.sentence
    above = int((items["culture_minus_placebo"] > 0).sum())
    assert 0 < above < 8
    assert f"the larger in {above} of 8 items" in claim.sentence
    assert claim.test is not None
    assert claim.test.p == pytest.approx(stats.binomtest(above, 8).pvalue)


def test_placebo_sentence_gives_the_headlines_culture_share() -> None:
    # every item has placebos: the comparison states the culture share the headline states, read
    # from the same entry of summary.json
    _, result = _run(PLANTED["culture-only"], n_items=8)
    headline, placebo = _claim(result, "region:culture_share"), _claim(result, "region:placebo")
    for stem, name in (
        ("share", "culture"),
        ("share_low", "culture_low"),
        ("share_high", "culture_high"),
    ):
        assert placebo.figures[name] == headline.figures[stem]
    written = f"{headline.figures['share'].text()} [{headline.figures['share_low'].text()}, "
    assert f"culture explains {written}" in headline.sentence
    assert f"pooled over items, culture proxies explain {written}" in placebo.sentence
    aggregate = result.summary["axes"]["region"]["aggregates"]["mean_culture_share"]
    assert result.summary["axes"]["region"]["placebo"]["culture_share"] == aggregate
    assert claim_problems(result.claims, result.tables, result.summary) == []


def test_a_placebo_share_below_zero_is_not_distinguishable_from_zero() -> None:
    # culture only: the placebo personas' untruncated components pool below 0
    _, result = _run(PLANTED["culture-only"], n_items=8)
    placebo = result.summary["axes"]["region"]["placebo"]["placebo_share"]
    assert placebo["estimate"] == 0 and placebo["ci_high"] > 0
    claim = _claim(result, "region:placebo")
    high = format_percent(placebo["ci_high"])
    assert f"placebo personas are not distinguishable from zero (upper bound {high});" in (
        claim.sentence
    )
    assert set(claim.unsaid) == {"placebo", "placebo_low"}


def _placebo_items() -> pd.DataFrame:
    """Four items of one axis, three with placebos; the culture components are those of the
    worked ratio estimate in test_analysis_robust_intervals.py (0.3, 0.5, 0.4 over totals 1)."""
    return pd.DataFrame(
        {
            "item_id": ["Q1", "Q2", "Q3", "Q4"],
            "axis": "region",
            "scale": "ordinal",
            "var_proxy": [0.3, 0.5, 0.4, 0.9],
            "var_wording": [0.2, 0.1, 0.2, 0.05],
            "var_interaction": [0.1, 0.1, 0.2, 0.05],
            "var_residual": [0.4, 0.3, 0.2, 0.0],
            "raw_culture_share": [0.3, 0.5, 0.4, 0.9],
            "placebo_var_proxy": [0.02, 0.0, 0.06, np.nan],
            "placebo_var_wording": [0.01, 0.05, 0.02, np.nan],
            "placebo_var_interaction": [0.03, 0.05, 0.02, np.nan],
            "placebo_var_residual": [0.04, 0.10, 0.20, np.nan],
            "placebo_raw_culture_share": [0.2, -0.05, 0.2, np.nan],
            "placebo_culture_share": [0.2, 0.0, 0.2, np.nan],
            "culture_minus_placebo": [0.28, 0.5, 0.34, np.nan],
            "beats_placebo": pd.array([True, False, True, pd.NA], dtype="boolean"),
        }
    )


def test_pooled_placebo_share_is_its_components_over_its_totals_worked_by_hand() -> None:
    """The placebo's totals are 0.1, 0.2 and 0.3 and its untruncated components (raw share times
    total) 0.02, -0.01 and 0.06: R = 0.07 / 0.6 = 0.116667. Residuals d = x - R t = (0.008333,
    -0.033333, 0.025), leverages t / sum(t) = (1/6, 1/3, 1/2), d / (1 - h) = (0.01, -0.05, 0.05),
    SE = sqrt(0.0051) / 0.6 = 0.119024, half = t(0.975, 2) SE = 0.512118: R - half < 0, so the
    interval stays linear and clipped, [0, 0.628785]. Culture, over the same three items (Q4 has
    no placebos), pools 1.2 / 3 = 0.4 with the logit interval [0.158005, 0.703123]."""
    summary = placebo_summary(_placebo_items())
    assert summary is not None
    assert summary["n_items"] == 3
    placebo = summary["placebo_share"]
    assert placebo["estimate"] == pytest.approx(0.07 / 0.6)
    assert placebo["ci_low"] == 0.0
    assert placebo["ci_high"] == pytest.approx(0.07 / 0.6 + 4.302653 * np.sqrt(0.0051) / 0.6)
    assert placebo["ci_high"] == pytest.approx(0.628785, abs=1e-6)
    culture = summary["culture_share"]
    assert culture["estimate"] == pytest.approx(0.4)
    assert (culture["ci_low"], culture["ci_high"]) == pytest.approx((0.158005, 0.703123), abs=1e-6)
    assert (summary["n_above"], summary["n_beating"]) == (3, 2)
    assert summary["sign_p"] == pytest.approx(0.25)  # 3 of 3 above: 2 / 2^3


def test_placebo_sentence_over_fewer_items_than_the_headline_says_which() -> None:
    # Q4 has no placebos: the culture share is pooled over the three that do, not the headline's
    items = _placebo_items()
    facts = {"n_items": 4, "aggregates": {}, "placebo": placebo_summary(items)}
    claim = _placebo_claim("region", facts)
    assert claim is not None
    assert claim.sentence.startswith(
        "Of the answer variance pooled over the 3 items with placebo personas, culture proxies "
        "explain 40% [16%, 70%] and placebo personas explain 12% [0%, 63%]; the culture "
        "component is the larger in 3 of 3 items"
    )
    assert "needs at least 6 items" in claim.sentence
    summary = {"axes": {"region": facts}}
    assert claim_problems([claim], {"item_stats": items}, summary) == []
    wrong = _with_figure(claim, "placebo", value=0.2)
    problems = claim_problems([wrong], {"item_stats": items}, summary)
    assert any(
        "placebo is written '20%' but value of summary[axes/region/placebo/placebo_share/"
        "estimate] is '12%'" in p
        for p in problems
    ), problems


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
    # the headline and the placebo comparison both state the culture share
    assert [p.split(":")[1] for p in problems] == ["culture_share", "placebo"]
    assert all(shown in p for p in problems)
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
