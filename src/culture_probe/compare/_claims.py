"""The comparison's sentences, as typed claims built from its tables.

Each sentence ``compare`` prints (the terminal and the comparison page) is a
:class:`~culture_probe.analysis.Claim` whose every number names the table, rows and column it
comes from, so :func:`culture_probe.analysis.assert_consistent` can re-read it. A test is printed
only where it can reach p < 0.05 at the run's n; otherwise the sentence says the n it needs. A
difference, a ranking or a W that the runs' numeric noise floor alone can produce is not
claimed (docs/compare.md, "Numeric noise").
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from scipy import stats

from culture_probe.analysis import Claim, Condition, Figure, Source, Test
from culture_probe.compare._paired import ALPHA

#: the smallest number of wordings at which a t test over wordings has any degrees of freedom
MIN_WORDINGS_T = 2
#: the most wordings tried when looking for the Friedman test's smallest n
MAX_WORDINGS = 1000


def compare_claims(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> list[Claim]:
    """The comparison's claims, in the order they are printed."""
    claims = []
    if summary.get("differing_factor"):
        claims.append(_differing_claim(summary))
    if summary["n_left_out"]:
        claims.append(_left_out_claim(summary))
    for pair in summary["pairs"]:
        claims.append(_pair_claim(pair, summary["min_difference"]))
    ranking = _ranking_claim(tables.get("ranking"), len(summary["models"]))
    if ranking is not None:
        claims.append(ranking)
    country = tables.get("alignment_by_country")
    if country is not None and not country.empty:
        claims.append(_country_claim(country))
    return claims


def _differing_claim(summary: dict[str, Any]) -> Claim:
    """What the runs differ in: one design factor, one level per run (no model is compared)."""
    levels = summary["levels"]
    return Claim(
        key=":differing_factor",
        axis="",
        kind="note",
        subject=summary["differing_factor"],
        quantity="the design factor the runs differ in",
        measure="",
        unit="",
        template="The runs differ only in {factor}, {levels}; each prompt is paired with the "
        "same design cell in the other run, and every difference below is between those levels "
        "(each run's label ends with its level).",
        words={"factor": summary["differing_factor"], "levels": " vs ".join(levels.values())},
    )


def _left_out_claim(summary: dict[str, Any]) -> Claim:
    return Claim(
        key=":left_out",
        axis="",
        kind="count",
        subject="prompts",
        quantity="prompts not shared by every run",
        measure="",
        unit="prompts",
        template="{n_left_out} prompts not shared by every run were left out; {n_prompts} prompts "
        "are compared.",
        figures={
            "n_left_out": Figure(summary["n_left_out"], "count", Source("summary", "n_left_out")),
            "n_prompts": Figure(summary["n_prompts"], "count", Source("summary", "n_prompts")),
        },
    )


def _pair_claim(pair: dict[str, Any], min_difference: float) -> Claim:
    a, b = pair["model_a"], pair["model_b"]
    where = (Condition("model_a", "==", a), Condition("model_b", "==", b))

    def pairs(column: str, style: str) -> Figure:
        return Figure(pair[column], style, Source("pairs", column, where))

    test = Test(
        name="Welch t test of the mean over items of the per-wording differences",
        n=int(pair["min_wordings"]),
        n_unit="wordings per item",
        min_n=MIN_WORDINGS_T,
        p=pair["p"],
        n_significant=int(pair["n_items_different"]),
    )
    figures = {
        "estimate": pairs("mean_difference", "difference"),
        "n_items": pairs("n_items", "count"),
        "n_different": pairs("n_items_different", "count"),
    }
    words = {"a": a, "b": b, "margin": "", "noise": ""}
    if min_difference:
        words["margin"] = " and by more than {margin}"
        figures["margin"] = Figure(min_difference, "fine", Source("summary", "min_difference"))
    floor = pair["noise_floor"]
    if math.isfinite(floor):
        figures["floor"] = pairs("noise_floor", "fine")
        figures["n_noise"] = pairs("n_items_within_noise", "count")
        words["noise"] = "; {n_noise} items differ by no more than numeric noise (up to {floor})"
    else:
        words["noise"] = "; a run has no numeric noise floor recorded, so none is set aside"
    if not test.can_speak:
        figures["n"] = pairs("min_wordings", "count")
        figures["min_n"] = Figure(MIN_WORDINGS_T, "count")
        template = (
            "{b} minus {a}: mean score difference {estimate} over {n_items} items; untested: "
            "a test over wordings needs at least {min_n} wordings per item, the runs have {n}."
        )
    elif pair["mean_within_noise"]:
        template = (
            "{b} minus {a}: mean score difference {estimate} is within numeric noise (two runs "
            "of one model differ by up to {floor} from the batch alone): no difference is "
            "claimed; {n_different} of {n_items} items differ beyond it and beyond the wording "
            "noise{margin} after Benjamini-Hochberg."
        )
    else:
        figures.update(
            {
                "low": pairs("low", "difference"),
                "high": pairs("high", "difference"),
                "p": pairs("p", "p"),
                "n_higher": pairs("n_items_b_higher", "count"),
                "n_interaction": pairs("n_items_interaction", "count"),
            }
        )
        template = (
            "{b} minus {a}: mean score difference {estimate} [{low}, {high}] (95%, t over "
            "wordings, p {p}); {n_different} of {n_items} items differ by more than the wording "
            "noise{margin} after Benjamini-Hochberg ({n_higher} higher for {b}), "
            "{n_interaction} show a model x wording interaction{noise}."
        )
    return Claim(
        key=f"{a}|{b}:mean_difference",
        axis="",
        kind="difference",
        subject=f"{b} minus {a}",
        quantity="mean paired difference of scores over items",
        measure="expected ordinal position (0-1 scale)",
        unit="0-1 scale",
        template=_resolve(template, words),
        figures=figures,
        words={"a": a, "b": b},
        direction=_direction(pair["mean_difference"]) if not pair["mean_within_noise"] else "none",
        test=test,
    )


