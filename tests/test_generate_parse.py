"""Answer parsing in generate mode: hand-written hard cases in six languages.

Each case is a generated text, the options as shown (labels and texts in display order, in the
prompt's language) and what a careful human reader takes the answer to be.
"""

from __future__ import annotations

import pytest

from culture_probe.backends.base import ScoredPrompt, ScoringRequest
from culture_probe.backends.generation import (
    generated_result,
    normalise_text,
    outcome_rates,
    parse_answer,
)
from culture_probe.scoring import to_canonical

LETTERS = ("A", "B", "C", "D")
ENGLISH = ("Very important", "Rather important", "Not very important", "Not at all important")
SPANISH = ("Muy importante", "Bastante importante", "No muy importante", "Nada importante")
CHINESE = ("非常重要", "比较重要", "不太重要", "完全不重要")
JAPANESE = ("非常に重要", "やや重要", "あまり重要でない", "全く重要でない")
ARABIC = ("مهم جدا", "مهم إلى حد ما", "غير مهم جدا", "غير مهم على الإطلاق")
HINDI = ("बहुत महत्वपूर्ण", "काफी महत्वपूर्ण", "बहुत महत्वपूर्ण नहीं", "बिल्कुल महत्वपूर्ण नहीं")

ANSWERED = [
    # letters in the usual shapes
    ("B", ENGLISH, "en", 1),
    ("B.", ENGLISH, "en", 1),
    ("(C)", ENGLISH, "en", 2),
    ("**D**", ENGLISH, "en", 3),
    ("[A] Very important", ENGLISH, "en", 0),
    # a stated answer that picks one line of a list
    ("B. Rather important\nE. Not at all\n\nThe correct answer is B.", ENGLISH, "en", 1),
    ("The answer is indeed C", ENGLISH, "en", 2),
    ("Answer: C", ENGLISH, "en", 2),
    ("The answer is B. Rather important", ENGLISH, "en", 1),
    ("I would choose D, because religion plays no role for me.", ENGLISH, "en", 3),
    # a bare label followed by its own option text; the article "A" is not a label here
    ("A Very important", ENGLISH, "en", 0),
    ("A good question. I would say rather important.", ENGLISH, "en", 1),
    # option text, case, width and markdown do not matter
    ("rather important", ENGLISH, "en", 1),
    ("Family is **Not at all important** to me.", ENGLISH, "en", 3),
    # "not very important" contains "very important": the longer match wins
    ("For me it is not very important.", ENGLISH, "en", 2),
    # a fragment only one option has
    ("Rather", ENGLISH, "en", 1),
    # a hedge that still names an option is an answer, not a refusal
    ("As an AI I have no family, but many people would say A.", ENGLISH, "en", 0),
    # Spanish: accents and case are ignored
    ("Respuesta: B", SPANISH, "es", 1),
    ("Para mí es BASTANTE IMPORTANTE.", SPANISH, "es", 1),
    ("nada importánte", SPANISH, "es", 3),
    # Chinese and Japanese: a lone Latin letter inside CJK text, and full-width letters
    ("我选择B。", CHINESE, "zh", 1),
    ("答案是：Ｃ", CHINESE, "zh", 2),
    ("对我来说比较重要", CHINESE, "zh", 1),
    ("答えはDです。", JAPANESE, "ja", 3),
    ("やや重要だと思います。", JAPANESE, "ja", 1),
    # Arabic and Hindi option texts
    ("الإجابة هي A", ARABIC, "ar", 0),
    ("أعتقد أنه مهم إلى حد ما", ARABIC, "ar", 1),
    ("मेरा उत्तर है: B", HINDI, "hi", 1),
    ("मेरे लिए यह बिल्कुल महत्वपूर्ण नहीं है।", HINDI, "hi", 3),
]

REFUSED = [
    ("I'm sorry, but I can't answer questions about personal beliefs.", ENGLISH, "en"),
    ("As an AI language model, I do not have personal opinions.", ENGLISH, "en"),
    ("I cannot provide an answer to that.", ENGLISH, "en"),
    ("Lo siento, no puedo responder a esa pregunta.", SPANISH, "es"),
    ("作为一个人工智能，我无法回答这个问题。", CHINESE, "zh"),
    ("申し訳ありませんが、その質問にはお答えできません。", JAPANESE, "ja"),
    ("عذراً، لا أستطيع الإجابة على هذا السؤال.", ARABIC, "ar"),
    ("क्षमा करें, मैं इस प्रश्न का उत्तर नहीं दे सकता।", HINDI, "hi"),
]

