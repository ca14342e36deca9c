"""A judge model for the answers no rule decides: which option does this answer choose?

Any :class:`~culture_probe.backends.Backend` can judge: it scores a prompt that quotes the answer
and lists the options, and its first-token probabilities of the option letters are read as its
choice. Small models favour a position whatever the content (the values study finds the option
order dominating the first-token answer), so each answer is asked twice, with the options in
canonical and in reversed order, and the two distributions are averaged per option. The judge's
choice counts only where that average reaches :data:`JUDGE_THRESHOLD`.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

from culture_probe.backends import Backend, ScoredPrompt, ScoringRequest
from culture_probe.mapper._answer import MappedAnswer

#: the judge's averaged probability of its chosen option below which the mapper abstains
JUDGE_THRESHOLD = 0.5


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


def ask_judge(
    judge: Backend,
    texts: Sequence[str],
    options: Sequence[Sequence[str]],
    languages: Sequence[str],
    threshold: float = JUDGE_THRESHOLD,
) -> list[MappedAnswer]:
    """The judge's choice per answer, kept where its order-averaged probability reaches threshold."""
    requests = []
    for position, (text, choices, language) in enumerate(
        zip(texts, options, languages, strict=True)
    ):
        for order, shown in (("canonical", list(choices)), ("reversed", list(choices)[::-1])):
            requests.append(
                ScoringRequest(
                    prompt_id=f"open-answer-{position}-{order}",
                    system="",
                    user=judge_prompt(text, shown),
                    option_labels=tuple(string.ascii_uppercase[: len(shown)]),
                    options=tuple(shown),
                    language=language,
                )
            )
    results = judge.score(requests) if requests else []
    return [
        _judged(results[2 * position], results[2 * position + 1], threshold)
        for position in range(len(texts))
    ]


def _judged(canonical: ScoredPrompt, reversed_: ScoredPrompt, threshold: float) -> MappedAnswer:
    """One answer's two judgements averaged per canonical option."""
    if not canonical.label_probs or not reversed_.label_probs:
        return MappedAnswer(None, "abstained", "judge", 0.0)
    averaged = [
        (first + second) / 2
        for first, second in zip(canonical.label_probs, reversed_.label_probs[::-1], strict=True)
    ]
    best = max(range(len(averaged)), key=lambda position: averaged[position])
    confidence = float(averaged[best])
    if confidence < threshold:
        return MappedAnswer(None, "abstained", "judge", confidence)
    return MappedAnswer(best, "answered", "judge", confidence)
