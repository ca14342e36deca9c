"""Plain-English sentences that state what the analysis found."""

from __future__ import annotations

from typing import Any

from culture_probe.formatting import format_interval

MAX_SENTENCES = 8


def headline_sentences(summary: dict[str, Any]) -> list[str]:
    """Three to eight sentences: variance shares, verdicts, ranking agreement, reliability, flips.

    Args:
        summary: the ``summary`` of an :class:`AnalysisResult`.
    """
    axes: dict[str, Any] = summary.get("axes", {})
    if not axes:
        return [
            f"{summary.get('n_responses', 0)} responses were analysed.",
            "No item had at least two culture proxies under at least two wordings, so culture "
            "and wording could not be separated.",
            "Add proxies or paraphrases to the study to get a variance decomposition.",
        ]
    sentences: list[str] = []
    for axis, facts in axes.items():
        sentences.extend(_axis_sentences(axis, facts, summary))
        if len(sentences) >= MAX_SENTENCES:
            break
    return sentences[:MAX_SENTENCES]


def _axis_sentences(axis: str, facts: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    aggregates = facts["aggregates"]
    n_items = facts["n_items"]
    sentences = [
        f"On the {axis} axis ({n_items} items), culture explains "
        f"{_share(aggregates['mean_culture_share'])} of the answer variance, the wording level "
        f"{_share(aggregates['mean_wording_share'])} and wording-by-culture changes "
        f"{_share(aggregates['mean_wording_contrast_share'])}.",
    ]
    factors = _factor_sentence(summary.get("factors", {}).get(axis))
    if factors:
        sentences.append(factors)
    rest = _remainder_sentence(aggregates)
    if rest:
        sentences.append(rest)
    sentences.append(_verdict_sentence(facts["verdicts"], n_items))
    if _order_leads(facts):
        sentences.append(_position_sentence(facts))
    sentences.append(
        f"The ranking of the proxies agrees across wordings with Kendall's W = "
        f"{_interval(aggregates['mean_kendall_w'])}; a single wording compares cultures with "
        f"reliability {_interval(aggregates['mean_rho2_1'])}."
    )
    flips = _flip_sentence(facts)
    if flips:
        sentences.append(flips)
    ranking = _ranking_sentence(axis, facts.get("human_rank_agreement"))
    if ranking:
        sentences.append(ranking)
    if summary.get("has_placebo") and facts.get("share_beating_placebo") is not None:
        sentences.append(
            f"Real proxies move the answers more than placebo personas on "
            f"{facts['share_beating_placebo']:.0%} of items."
        )
    return sentences


def _factor_sentence(facts: dict[str, Any] | None) -> str | None:
    """The N-way verdict: which declared factor explains the most, the next two, and how often."""
    if not facts or facts.get("dominant_factor") is None:
        return None
    shares = facts["shares"]
    ranked = sorted(
        (
            name
            for name, v in shares.items()
            if v["kind"] != "residual" and v["estimate"] is not None
        ),
        key=lambda name: -shares[name]["estimate"],
    )
    leader = ranked[0]
    verb = "dominates" if (shares[leader]["p_largest"] or 0) >= 0.95 else "leads"
    sentence = (
        f"Over all {len(ranked)} declared factors, {leader} {verb} with "
        f"{_share(shares[leader])} of the answer variance"
    )
    others = [f"{name} {_share(shares[name])}" for name in ranked[1:3]]
    if others:
        sentence += ", then " + " and ".join(others)
    return (
        sentence + f"; it is the largest factor in {shares[leader]['n_items_leading']} of "
        f"{facts['n_items']} items."
    )


def _remainder_sentence(aggregates: dict[str, Any]) -> str | None:
    """Where the variance goes when neither culture nor wording holds it."""
    residual = aggregates.get("mean_residual_share", {}).get("estimate")
    order = aggregates.get("mean_order_share", {}).get("estimate")
    if residual is None and order is None:
        return None
    parts = []
    if residual is not None:
        parts.append(
            f"The remaining {_share(aggregates['mean_residual_share'])} varies within a "
            f"proxy-by-wording prompt, between its option orders and seeds"
        )
    if order is not None:
        lead = "as" if residual is not None else "As"
        parts.append(
            f"{lead} a third factor beside proxy and wording, option order alone explains "
            f"{_share(aggregates['mean_order_share'])}"
        )
    return "; ".join(parts) + "."


def _verdict_sentence(verdicts: dict[str, int], n_items: int) -> str:
    return (
        f"{verdicts['culture-dominant']} of {n_items} items are culture-dominant, "
        f"{verdicts['wording-dominated']} wording-dominated, {verdicts['order-dominated']} "
        f"order-dominated, {verdicts['mixed']} mixed and {verdicts['no culture effect']} show no "
        f"culture effect."
    )


def _order_leads(facts: dict[str, Any]) -> bool:
    """Order is the story: most items are order-dominated, or order holds most of the variance."""
    order_share = facts["aggregates"].get("mean_order_share", {}).get("estimate")
    most_items = facts["verdicts"]["order-dominated"] * 2 > facts["n_items"]
    return most_items or (order_share is not None and order_share > 0.5)


def _position_sentence(facts: dict[str, Any]) -> str:
    order = facts.get("order", {})
    details = []
    shift = order.get("reversal_shift")
    if shift is not None:
        test = order.get("reversal_p")
        tested = f" (Wilcoxon over items, p = {test:.2g})" if test is not None else ""
        details.append(
            f"reversing the options moves the mean answer by {shift:+.2f} on the 0-1 scale{tested}"
        )
    order_flips = facts["order_flip_rate"]["mean"]
    if order_flips is not None:
        details.append(f"the most likely answer changes in {order_flips:.0%} of order pairs")
    first = order.get("first_position_share")
    if first is not None:
        details.append(f"the first option shown gets {first:.0%} of the probability")
    text = "The answers follow the position of the options, not their content"
    return text + (": " + ", ".join(details) if details else "") + "."


def _flip_sentence(facts: dict[str, Any]) -> str | None:
    flips = facts["wording_flip_rate"]["mean"]
    proxy_flips = facts.get("proxy_flip_rate", {}).get("mean")
    order_flips = facts["order_flip_rate"]["mean"]
    if flips is None or order_flips is None:
        return None
    sentence = ""
    if proxy_flips is not None:
        sentence = f"Changing the proxy changes the most likely answer in {proxy_flips:.0%} of "
        sentence += "proxy pairs"
        ratio = facts.get("median_cow_ratio")
        if ratio is not None:
            sentence += f" (median culture-over-wording flip ratio {ratio:.2f})"
        sentence += "; changing the wording"
    else:
        sentence = "Changing the wording changes the most likely answer"
    return sentence + (
        f" in {flips:.0%} of wording pairs; changing the option order in {order_flips:.0%} "
        f"of order pairs."
    )


def _ranking_sentence(axis: str, ranking: dict[str, Any] | None) -> str | None:
    if not ranking or ranking.get("mean_spearman") is None:
        return None
    sentence = (
        f"The model orders the {axis} proxies as people do with Spearman's rho = "
        f"{ranking['mean_spearman']:.2f} on average"
    )
    low, high = ranking.get("wording_spearman_q05"), ranking.get("wording_spearman_q95")
    if low is not None and high is not None:
        sentence += (
            f"; a single wording gives anything from {low:.2f} to {high:.2f} (5th to 95th "
            f"percentile over wordings)"
        )
    return sentence + "."


def _share(aggregate: dict[str, Any]) -> str:
    return format_interval(
        aggregate["estimate"],
        aggregate["ci_low"],
        aggregate["ci_high"],
        "{:.0%}",
        missing="an undetermined share",
    ) + _widened(aggregate)


def _interval(aggregate: dict[str, Any]) -> str:
    shown = format_interval(aggregate["estimate"], aggregate["ci_low"], aggregate["ci_high"])
    return shown + _widened(aggregate)


def _widened(aggregate: dict[str, Any]) -> str:
    """Say so when the resamples all fell to one side and the interval was stretched to the
    estimate: otherwise the reader takes the interval for the resampling's own."""
    if aggregate.get("estimate") is None or not aggregate.get("interval_extended"):
        return ""
    return " (widened to reach the estimate: the resamples all lie on one side of it)"
