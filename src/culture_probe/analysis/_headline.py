"""The claims the analysis states in words, per axis, each built from the tables it summarises.

Every sentence of the terminal summary, ``summary.json`` (``"headline"``, ``"claims"``) and the
report's verdict is a :class:`~culture_probe.analysis._claims.Claim` made here; its numbers carry
the table, row and column they come from (docs/statistics.md, "Claims").
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from culture_probe.analysis._claims import (
    ALPHA,
    ZERO_WORDS,
    Claim,
    Condition,
    Figure,
    Source,
    Test,
    interval_template,
    write,
    writes_as_zero,
)
from culture_probe.analysis._summary import ORDINAL_MEASURE

#: below this share an effect is "tiny" (in share units)
TINY_SHARE = 0.01
#: the smallest number of items at which a two-sided exact Wilcoxon signed-rank or sign test can
#: reach p < 0.05 (n = 5 gives at best p = 2 / 2^5 = 0.0625; n = 6 gives 0.031)
MIN_ITEMS_SIGNED_RANK = 6
#: how many factors the N-way sentence names after the leader
RUNNERS_UP = 2
#: p_largest at or above which the leading factor "dominates"
DOMINANCE = 0.95
TWO_WAY = "share of the answer variance, proxy x wording model"
N_WAY = "share of the answer variance, model over all declared factors"
CROSS = " × "
#: the factor kinds of ``factor_summary`` that are culture: proxy axes and their interactions
PROXY_KINDS = ("proxy", "proxy interaction")
#: claims kept out of the headline (they are in ``summary.json`` and the report), by key ending
DETAIL_CLAIMS = (":first_position", ":flips", ":rho2_1", ":nominal_distances")


def headline_claims(summary: dict[str, Any], tables: dict[str, pd.DataFrame]) -> list[Claim]:
    """Every claim of the study, axis by axis.

    Args:
        summary: the ``summary`` of an :class:`AnalysisResult` (``"axes"``, ``"factors"``, ...).
        tables: the analysis tables (``item_stats``, ``factor_summary``, ``nominal_stats``, ...).
    """
    claims: list[Claim] = []
    for axis, facts in summary.get("axes", {}).items():
        claims += _axis_claims(str(axis), facts, summary, tables)
    for axis in summary.get("factors", {}):
        significant = bool(summary.get("axes", {}).get(axis, {}).get("n_culture_significant"))
        claims += factor_claims(str(axis), tables.get("factor_summary"), significant)
    if "nominal_stats" in tables:
        from culture_probe.analysis._nominal import nominal_claims

        claims += nominal_claims(tables["nominal_stats"])
    return claims


def headline_sentences(claims: list[Claim], summary: dict[str, Any]) -> list[str]:
    """The headline: the sentences of the claims but the details (:data:`DETAIL_CLAIMS`), or
    why there are none."""
    if claims:
        return [claim.sentence for claim in claims if not claim.key.endswith(DETAIL_CLAIMS)]
    return [
        f"{summary.get('n_responses', 0)} responses were analysed.",
        "No item had at least two culture proxies under at least two wordings, so culture "
        "and wording could not be separated.",
        "Add proxies or paraphrases to the study to get a variance decomposition.",
    ]


# --- the proxy x wording model --------------------------------------------------------------------


def _axis_claims(
    axis: str, facts: dict[str, Any], summary: dict[str, Any], tables: dict[str, pd.DataFrame]
) -> list[Claim]:
    claims = [_culture_claim(axis, facts), *_wording_claims(axis, facts)]
    for build in (_remainder_claim, _verdict_claim, _reversal_claim, _position_claim):
        claim = build(axis, facts)
        if claim is not None:
            claims.append(claim)
    claims += _agreement_claims(axis, facts)
    for extra in (_flip_claim(axis, facts), _human_claim(axis, facts, tables.get("item_stats"))):
        if extra is not None:
            claims.append(extra)
    if summary.get("has_placebo"):
        placebo = _placebo_claim(axis, facts)
        if placebo is not None:
            claims.append(placebo)
    return claims


def _aggregate(axis: str, name: str, facts: dict[str, Any], stem: str) -> dict[str, Figure]:
    """The estimate and interval of a study-level aggregate, as figures named ``stem...``."""
    values = facts["aggregates"].get(name, {})
    return _entry_figures(values, f"axes/{axis}/aggregates/{name}", stem)


def _entry_figures(values: dict[str, Any], path: str, stem: str) -> dict[str, Figure]:
    """The estimate and interval of a ``summary.json`` entry at ``path``, as figures named
    ``stem``, ``stem_low`` and ``stem_high``."""
    return {
        f"{stem}{suffix}": Figure(values.get(key), "percent", Source("summary", f"{path}/{key}"))
        for suffix, key in (("", "estimate"), ("_low", "ci_low"), ("_high", "ci_high"))
    }


def _ordinal_items(axis: str) -> tuple[Condition, ...]:
    return (Condition("axis", "==", axis), Condition("scale", "!=", "nominal"))


def _n_items(axis: str, facts: dict[str, Any]) -> Figure:
    return Figure(facts["n_items"], "count", Source("summary", f"axes/{axis}/n_items"))


def _culture_claim(axis: str, facts: dict[str, Any]) -> Claim:
    figures = _aggregate(axis, "mean_culture_share", facts, "share")
    figures["n"] = _n_items(axis, facts)
    significant = facts.get("n_culture_significant", 0)
    figures["k"] = Figure(
        significant,
        "count",
        Source(
            "item_stats",
            "p_proxy_bh",
            (*_ordinal_items(axis), Condition("p_proxy_bh", "<", ALPHA)),
            "count",
        ),
    )
    test = Test(
        "F = MS_culture / MS_wording x culture per item, Benjamini-Hochberg adjusted",
        n=int(facts["n_items"]),
        n_significant=int(significant),
    )
    template = (
        "On the {axis} axis ({n} items; measure: "
        + ORDINAL_MEASURE
        + "), culture explains "
        + interval_template("share")
        + " of the answer variance in the proxy x wording model"
    )
    share = figures["share"].value
    if significant and share is not None and share < TINY_SHARE:
        figures.update(_aggregate(axis, "mean_kendall_w", facts, "w"))
        for name in ("w", "w_low", "w_high"):
            figures[name] = Figure(figures[name].value, "decimal", figures[name].source)
        template += (
            ": tiny, but consistent across wordings (Kendall's W = "
            + interval_template("w")
            + "); the culture F test is significant after Benjamini-Hochberg in {k} of {n} items."
        )
    elif significant:
        template += (
            "; the culture F test is significant after Benjamini-Hochberg in {k} of {n} items."
        )
    else:
        template += "; the culture F test is significant in none of the {n} items."
    return Claim(
        key=f"{axis}:culture_share",
        axis=axis,
        kind="share",
        subject="culture",
        quantity=TWO_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template=template,
        figures=figures,
        words={"axis": axis},
        test=test,
    )


#: per two-way wording component: its aggregate, the item_stats column of its BH-adjusted test,
#: the summary count of significant items, what the sentence calls it, and the test's name
WORDING_COMPONENTS = (
    (
        "wording_share",
        "mean_wording_share",
        "p_wording_bh",
        "n_wording_significant",
        "the wording level",
        "F = MS_wording / MS_wording x culture per item, Benjamini-Hochberg adjusted",
    ),
    (
        "wording_contrast_share",
        "mean_wording_contrast_share",
        "p_interaction_bh",
        "n_contrast_significant",
        "wording-by-culture changes",
        "F = MS_wording x culture / MS_within per item, Benjamini-Hochberg adjusted",
    ),
)


def _wording_claims(axis: str, facts: dict[str, Any]) -> list[Claim]:
    """One claim per wording component of the proxy x wording model, each with its own F test.

    A component whose estimate would be written "0%" is said to be not distinguishable from
    zero, with its upper bound where that is above 0, never "0% [0%, 0%]" (docs/statistics.md,
    "Claims")."""
    claims = []
    for key, aggregate, column, count, label, test_name in WORDING_COMPONENTS:
        figures = _aggregate(axis, aggregate, facts, "share")
        figures["n"] = _n_items(axis, facts)
        significant = int(facts.get(count, 0))
        figures["k"] = Figure(
            significant,
            "count",
            Source(
                "item_stats",
                column,
                (*_ordinal_items(axis), Condition(column, "<", ALPHA)),
                "count",
            ),
        )
        test = Test(test_name, n=int(facts["n_items"]), n_significant=significant)
        unsaid: dict[str, Figure] = {}
        template = "In the same model " + label + " " + _share_words(figures, unsaid, label)
        template += "; "
        template += (
            "its F test is significant after Benjamini-Hochberg in {k} of {n} items."
            if significant
            else "its F test is significant in none of the {n} items."
        )
        claims.append(
            Claim(
                key=f"{axis}:{key}",
                axis=axis,
                kind="share",
                subject=label,
                quantity=TWO_WAY,
                measure=ORDINAL_MEASURE,
                unit="share",
                template=template,
                figures=figures,
                test=test,
                unsaid=unsaid,
            )
        )
    return claims


def _share_words(
    figures: dict[str, Figure], unsaid: dict[str, Figure], label: str, stem: str = "share"
) -> str:
    """ "explain 3.1% [0.50%, 6.0%]", or, where the estimate writes as 0, "are not
    distinguishable from 0 (upper bound 2.0%)", the figures no longer printed moved to
    ``unsaid``; ``stem`` names the figures (``stem``, ``stem_low``, ``stem_high``)."""
    verb = "explain" if label.endswith("s") else "explains"
    if not writes_as_zero(figures[stem].value):
        return verb + " " + interval_template(stem)
    for name in (stem, f"{stem}_low"):
        unsaid[name] = figures.pop(name)
    be = "are" if label.endswith("s") else "is"
    high = figures[f"{stem}_high"]
    if high.text() == write(None, "percent") or writes_as_zero(high.value):
        unsaid[f"{stem}_high"] = figures.pop(f"{stem}_high")
        return f"{be} {ZERO_WORDS}"
    return f"{be} {ZERO_WORDS} (upper bound {{{stem}_high}})"


def _remainder_claim(axis: str, facts: dict[str, Any]) -> Claim | None:
    """Where the rest of the variance lies: the factors that vary within a proxy x wording cell."""
    figures = _aggregate(axis, "within_cell_share", facts, "share")
    if figures["share"].value is None:
        return None
    amount = interval_template("share")
    if facts["aggregates"].get("within_cell_share", {}).get("complement"):
        # a component printed as not distinguishable from zero: the rest is what the printed
        # shares leave, with no interval of its own (docs/statistics.md, "Claims")
        del figures["share_low"], figures["share_high"]
        amount = "{share} (what the shares above leave)"
    varying = list(facts.get("within_cell_factors", []))
    words = {"factors": _listed(varying)}
    where = "where {factors} vary" if varying else "between repeated scorings of one prompt"
    if len(varying) == 1:
        where = "where {factors} varies"
    return Claim(
        key=f"{axis}:within_cell_share",
        axis=axis,
        kind="share",
        subject="within proxy-by-wording cells",
        quantity=TWO_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template="The remaining " + amount + " lies within a proxy-by-wording "
        "prompt, " + where + ".",
        figures=figures,
        words=words if varying else {},
    )


def _verdict_claim(axis: str, facts: dict[str, Any]) -> Claim:
    names = {
        "culture-dominant": "culture-dominant",
        "wording-dominated": "wording-dominated",
        "order-dominated": "order-dominated",
        "mixed": "mixed",
        "no culture effect": "with no culture effect",
    }
    figures = {"n": _n_items(axis, facts)}
    parts = []
    for index, (verdict, label) in enumerate(names.items()):
        figures[f"v{index}"] = Figure(
            facts["verdicts"].get(verdict, 0),
            "count",
            Source(
                "item_stats",
                "verdict",
                (*_ordinal_items(axis), Condition("verdict", "==", verdict)),
                "count",
            ),
        )
        parts.append(f"{{v{index}}} {label}")
    return Claim(
        key=f"{axis}:verdicts",
        axis=axis,
        kind="count",
        subject="item verdicts",
        quantity="items per verdict (docs/statistics.md, Verdicts)",
        measure=ORDINAL_MEASURE,
        unit="items",
        template="Of the {n} items, " + ", ".join(parts[:-1]) + " and " + parts[-1] + ".",
        figures=figures,
    )


def _reversal_claim(axis: str, facts: dict[str, Any]) -> Claim | None:
    """What reversing the options does to the mean answer, with its sign the right way round."""
    order = facts.get("order", {})
    before, after = order.get("canonical_mean"), order.get("reversed_mean")
    if before is None or after is None:
        return None
    path = f"axes/{axis}/order"
    n_items = int(order.get("n_items_reversed") or 0)
    figures = {
        "before": Figure(before, "decimal", Source("summary", f"{path}/canonical_mean")),
        "after": Figure(after, "decimal", Source("summary", f"{path}/reversed_mean")),
        "change": Figure(
            order.get("reversal_change"), "signed", Source("summary", f"{path}/reversal_change")
        ),
        "n": Figure(n_items, "count", Source("summary", f"{path}/n_items_reversed")),
    }
    test = Test(
        "two-sided Wilcoxon signed-rank test of the items' mean shifts against 0",
        n=n_items,
        min_n=MIN_ITEMS_SIGNED_RANK,
        p=order.get("reversal_p"),
    )
    template = (
        "Reversing the order of the options moves the mean answer from {before} to {after} "
        "({change} on the 0-1 scale, 0 = the first option in the item's own order)"
    )
    if test.can_speak and test.p is not None:
        figures["p"] = Figure(test.p, "p", Source("summary", f"{path}/reversal_p"))
        template += ", Wilcoxon signed-rank over {n} items, p {p}."
    else:
        figures["min_n"] = Figure(MIN_ITEMS_SIGNED_RANK, "count")
        template += (
            "; with {n} items no test over items is printed: a Wilcoxon signed-rank test needs "
            "at least {min_n} to reach p < 0.05."
        )
    change = order.get("reversal_change") or 0.0
    return Claim(
        key=f"{axis}:reversal",
        axis=axis,
        kind="shift",
        subject="option order (canonical -> reversed)",
        quantity="change of the mean answer",
        measure=ORDINAL_MEASURE,
        unit="0-1 scale",
        template=template,
        figures=figures,
        direction="up" if change > 0 else "down" if change < 0 else "none",
        test=test,
    )


def _position_claim(axis: str, facts: dict[str, Any]) -> Claim | None:
    first = facts.get("order", {}).get("first_position_share")
    if first is None:
        return None
    return Claim(
        key=f"{axis}:first_position",
        axis=axis,
        kind="position",
        subject="first displayed option",
        quantity="mean probability of the option shown first",
        measure="option probabilities",
        unit="share",
        template="The option shown first gets {share} of the probability on average.",
        figures={
            "share": Figure(
                first, "percent", Source("summary", f"axes/{axis}/order/first_position_share")
            )
        },
    )


def _agreement_claims(axis: str, facts: dict[str, Any]) -> list[Claim]:
    claims = []
    for key, name, subject, text in (
        (
            "kendall_w",
            "mean_kendall_w",
            "proxy ranking across wordings",
            "The ranking of the {axis} proxies agrees across wordings with a mean Kendall's W of ",
        ),
        (
            "rho2_1",
            "mean_rho2_1",
            "single-wording reliability",
            "With the variance components pooled over items, a single wording compares the "
            "{axis} proxies with a reliability rho2(1) of ",
        ),
    ):
        figures = _aggregate(axis, name, facts, "value")
        if figures["value"].value is None:
            continue
        figures = {n: Figure(f.value, "decimal", f.source) for n, f in figures.items()}
        widened = facts["aggregates"][name].get("interval_extended")
        note = " (widened to reach the estimate: the resamples all lie on one side of it)"
        claims.append(
            Claim(
                key=f"{axis}:{key}",
                axis=axis,
                kind="agreement",
                subject=subject,
                quantity=f"pooled over items: {key}"
                if key == "rho2_1"
                else f"mean over items of {key}",
                measure=ORDINAL_MEASURE,
                unit=key,
                template=text + interval_template("value") + (note if widened else "") + ".",
                figures=figures,
                words={"axis": axis},
            )
        )
    return claims


def _flip_claim(axis: str, facts: dict[str, Any]) -> Claim | None:
    rates = {
        "proxy": facts.get("proxy_flip_rate", {}).get("mean"),
        "wording": facts.get("wording_flip_rate", {}).get("mean"),
        "order": facts.get("order_flip_rate", {}).get("mean"),
    }
    present = {name: value for name, value in rates.items() if value is not None}
    if not present:
        return None
    labels = {"proxy": "the proxy", "wording": "the wording", "order": "the option order"}
    figures = {
        name: Figure(value, "percent", Source("summary", f"axes/{axis}/{name}_flip_rate/mean"))
        for name, value in present.items()
    }
    parts = [f"{labels[name]} in {{{name}}}" for name in present]
    return Claim(
        key=f"{axis}:flips",
        axis=axis,
        kind="rate",
        subject="most likely answer",
        quantity="share of pairs of prompts whose most likely answer differs",
        measure="most likely option",
        unit="rate",
        template="Changing "
        + parts[0]
        + " of pairs of prompts changes the most likely answer"
        + "".join(f"; changing {part}" for part in parts[1:])
        + ".",
        figures=figures,
    )


def _human_claim(axis: str, facts: dict[str, Any], items: pd.DataFrame | None) -> Claim | None:
    """Spearman's rho between the model's and people's proxy order: mean and median, with n."""
    ranking = facts.get("human_rank_agreement")
    if not ranking or ranking.get("mean_spearman") is None or items is None:
        return None
    where = (*_ordinal_items(axis), Condition("human_spearman", "notna"))
    values = (
        items.loc[(items["axis"] == axis) & (items["scale"] != "nominal"), "human_spearman"]
        .astype("float64")
        .dropna()
    )
    figures = {
        reduce: Figure(
            float(getattr(values, reduce)()),
            "decimal",
            Source("item_stats", "human_spearman", where, reduce),
        )
        for reduce in ("mean", "median", "min", "max")
    }
    figures["n"] = Figure(
        len(values), "count", Source("item_stats", "human_spearman", where, "count")
    )
    return Claim(
        key=f"{axis}:human_spearman",
        axis=axis,
        kind="human ranking",
        subject="model's proxy order against people's",
        quantity="Spearman's rho per item",
        measure=ORDINAL_MEASURE,
        unit="rho",
        template=(
            "Against the human reference, the model orders the {axis} proxies with Spearman's rho "
            "of {mean} on average and {median} at the median over {n} items (from {min} to {max})."
        ),
        figures=figures,
        words={"axis": axis},
    )


