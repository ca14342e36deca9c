"""The open-answer mapper: each answer becomes one option, a refusal, an invalid answer or an abstention."""

from __future__ import annotations

import pytest

from culture_probe.errors import CultureProbeError
from culture_probe.mapper import MappedAnswer, map_open_answers

IMPORTANCE = ["Very important", "Rather important", "Not very important", "Not at all important"]
AGREEMENT = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]


def test_an_answer_naming_one_option_maps_to_its_canonical_index() -> None:
    texts = ["Family is very important to me.", "Honestly, not at all important.", "rather"]
    mapped = map_open_answers(texts, [IMPORTANCE] * 3, ["en"] * 3)
    assert [m.option for m in mapped] == [0, 3, 1]
    assert {m.outcome for m in mapped} == {"answered"}


def test_a_longer_option_inside_the_answer_wins_over_the_shorter_one_it_contains() -> None:
    # "strongly disagree" contains "disagree" and "strongly agree" does not contain "agree" as the
    # answer's match: the longest option text the answer holds is its choice
    mapped = map_open_answers(["I strongly disagree with that."], [AGREEMENT], ["en"])
    assert mapped == [MappedAnswer(3, "answered", "degree", 1.0)]


def test_refusals_empty_answers_and_unmatched_answers_are_outcomes_not_gaps() -> None:
    texts = ["As an AI, I don't have personal opinions.", "   ", "Politics is a complex topic."]
    mapped = map_open_answers(texts, [IMPORTANCE] * 3, ["en"] * 3)
    assert [(m.option, m.outcome) for m in mapped] == [
        (None, "refused"),
        (None, "invalid"),
        (None, "abstained"),
    ]


def test_sequences_of_different_lengths_are_refused_with_their_counts() -> None:
    with pytest.raises(CultureProbeError, match="2 answers, 1 options lists and 2 languages"):
        map_open_answers(["a", "b"], [IMPORTANCE], ["en", "en"])
