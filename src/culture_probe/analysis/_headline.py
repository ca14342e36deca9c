"""Plain-English sentences that state what the analysis found."""

from __future__ import annotations

from typing import Any

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
    verdicts = facts["verdicts"]
    n_items = facts["n_items"]
    sentences = [
        f"On the {axis} axis ({n_items} items), culture explains "
        f"{_share(aggregates['mean_culture_share'])} of the answer variance, the wording level "
        f"{_share(aggregates['mean_wording_share'])} and wording-by-culture changes "
        f"{_share(aggregates['mean_wording_contrast_share'])}.",
        f"{verdicts['culture-dominant']} of {n_items} items are culture-dominant, "
        f"{verdicts['wording-dominated']} wording-dominated, {verdicts['mixed']} mixed and "
        f"{verdicts['no culture effect']} show no culture effect.",
        f"The ranking of the proxies agrees across wordings with Kendall's W = "
        f"{_interval(aggregates['mean_kendall_w'])}; a single wording compares cultures with "
        f"reliability {_interval(aggregates['mean_rho2_1'])}.",
    ]
    flips = facts["wording_flip_rate"]["mean"]
    order_flips = facts["order_flip_rate"]["mean"]
    if flips is not None and order_flips is not None:
        sentences.append(
            f"Changing the wording changes the most likely answer in {flips:.0%} of wording "
            f"pairs; changing the option order in {order_flips:.0%} of order pairs."
        )
    if summary.get("has_placebo") and facts.get("share_beating_placebo") is not None:
        sentences.append(
            f"Real proxies move the answers more than placebo personas on "
            f"{facts['share_beating_placebo']:.0%} of items."
        )
    return sentences


def _share(aggregate: dict[str, Any]) -> str:
    estimate, low, high = aggregate["estimate"], aggregate["ci_low"], aggregate["ci_high"]
    if estimate is None:
        return "an undetermined share"
    if low is None or high is None:
        return f"{estimate:.0%}"
    return f"{estimate:.0%} (95% CI {low:.0%}-{high:.0%})"


def _interval(aggregate: dict[str, Any]) -> str:
    estimate, low, high = aggregate["estimate"], aggregate["ci_low"], aggregate["ci_high"]
    if estimate is None:
        return "undetermined"
    if low is None or high is None:
        return f"{estimate:.2f}"
    return f"{estimate:.2f} (95% CI {low:.2f}-{high:.2f})"
