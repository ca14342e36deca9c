"""The answer parser on 48 real answers of the embedded model, annotated by hand.

tests/data/generated/make_answer_corpus.py sampled them (values study, temperatures 0.7 and 1.2);
smollm2_answers_expected.json holds what a careful reader takes each answer to be.
"""

from __future__ import annotations

import json
from pathlib import Path

from culture_probe.backends.generation import parse_answer

DATA = Path(__file__).parent / "data" / "generated"


def test_the_parser_reads_real_answers_as_a_careful_reader_does() -> None:
    samples = json.loads((DATA / "smollm2_answers.json").read_text())
    expected = json.loads((DATA / "smollm2_answers_expected.json").read_text())["expected"]
    assert len(samples) == len(expected) == 48
    disagreements = []
    for sample in samples:
        parsed = parse_answer(
            sample["text"], sample["labels"], sample["options"], sample["language"]
        )
        got = parsed.position if parsed.outcome == "answered" else parsed.outcome
        if got != expected[sample["id"]]:
            disagreements.append((sample["text"], got, expected[sample["id"]]))
    # measured: 43 of 48 agree (37 before lists and contradicting "the answer is" lines became
    # invalid). The other 5 hinge on what a reader makes of "To determine the correct answer (A)",
    # "it is A. Very happy" (A is "Not at all happy"), a letter the question does not have ("F.
    # Slightly important"), and a list the reader took for its first line ("A) ...\nE). Yes").
    # A parser change that loses ground fails here.
    assert len(disagreements) <= 5, disagreements
    answered = [s for s in samples if expected[s["id"]] != "invalid"]
    assert len(answered) == 21