def _placebo_claim(axis: str, facts: dict[str, Any]) -> Claim | None:
    """Real proxies against placebo personas: both shares pooled over items with their intervals,
    how many items, and a sign test.

    Where every item of the axis has placebos, the culture share is the headline's own
    (``mean_culture_share``, same entry of ``summary.json``); otherwise it is pooled over the
    items with placebos, and the sentence says so."""
    placebo = facts.get("placebo")
    if not placebo or not placebo.get("n_items"):
        return None
    path = f"axes/{axis}/placebo"
    where = (*_ordinal_items(axis), Condition("placebo_culture_share", "notna"))
    every_item = placebo["n_items"] == facts["n_items"]
    figures = {
        **(
            _aggregate(axis, "mean_culture_share", facts, "culture")
            if every_item
            else _entry_figures(placebo["culture_share"], f"{path}/culture_share", "culture")
        ),
        **_entry_figures(placebo["placebo_share"], f"{path}/placebo_share", "placebo"),
        **_placebo_counts(placebo, where),
    }
    test = Test(
        "two-sided sign test over items of culture minus placebo variance component",
        n=int(placebo["n_items"]),
        min_n=MIN_ITEMS_SIGNED_RANK,
        p=placebo.get("sign_p"),
    )
    unsaid: dict[str, Figure] = {}
    template = (
        "Of the answer variance pooled over "
        + ("items" if every_item else "the {n} items with placebo personas")
        + ", culture proxies "
        + _share_words(figures, unsaid, "culture proxies", "culture")
        + " and placebo personas "
        + _share_words(figures, unsaid, "placebo personas", "placebo")
        + "; the culture component is the larger in {k} of {n} items, with its 95% "
        "interval (paired bootstrap over wordings) above the placebo's in {b}"
    )
    if test.can_speak and test.p is not None:
        figures["p"] = Figure(test.p, "p", Source("summary", f"{path}/sign_p"))
        template += " (sign test over items, p {p})."
    else:
        figures["min_n"] = Figure(MIN_ITEMS_SIGNED_RANK, "count")
        template += "; a sign test over items needs at least {min_n} items to reach p < 0.05."
    return Claim(
        key=f"{axis}:placebo",
        axis=axis,
        kind="placebo",
        subject="culture proxies against placebo personas",
        quantity="share of the answer variance pooled over items, proxy x wording model",
        measure=ORDINAL_MEASURE,
        unit="share",
        template=template,
        figures=figures,
        test=test,
        unsaid=unsaid,
    )


