"""Open answers mapped back to the options they choose, or left unassigned.

At the ``open`` elicitation level the model answers in its own words with the options hidden
("Family is the most important thing in my life."). To count such an answer as a choice, this module
assigns it to one of the item's options, in canonical order, or says why it cannot:

- ``refused``: the answer declines ("As an AI, I don't have personal opinions");
- ``invalid``: there is no answer (empty text);
- ``abstained``: the answer fits no option, or several, or the mapper is not sure which;
- ``answered``: one option, with the rule that chose it and how sure it is.

The rules run first and offline: a refusal; then the degree the answer states on the options' scale
("extremely important" on a very/rather/not very/not at all scale, "I don't agree", a bare
"Rather."), read by an English lexicon of qualifiers and negations; for options that are no such
scale (the translated items), the text of one option in the answer ("muy importante") or the answer
as a fragment of one option, as ``generate`` mode reads a written answer
(:func:`culture_probe.backends.generation.match_option_text`). An answer the rules cannot place
abstains. What they leave goes to the judge where one is given: any
:class:`~culture_probe.backends.Backend` asked which option the answer chooses, read off its
first-token probabilities with the options in both orders, and kept only at or above
:data:`JUDGE_THRESHOLD`.
Abstentions, refusals and invalid answers are outcomes: they are counted, never dropped. How often
the mapper agrees with a careful reader is measured in ``benchmarks/mapper_accuracy.py`` against
answers labelled by hand (docs/statistics.md#open-answers-and-the-mapper).
"""

from __future__ import annotations

from collections.abc import Sequence

from culture_probe.backends import Backend
from culture_probe.errors import CultureProbeError
from culture_probe.mapper._answer import MAPPED_OUTCOMES, MappedAnswer
from culture_probe.mapper._check import (
    READER_LABELS,
    MapperAgreement,
    agreement_with_labels,
    mapped_category,
)
from culture_probe.mapper._judge import JUDGE_THRESHOLD, ask_judge, judge_prompt
from culture_probe.mapper._rules import NO_RULE, apply_rules


def map_open_answers(
    texts: Sequence[str],
    options: Sequence[Sequence[str]],
    languages: Sequence[str],
    judge: Backend | None = None,
) -> list[MappedAnswer]:
    """Assign each open answer to one of its item's options, or abstain.

    Args:
        texts: the answers as the model wrote them.
        options: per answer, the option texts in canonical order.
        languages: per answer, the ISO 639-1 code of the prompt's language.
        judge: a backend asked about the answers no rule decides; None keeps the mapper offline
            and rule-only.

    Returns:
        One :class:`MappedAnswer` per text, in the same order.

    Raises:
        CultureProbeError: when the three sequences differ in length, or an answer has no
            options or more than 26 (the judge letters them A-Z).

    Example:
        >>> options = ["Very important", "Rather important", "Not very important"]
        >>> [m.option for m in map_open_answers(["It isn't very important."], [options], ["en"])]
        [2]
        >>> map_open_answers(["I'm sorry, I can't answer that."], [options], ["en"])[0].outcome
        'refused'
    """
    _check_lengths(texts, options, languages)
    mapped = [apply_rules(text, choices) for text, choices in zip(texts, options, strict=True)]
    if judge is None:
        return mapped
    undecided = [index for index, answer in enumerate(mapped) if answer.rule == NO_RULE]
    judged = ask_judge(
        judge,
        [texts[index] for index in undecided],
        [options[index] for index in undecided],
        [languages[index] for index in undecided],
    )
    for index, answer in zip(undecided, judged, strict=True):
        mapped[index] = answer
    return mapped


def _check_lengths(
    texts: Sequence[str], options: Sequence[Sequence[str]], languages: Sequence[str]
) -> None:
    if not len(texts) == len(options) == len(languages):
        raise CultureProbeError(
            f"map_open_answers needs one options list and one language per answer; got "
            f"{len(texts)} answers, {len(options)} options lists and {len(languages)} languages"
        )
    for position, choices in enumerate(options):
        if not 0 < len(choices) <= 26:
            raise CultureProbeError(
                f"map_open_answers: answer {position} has {len(choices)} options; expected 1 to 26"
            )


__all__ = [
    "JUDGE_THRESHOLD",
    "MAPPED_OUTCOMES",
    "READER_LABELS",
    "MappedAnswer",
    "MapperAgreement",
    "agreement_with_labels",
    "judge_prompt",
    "map_open_answers",
    "mapped_category",
]
