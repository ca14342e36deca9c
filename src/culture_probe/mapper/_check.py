"""How far the mapper agrees with a reader who labelled the same answers by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from culture_probe.agreement import cohen_kappa
from culture_probe.errors import CultureProbeError
from culture_probe.mapper._answer import MappedAnswer

#: the reader's labels besides an option index: no option fits, or the answer declines
READER_LABELS = ("abstain", "refused")


@dataclass(frozen=True)
class MapperAgreement:
    """How far the mapper agrees with a reader's labels of the same answers.

    Attributes:
        answers: how many answers were compared.
        decided: how many the mapper did not abstain on (an option or a refusal).
        abstention_rate: the share it abstained on (abstained or invalid), of all answers.
        accuracy: the share of decided answers where it says what the reader says.
        correct_options: the share of the answers the reader put on an option that the mapper put
            on the same option (its recall).
        kappa: Cohen's kappa over all answers, categories: option index, abstain, refused.
        kappa_interval: percentile bootstrap 95% interval of kappa, resampling answers.
        confusion: counts of (reader's label, mapper's category) pairs.
    """

    answers: int
    decided: int
    abstention_rate: float
    accuracy: float
    correct_options: float
    kappa: float
    kappa_interval: tuple[float, float]
    confusion: dict[tuple[str, str], int]


def mapped_category(answer: MappedAnswer) -> str:
    """The mapper's outcome in the reader's categories: the option index, abstain or refused.

    An invalid (empty) answer fits no option, so it counts as ``abstain``.
    """
    if answer.outcome == "answered" and answer.option is not None:
        return str(answer.option)
    return "refused" if answer.outcome == "refused" else "abstain"


def agreement_with_labels(
    labels: Sequence[str],
    mapped: Sequence[MappedAnswer],
    resamples: int = 2000,
    seed: int = 0,
) -> MapperAgreement:
    """Compare mapped answers with a reader's labels of the same answers.

    Args:
        labels: per answer, the canonical option index as text ("0", "1", ...), ``abstain`` or
            ``refused``.
        mapped: the mapper's answers, in the same order.
        resamples: bootstrap resamples of the answers for the interval of kappa.
        seed: seed of the resampling.

    Example:
        >>> mapped = [MappedAnswer(0, "answered", "option_text", 1.0),
        ...           MappedAnswer(None, "abstained", "no_rule", 0.0)]
        >>> result = agreement_with_labels(["0", "1"], mapped, resamples=10)
        >>> result.accuracy, result.abstention_rate, result.correct_options
        (1.0, 0.5, 0.5)
    """
    if len(labels) != len(mapped) or not labels:
        raise CultureProbeError("agreement_with_labels needs one label per mapped answer")
    got = [mapped_category(answer) for answer in mapped]
    decided = [index for index, category in enumerate(got) if category != "abstain"]
    on_options = [index for index, label in enumerate(labels) if label not in READER_LABELS]
    draws = np.random.default_rng(seed).integers(0, len(labels), (resamples, len(labels)))
    kappas = [cohen_kappa([labels[i] for i in draw], [got[i] for i in draw]) for draw in draws]
    finite = [kappa for kappa in kappas if not math.isnan(kappa)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite else (math.nan, math.nan)
    confusion: dict[tuple[str, str], int] = {}
    for label, category in zip(labels, got, strict=True):
        confusion[label, category] = confusion.get((label, category), 0) + 1
    return MapperAgreement(
        answers=len(labels),
        decided=len(decided),
        abstention_rate=1 - len(decided) / len(labels),
        accuracy=_share(sum(labels[i] == got[i] for i in decided), len(decided)),
        correct_options=_share(sum(labels[i] == got[i] for i in on_options), len(on_options)),
        kappa=cohen_kappa(list(labels), got),
        kappa_interval=(float(low), float(high)),
        confusion=confusion,
    )


def _share(count: int, total: int) -> float:
    return count / total if total else math.nan