def _placebo_counts(placebo: dict[str, Any], where: tuple[Condition, ...]) -> dict[str, Figure]:
    """The items where the culture component is the larger, where its interval beats the
    placebo's, and all the items compared, each counted afresh in ``item_stats``."""
    above = (*where, Condition("culture_minus_placebo", ">", 0.0))
    beating = (*where, Condition("beats_placebo", "true"))
    return {
        "k": Figure(
            placebo["n_above"],
            "count",
            Source("item_stats", "culture_minus_placebo", above, "count"),
        ),
        "b": Figure(
            placebo["n_beating"], "count", Source("item_stats", "beats_placebo", beating, "count")
        ),
        "n": Figure(
            placebo["n_items"],
            "count",
            Source("item_stats", "placebo_culture_share", where, "count"),
        ),
    }


# --- the model over all declared factors -----------------------------------------------------------


def factor_claims(
    axis: str, summary: pd.DataFrame | None, culture_significant: bool = False
) -> list[Claim]:
    """The N-way claims of one axis: the leading factor, each proxy axis and interaction of a
    crossed study, and the residual, from ``factor_summary``.

    A proxy factor whose share is written as zero while the proxy x wording model's culture F
    test is significant gets no number but a note: its component was truncated at zero where the
    residual swamps it, and printing "0%" beside that test would contradict it.
    """
    if summary is None or summary.empty:
        return []
    rows = summary.loc[summary["axis"] == axis]
    factors = rows.loc[(rows["kind"] != "residual") & rows["share"].notna()]
    if factors.empty:
        return []
    ranked = factors.sort_values("share", ascending=False, kind="stable")
    is_axis = ranked["kind"].isin(PROXY_KINDS)
    zero = ranked["share"].map(lambda v: writes_as_zero(float(v)))
    silenced = is_axis & zero & culture_significant
    residual = rows.loc[rows["kind"] == "residual"]
    shown = ranked.loc[~silenced | (ranked.index == ranked.index[0])]
    claims = [_leader_claim(axis, shown, residual, len(ranked))]
    axes = ranked.loc[is_axis & ~silenced]
    if is_axis.sum() > 1:
        claims += [_axis_share_claim(axis, row) for _, row in axes.iterrows()]
    if silenced.any():
        claims.append(_truncated_claim(axis, [str(f) for f in ranked.loc[silenced, "factor"]]))
    if len(residual) and pd.notna(residual["share"].iat[0]):
        claims.append(_residual_claim(axis, residual.iloc[0], ranked.iloc[0]))
    return claims


