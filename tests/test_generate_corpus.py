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
    # measured: 37 of 48 agree. The other 11 contradict themselves ("A. Not very happy ... The correct
    # answer is indeed D"), list two options on separate lines, or name a letter the question does not
    # have; the rules and the reader part ways there. A parser change that loses ground fails here.
    assert len(disagreements) <= 11, disagreements
    answered = [s for s in samples if expected[s["id"]] != "invalid"]
    assert len(answered) == 21
