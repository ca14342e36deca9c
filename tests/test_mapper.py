"""The open-answer mapper: each answer becomes one option, a refusal, an invalid answer or an abstention."""

from __future__ import annotations

import math

import pytest
from sklearn.metrics import cohen_kappa_score

from culture_probe.errors import CultureProbeError
from culture_probe.mapper import (
    MappedAnswer,
    agreement_with_labels,
    judge_prompt,
    map_open_answers,
)

IMPORTANCE = ["Very important", "Rather important", "Not very important", "Not at all important"]
DEMOCRACY = [
    "Not at all important",
    "Slightly important",
    "Moderately important",
    "Very important",
    "Absolutely important",
]
AGREEMENT = ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]
HAPPINESS = ["Very happy", "Quite happy", "Not very happy", "Not at all happy"]
JUSTIFIABLE = [
    "Never justifiable",
    "Rarely justifiable",
    "Sometimes justifiable",
    "Mostly justifiable",
    "Always justifiable",
]


def options_of(texts: list[str], options: list[str]) -> list[int | None]:
    mapped = map_open_answers(texts, [options] * len(texts), ["en"] * len(texts))
    return [answer.option for answer in mapped]


def test_an_answer_naming_one_option_maps_to_its_canonical_index() -> None:
    texts = ["Family is very important to me.", "Honestly, not at all important.", "rather"]
    mapped = map_open_answers(texts, [IMPORTANCE] * 3, ["en"] * 3)
    assert [m.option for m in mapped] == [0, 3, 1]
    assert {m.outcome for m in mapped} == {"answered"}


def test_qualifiers_and_negations_grade_the_answer_on_the_options_own_scale() -> None:
    texts = [
        "Family is everything to me.",  # a degree on its own: the top of the scale
        "It matters a lot.",  # qualifier after the head
        "Religion isn't that important to me.",  # negation softens: not very
        "Religion doesn't matter much in my life.",
        "Politics is not important at all.",
        "I think work is quite important.",
    ]
    assert options_of(texts, IMPORTANCE) == [0, 0, 2, 2, 3, 1]


def test_the_same_words_fall_on_different_options_of_a_five_point_scale() -> None:
    # "extremely" is the top of both scales; "very" is the top of one and the fourth of the other
    texts = ["Democracy is extremely important.", "It is very important.", "Not very important."]
    assert options_of(texts, IMPORTANCE) == [0, 0, 2]
    assert options_of(texts, DEMOCRACY) == [4, 3, 1]


def test_agreement_happiness_and_frequency_scales_are_read_with_the_same_rules() -> None:
    assert options_of(
        ["I strongly agree.", "Yes, I agree.", "I don't agree with that.", "I totally disagree."],
        AGREEMENT,
    ) == [0, 1, 2, 3]
    assert options_of(["I am pretty happy.", "I'm not very happy these days."], HAPPINESS) == [1, 2]
    assert options_of(
        ["It can never be justified.", "It is sometimes justifiable."], JUSTIFIABLE
    ) == [0, 2]


def test_an_unqualified_degree_the_scale_lacks_is_not_guessed() -> None:
    # "important" could be "very" or "rather"; "happy" could be "very" or "quite"
    mapped = map_open_answers(
        ["Family is important to me.", "I am happy."], [IMPORTANCE, HAPPINESS], ["en", "en"]
    )
    assert [(m.option, m.outcome) for m in mapped] == [(None, "abstained"), (None, "abstained")]


def test_an_answer_stating_two_options_abstains() -> None:
    mapped = map_open_answers(
        ["Politics is not important to me, but family is very important."], [IMPORTANCE], ["en"]
    )
    assert mapped == [MappedAnswer(None, "abstained", "conflict", 0.0)]


def test_a_longer_option_inside_the_answer_wins_over_the_shorter_one_it_contains() -> None:
    mapped = map_open_answers(["I strongly disagree with that."], [AGREEMENT], ["en"])
    assert mapped == [MappedAnswer(3, "answered", "degree", 1.0)]


def test_option_texts_match_in_the_prompts_language() -> None:
    mapped = map_open_answers(
        ["家庭对我来说非常重要。", "Para mí, la familia es muy importante."],
        [
            ["非常重要", "比较重要", "不太重要", "一点也不重要"],
            ["Muy importante", "Bastante importante"],
        ],
        ["zh", "es"],
    )
    assert [(m.option, m.rule) for m in mapped] == [(0, "option_text"), (0, "option_text")]


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


def test_an_answer_without_options_is_refused_by_position() -> None:
    with pytest.raises(CultureProbeError, match="answer 1 has 0 options"):
        map_open_answers(["a", "b"], [IMPORTANCE, []], ["en", "en"])


def test_the_judge_prompt_letters_the_options_in_the_order_given() -> None:
    prompt = judge_prompt("  Family first. ", ["Very important", "Not important"])
    assert prompt.splitlines()[:4] == [
        'Answer: "Family first."',
        "Which option does this answer choose?",
        "A. Very important",
        "B. Not important",
    ]


def _mapped(category: str) -> MappedAnswer:
    if category.isdigit():
        return MappedAnswer(int(category), "answered", "degree", 1.0)
    outcome = {"refused": "refused", "invalid": "invalid"}.get(category, "abstained")
    return MappedAnswer(None, outcome, "no_rule", 0.0)


def test_agreement_with_labels_matches_a_hand_count_and_scikit_learns_kappa() -> None:
    labels = ["0", "0", "1", "2", "abstain", "abstain", "refused", "1", "3", "abstain"]
    got = ["0", "1", "1", "2", "abstain", "0", "refused", "invalid", "3", "abstain"]
    result = agreement_with_labels(labels, [_mapped(c) for c in got], resamples=500)
    # decided: the 7 neither abstained nor invalid (a refusal is decided); 5 of them as the reader
    # (not "1" for a "0" label, not "0" for an "abstain" label)
    assert result.answers == 10
    assert result.decided == 7
    assert result.abstention_rate == pytest.approx(0.3)
    assert result.accuracy == pytest.approx(5 / 7)
    # the reader put 6 answers on options; the mapper placed 4 of them on the same option
    assert result.correct_options == pytest.approx(4 / 6)
    as_reader = ["abstain" if c == "invalid" else c for c in got]
    assert result.kappa == pytest.approx(cohen_kappa_score(labels, as_reader))
    low, high = result.kappa_interval
    assert low < result.kappa < high
    assert result.confusion[("1", "abstain")] == 1


def test_kappa_is_nan_where_chance_agreement_is_perfect() -> None:
    result = agreement_with_labels(["0", "0"], [_mapped("0"), _mapped("0")], resamples=20)
    assert result.accuracy == 1.0
    assert math.isnan(result.kappa)