def _share_figures(axis: str, factor: str, row: pd.Series, stem: str) -> dict[str, Figure]:
    where = (Condition("axis", "==", axis), Condition("factor", "==", factor))
    return {
        f"{stem}{suffix}": Figure(
            _float(row[column]), "percent", Source("factor_summary", column, where)
        )
        for suffix, column in (("", "share"), ("_low", "share_low"), ("_high", "share_high"))
    }


def _leader_claim(axis: str, ranked: pd.DataFrame, residual: pd.DataFrame, n_factors: int) -> Claim:
    top = ranked.iloc[0]
    leader = str(top["factor"])
    figures = _share_figures(axis, leader, top, "estimate")
    where = (Condition("axis", "==", axis), Condition("factor", "==", leader))
    figures["k"] = Figure(
        int(top["n_items_leading"]), "count", Source("factor_summary", "n_items_leading", where)
    )
    figures["n"] = Figure(int(top["n_items"]), "count", Source("factor_summary", "n_items", where))
    figures["m"] = Figure(
        n_factors,
        "count",
        Source(
            "factor_summary",
            "factor",
            (
                Condition("axis", "==", axis),
                Condition("kind", "!=", "residual"),
                Condition("share", "notna"),
            ),
            "count",
        ),
    )
    residual_share = _float(residual["share"].iat[0]) if len(residual) else None
    dominates = _float(top["p_largest"]) is not None and float(top["p_largest"]) >= DOMINANCE
    dominates = dominates and (residual_share is None or float(top["share"]) > residual_share)
    verb = "dominates with" if dominates else "explains the most:"
    words = {"leader": _readable(leader)}
    template = (
        "Over all {m} declared factors, {leader} "
        + verb
        + " "
        + interval_template("estimate")
        + " of the answer variance and is the largest factor in {k} of {n} items"
    )
    for index, (_, row) in enumerate(ranked.iloc[1 : 1 + RUNNERS_UP].iterrows()):
        name = f"r{index}"
        figures.update(_share_figures(axis, str(row["factor"]), row, name))
        words[name + "_name"] = _readable(str(row["factor"]))
        template += (
            ("; then " if index == 0 else " and ") + f"{{{name}_name}} " + interval_template(name)
        )
    return Claim(
        key=f"{axis}:leading_factor",
        axis=axis,
        kind="largest",
        subject=leader,
        quantity=N_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template=template + ".",
        figures=figures,
        words=words,
    )