#: why the ranking of the models is withheld, by case
WITHHELD = {
    "noise": "on every item the models differ by no more than numeric noise, which would rank "
    "rounding, not models.",
    "no difference": "no item's difference between the models is claimed (beyond numeric noise "
    "and significant after Benjamini-Hochberg), and an order of models that do not differ ranks "
    "noise.",
}


def _ranking_claim(ranking: pd.DataFrame | None, n_models: int) -> Claim | None:
    """The stability of the models' order across wordings, over the items where the models
    differ (``ranking["claimed"]``); withheld where they differ on none, and untested where the
    Friedman test cannot reach p < 0.05 at the runs' wordings."""
    if ranking is None or ranking.empty or not ranking["kendall_w"].notna().any():
        return None
    claimed = Condition("claimed", "true")
    ranked = ranking.loc[ranking["claimed"]]
    base: dict[str, Any] = {
        "key": ":ranking",
        "axis": "",
        "subject": "order of the models",
        "quantity": "concordance of the models' order across wordings",
        "measure": "mean score per item and wording",
        "unit": "W",
    }
    if ranking["within_noise"].all():
        return _withheld(base, WITHHELD["noise"])
    min_n = friedman_min_wordings(n_models)
    # the wordings of the items ranked; of every item where none is, to say the test is mute
    where = (claimed,) if len(ranked) else ()
    test = Test(
        name="Friedman test of the models across wordings, per item",
        n=int((ranked if len(ranked) else ranking)["n_wordings"].min()),
        n_unit="wordings",
        min_n=min_n,
        n_significant=int((ranked["friedman_p"] < ALPHA).sum()),
    )
    if not test.can_speak:
        figures = {
            "n": Figure(float(test.n), "count", Source("ranking", "n_wordings", where, "min")),
            "min_n": Figure(min_n, "count"),
        }
        template = (
            "Ranking of the models across wordings: not reported; with {n} wordings the Friedman "
            "test cannot reach p < 0.05 (it needs {min_n})."
        )
        return Claim(**base, kind="agreement", template=template, figures=figures, test=test)
    if ranked.empty:
        return _withheld(base, WITHHELD["no difference"])
    figures = {
        "n_ranked": Figure(
            float(len(ranked)), "count", Source("ranking", "item_id", where, "count")
        ),
        "estimate": Figure(
            float(ranked["kendall_w"].mean()),
            "decimal",
            Source("ranking", "kendall_w", where, "mean"),
        ),
        "reversal": Figure(
            float(ranked["reversal_probability"].mean()),
            "decimal",
            Source("ranking", "reversal_probability", where, "mean"),
        ),
        "n_significant": Figure(
            float(test.n_significant or 0),
            "count",
            Source("ranking", "item_id", (claimed, Condition("friedman_p", "<", ALPHA)), "count"),
        ),
    }
    template = (
        "Ranking of the models across wordings, over the {n_ranked} {items} where they differ "
        "(beyond numeric noise and significant after Benjamini-Hochberg): mean Kendall's W "
        "{estimate}; another wording reverses a pair of models with probability {reversal}; the "
        "Friedman test rejects at p < 0.05 on {n_significant} of them."
    )
    words = {"items": "item" if len(ranked) == 1 else "items"}
    return Claim(
        **base, kind="agreement", template=template, figures=figures, words=words, test=test
    )


def _withheld(base: dict[str, Any], reason: str) -> Claim:
    return Claim(
        **base,
        kind="note",
        template="Kendall's W and the reversal probability are withheld: " + reason,
    )


def _country_claim(country: pd.DataFrame) -> Claim:
    decided = country.loc[country["closer"] != "neither"]
    listed = ", ".join(f"{row.proxy} {row.closer}" for row in decided.itertuples())
    return Claim(
        key=":closer",
        axis="",
        kind="count",
        subject="closer model per country",
        quantity="country comparisons whose AvgP difference interval excludes 0",
        measure="AvgP (1 - Jensen-Shannon distance), paired on wordings",
        unit="comparisons",
        template="Closer to the people of each country (AvgP, paired on wordings): {n_decided} "
        "of {n_countries} country comparisons are decided{listed}.",
        figures={
            "n_decided": Figure(
                float(len(decided)),
                "count",
                Source(
                    "alignment_by_country",
                    "proxy",
                    (Condition("closer", "!=", "neither"),),
                    "count",
                ),
            ),
            "n_countries": Figure(
                float(len(country)), "count", Source("alignment_by_country", "proxy", (), "count")
            ),
        },
        words={"listed": f": {listed}" if listed else ""},
    )


def friedman_min_wordings(n_models: int) -> int:
    """The fewest wordings at which the Friedman test of ``n_models`` can reach p < 0.05.

    Its statistic is largest when every wording orders the models alike, n (k - 1) for n wordings
    and k models; it is read against chi-square with k - 1 df, as :func:`analysis.friedman` does.
    """
    df = max(n_models - 1, 1)
    for n in range(2, MAX_WORDINGS):
        if stats.chi2.sf(n * df, df) < ALPHA:
            return n
    return MAX_WORDINGS


def _resolve(template: str, words: dict[str, str]) -> str:
    """Put the optional clauses (which hold figure names) into the template."""
    for name in ("margin", "noise"):
        template = template.replace("{" + name + "}", words[name])
    return template


def _direction(value: float) -> str:
    return "up" if value > 0 else "down" if value < 0 else "none"