INVALID = [
    ("", ENGLISH, "en"),
    ("   \n", ENGLISH, "en"),
    ("It depends on the situation.", ENGLISH, "en"),
    # several options at once
    ("A or B", ENGLISH, "en"),
    ("Very important or rather important, hard to say.", ENGLISH, "en"),
    # a fragment several options share
    ("important", ENGLISH, "en"),
    # a letter that is not a label of this question
    ("E.", ENGLISH, "en"),
    # a list of options, not an answer, even where the list runs past the options
    ("A. Very important\nB. Rather important", ENGLISH, "en"),
    ("A. Very important\nE. Both C and D", ENGLISH, "en"),
    # a first line that names one option and a stated answer that names another
    ("A. Very important\n\nThe best answer is indeed D. Not at all important.", ENGLISH, "en"),
    ("Depende.", SPANISH, "es"),
    ("重要", CHINESE, "zh"),
]


@pytest.mark.parametrize(("text", "options", "language", "expected"), ANSWERED)
def test_answers_are_read_back_to_the_option_a_reader_would_pick(
    text: str, options: tuple[str, ...], language: str, expected: int
) -> None:
    parsed = parse_answer(text, LETTERS, options, language)
    assert parsed.outcome == "answered", text
    assert parsed.position == expected, text


@pytest.mark.parametrize(("text", "options", "language"), REFUSED)
def test_refusals_in_six_languages_are_refusals(
    text: str, options: tuple[str, ...], language: str
) -> None:
    assert parse_answer(text, LETTERS, options, language).outcome == "refused"


@pytest.mark.parametrize(("text", "options", "language"), INVALID)
def test_answers_naming_no_option_or_several_are_invalid(
    text: str, options: tuple[str, ...], language: str
) -> None:
    assert parse_answer(text, LETTERS, options, language).outcome == "invalid"


def test_number_labels_are_read_without_taking_years_for_labels() -> None:
    numbers = ("1", "2", "3", "4")
    assert parse_answer("3", numbers, ENGLISH).position == 2
    assert parse_answer("Option 4: Not at all important", numbers, ENGLISH).position == 3
    assert parse_answer("In 2019 I said 10", numbers, ENGLISH).outcome == "invalid"


def test_labels_ten_and_up_are_not_confused_with_label_one() -> None:
    labels = tuple(str(number) for number in range(1, 12))
    options = tuple(f"choice {number}" for number in range(1, 12))
    assert parse_answer("11.", labels, options).position == 10
    assert parse_answer("1.", labels, options).position == 0


def test_answer_positions_are_display_positions_not_canonical_ones() -> None:
    reversed_options = ENGLISH[::-1]
    # shown reversed, "Very important" is at display position D
    assert parse_answer("Very important", LETTERS, reversed_options).position == 3


def test_normalised_text_ignores_width_case_accents_and_markdown() -> None:
    assert normalise_text("**Ｎａｄａ  IMPORTÁNTE**.") == "nada importante"


def request(options: tuple[str, ...] = ENGLISH) -> ScoringRequest:
    return ScoringRequest("p1", "", "q", LETTERS, seed=3, options=options, language="en")


def test_an_answer_becomes_one_hot_on_the_chosen_display_position() -> None:
    result = generated_result(request(), "C. Not very important")
    assert result == ScoredPrompt(
        "p1", (0.0, 0.0, 1.0, 0.0), 1.0, "answered", "C. Not very important"
    )


def test_refusals_and_invalid_answers_carry_no_distribution_and_keep_their_text() -> None:
    refused = generated_result(request(), "I'm sorry, I cannot answer that.")
    assert (refused.outcome, refused.label_probs, refused.option_mass) == ("refused", (), 0.0)
    assert refused.generated == "I'm sorry, I cannot answer that."
    row = to_canonical(refused, [3, 2, 1, 0])
    assert row == {
        "probs": [],
        "option_mass": 0.0,
        "answer": -1,
        "outcome": "refused",
        "generated": "I'm sorry, I cannot answer that.",
        "failure": "",  # the model's own outcome: a resume does not ask again
        "mapped_by": "",  # generate mode's own parse, not a written or open level's reading
    }


def test_an_answer_in_reversed_display_maps_to_its_canonical_option() -> None:
    result = generated_result(request(ENGLISH[::-1]), "A")  # shown first: "Not at all important"
    row = to_canonical(result, [3, 2, 1, 0])
    assert row["probs"] == [0.0, 0.0, 0.0, 1.0]
    assert row["answer"] == 3


def test_outcome_rates_count_each_outcome() -> None:
    results = [
        generated_result(request(), text)
        for text in ("A", "B", "I'm sorry, I can't answer that.", "It depends.")
    ]
    assert outcome_rates(results) == {"answered": 0.5, "refused": 0.25, "invalid": 0.25}
