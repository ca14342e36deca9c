"""Open answers mapped back to the options they choose, or left unassigned.

At the ``open`` elicitation level the model answers in its own words with the options hidden
("Family is the most important thing in my life."). To count such an answer as a choice, this module
assigns it to one of the item's options, in canonical order, or says why it cannot:

- ``refused``: the answer declines ("As an AI, I don't have personal opinions");
- ``invalid``: there is no answer (empty text);
- ``abstained``: the answer fits no option, or several, or the mapper is not sure which;
- ``answered``: one option, with the rule that chose it and how sure it is.

The rules run first and offline: a refusal, then the text of one option in the answer ("very
important") or the answer as a fragment of one option ("rather"), as ``generate`` mode reads a written
answer (:func:`culture_probe.backends.generation.match_option_text`). What they leave goes to the
judge where one is given: any :class:`~culture_probe.backends.Backend` asked which option the answer
chooses, read off its first-token probabilities, and kept only above :data:`JUDGE_THRESHOLD`.
Abstentions, refusals and invalid answers are outcomes: they are counted, never dropped. How often
the mapper agrees with a careful reader is measured in ``benchmarks/mapper_accuracy.py`` against
answers labelled by hand (``docs/statistics.md``, "Open answers and the mapper").
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from culture_probe.backends import Backend, ScoringRequest
from culture_probe.backends.generation import is_refusal, match_option_text
from culture_probe.errors import CultureProbeError

#: what a mapped answer can be; ``abstained`` is an answer that no option fits with confidence
MAPPED_OUTCOMES = ("answered", "abstained", "refused", "invalid")

#: the judge's probability of its chosen option below which the mapper abstains
JUDGE_THRESHOLD = 0.5


@dataclass(frozen=True)
class MappedAnswer:
    """One open answer read as an option.

    Attributes:
        option: the canonical index of the chosen option; None unless ``outcome`` is ``answered``.
        outcome: one of :data:`MAPPED_OUTCOMES`.
        rule: the rule or judge that decided (``refusal``, ``option_text``, ``judge``, ...).
        confidence: how sure the deciding rule is, 0 to 1 (a rule's match is 1, a judge's is its
            probability of the chosen option).
    """

    option: int | None
    outcome: str
    rule: str
    confidence: float


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
        CultureProbeError: when the three sequences differ in length or an answer has no options.

    Example:
        >>> options = ["Very important", "Rather important", "Not very important"]
        >>> [m.option for m in map_open_answers(["It is not very important."], [options], ["en"])]
        [2]
        >>> map_open_answers(["I'm sorry, I can't answer that."], [options], ["en"])[0].outcome
        'refused'
    """
    _check_lengths(texts, options, languages)
    mapped = [_apply_rules(text, choices) for text, choices in zip(texts, options, strict=True)]
    if judge is None:
        return mapped
    undecided = [index for index, answer in enumerate(mapped) if answer.rule == "no_rule"]
    judged = _ask_judge(
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
        if not choices:
            raise CultureProbeError(
                f"map_open_answers: answer {position} has no options to be mapped to"
            )


def _apply_rules(text: str, options: Sequence[str]) -> MappedAnswer:
    """The outcome the offline rules give one answer; rule ``no_rule`` where none decides."""
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if not cleaned:
        return MappedAnswer(None, "invalid", "empty", 1.0)
    if is_refusal(cleaned):
        return MappedAnswer(None, "refused", "refusal", 1.0)
    position = match_option_text(cleaned, options)
    if position is not None:
        return MappedAnswer(position, "answered", "option_text", 1.0)
    return MappedAnswer(None, "abstained", "no_rule", 0.0)


def judge_prompt(text: str, options: Sequence[str]) -> str:
    """The question put to a judge: the answer, then the options lettered A, B, ...

    Example:
        >>> print(judge_prompt("Family comes first.", ["Very important", "Not important"]))
        Answer: "Family comes first."
        Which option does this answer choose?
        A. Very important
        B. Not important
        Answer with the letter of one option only.
    """
    lines = [f'Answer: "{text.strip()}"', "Which option does this answer choose?"]
    lines += [
        f"{string.ascii_uppercase[position]}. {option}" for position, option in enumerate(options)
    ]
    lines.append("Answer with the letter of one option only.")
    return "\n".join(lines)


def _ask_judge(
    judge: Backend,
    texts: Sequence[str],
    options: Sequence[Sequence[str]],
    languages: Sequence[str],
) -> list[MappedAnswer]:
    """The judge's choice per answer, kept where its probability reaches the threshold."""
    if not texts:
        return []
    requests = [
        ScoringRequest(
            prompt_id=f"open-answer-{position}",
            system="",
            user=judge_prompt(text, choices),
            option_labels=tuple(string.ascii_uppercase[: len(choices)]),
            options=tuple(choices),
            language=language,
        )
        for position, (text, choices, language) in enumerate(
            zip(texts, options, languages, strict=True)
        )
    ]
    return [_judged(result.outcome, result.label_probs) for result in judge.score(requests)]


def _judged(outcome: str, probabilities: Sequence[float]) -> MappedAnswer:
    if outcome != "answered" or not probabilities:
        return MappedAnswer(None, "abstained", "judge", 0.0)
    best = max(range(len(probabilities)), key=lambda position: probabilities[position])
    confidence = float(probabilities[best])
    if confidence < JUDGE_THRESHOLD:
        return MappedAnswer(None, "abstained", "judge", confidence)
    return MappedAnswer(best, "answered", "judge", confidence)
