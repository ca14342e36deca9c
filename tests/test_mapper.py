"""The open-answer mapper: each answer becomes one option, a refusal, an invalid answer or an abstention."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import cohen_kappa_score

from culture_probe.backends import ScoringRequest
from culture_probe.errors import CultureProbeError, InputError
from culture_probe.mapper import (
    JUDGE_THRESHOLD,
    MappedAnswer,
    agreement_with_labels,
    judge_prompt,
    map_open_answers,
)

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "mapper_accuracy.py"
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


def test_idioms_echoed_questions_and_doubt_place_nothing() -> None:
    trust_zh = ["非常同意", "同意", "不同意", "非常不同意"]
    mapped = map_open_answers(
        [
            "I'm so happy to share my story with you.",  # "happy to": an idiom
            "I'm not sure if I agree or disagree.",
            "你同意？",  # the prompt's question echoed, not an answer
            "It is essential to consider what matters to me.",  # a remark, a relative clause
        ],
        [HAPPINESS, AGREEMENT, trust_zh, IMPORTANCE],
        ["en", "en", "zh", "en"],
    )
    assert [m.outcome for m in mapped] == ["abstained"] * 4


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


def _accuracy_benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("mapper_accuracy", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_the_offline_mapper_agrees_with_the_hand_labels_where_it_decides() -> None:
    benchmark = _accuracy_benchmark()
    answers = benchmark.read_labelled_answers()
    assert len(answers) >= 300
    assert len({answer.source for answer in answers}) >= 2
    result = agreement_with_labels(
        [a.label for a in answers], benchmark.map_labelled(answers), resamples=200
    )
    # measured on the 316 answers: accuracy 0.887 where it decides, abstention 0.775, kappa 0.72
    # (benchmarks/RESULTS.md, "Open-answer mapper"); a rule change that loses ground fails here
    assert result.accuracy >= 0.85
    assert result.abstention_rate <= 0.80
    assert result.kappa >= 0.65


def test_a_label_that_is_no_option_of_its_answer_is_refused_with_its_line(tmp_path: Path) -> None:
    rows = (BENCHMARK.parents[1] / "tests" / "data" / "open_answers.csv").read_text().splitlines()
    header, first = rows[0], rows[1]
    bad = tmp_path / "labels.csv"
    bad.write_text(f"{header}\n{first}\n{first.replace(',abstain,', ',7,', 1)}\n")
    with pytest.raises(InputError, match=r"labels\.csv:3: key 'label': label '7'"):
        _accuracy_benchmark().read_labelled_answers(bad)


@pytest.mark.slow
def test_the_judge_averages_both_option_orders_of_the_real_model(hf_backend: Any) -> None:
    texts = ["Family is very important to me.", "My family comes first, always."]
    mapped = map_open_answers(texts, [IMPORTANCE] * 2, ["en"] * 2, judge=hf_backend)
    assert mapped[0] == MappedAnswer(0, "answered", "degree", 1.0)  # the rules decide: not judged
    assert mapped[1].rule == "judge"
    # the same two prompts scored directly: canonical order, then reversed (positions mirrored)
    labels = ("A", "B", "C", "D")
    canonical, reversed_ = hf_backend.score(
        [
            ScoringRequest("c", "", judge_prompt(texts[1], IMPORTANCE), labels),
            ScoringRequest("r", "", judge_prompt(texts[1], IMPORTANCE[::-1]), labels),
        ]
    )
    averaged = [
        (a + b) / 2 for a, b in zip(canonical.label_probs, reversed_.label_probs[::-1], strict=True)
    ]
    assert mapped[1].confidence == pytest.approx(max(averaged), abs=1e-6)
    best = averaged.index(max(averaged))
    expected = best if max(averaged) >= JUDGE_THRESHOLD else None
    assert mapped[1].option == expected