def _axis_share_claim(axis: str, row: pd.Series) -> Claim:
    factor = str(row["factor"])
    kind = "interaction of the axes" if row["kind"] == "proxy interaction" else "axis"
    return Claim(
        key=f"{axis}:factor:{factor}",
        axis=axis,
        kind="share",
        subject=factor,
        quantity=N_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template="The {name} "
        + kind
        + " explains "
        + interval_template("estimate")
        + " of the answer variance over all declared factors.",
        figures=_share_figures(axis, factor, row, "estimate"),
        words={"name": _readable(factor)},
    )


def _truncated_claim(axis: str, factors: list[str]) -> Claim:
    return Claim(
        key=f"{axis}:factor:truncated",
        axis=axis,
        kind="note",
        subject=", ".join(factors),
        quantity=N_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template=(
            "That model puts {names} at zero, the variance component truncated where the residual "
            "swamps it, although the culture F test of the proxy x wording model is significant; "
            "read the size of culture from that model."
        ),
        words={"names": _listed(factors)},
    )


def _residual_claim(axis: str, residual: pd.Series, leader: pd.Series) -> Claim:
    figures = _share_figures(axis, str(residual["factor"]), residual, "estimate")
    template = (
        "The residual of the model over all declared factors (interactions it leaves out, and "
        "noise) holds " + interval_template("estimate")
    )
    if float(residual["share"]) > float(leader["share"]):
        template += ", more than any declared factor: much of what moves the answers is not named"
    return Claim(
        key=f"{axis}:factor:residual",
        axis=axis,
        kind="residual",
        subject="residual",
        quantity=N_WAY,
        measure=ORDINAL_MEASURE,
        unit="share",
        template=template + ".",
        figures=figures,
    )


def factor_verdict(claims: list[Claim], axis: str) -> str | None:
    """The short N-way verdict of ``summary.json``'s ``factors``, consistent with the claims."""
    for claim in claims:
        if claim.key == f"{axis}:leading_factor":
            leader = claim.words["leader"]
            share = claim.figures["estimate"].text()
            if "dominates" in claim.template:
                return f"{leader} dominates ({share})"
            return f"{leader} explains the most ({share}) but does not dominate"
    return None


def _readable(name: str) -> str:
    """A factor or proxy name as a reader writes it: crossed parts joined by "×"."""
    return name.replace(" x ", CROSS).replace("+", CROSS)


def _listed(names: list[str]) -> str:
    readable = [_readable(n) for n in names]
    if len(readable) <= 1:
        return "".join(readable)
    return ", ".join(readable[:-1]) + " and " + readable[-1]


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
