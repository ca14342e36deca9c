"""The open-answer mapper against answers labelled by hand.

tests/data/open_answers.csv holds open answers of the embedded model (values questions with the
options hidden, several decoding settings and languages), each labelled by reading it: the canonical
index of the option it chooses, ``abstain`` where no single option fits, or ``refused``. This script
maps every answer with :func:`culture_probe.mapper.map_open_answers` and prints, overall and per
setting: how many answers, the mapper's abstention rate, its accuracy on the answers it does not
abstain on (Wilson 95% interval), the share of the reader's option answers it puts on the same
option, and Cohen's kappa over all answers with a percentile bootstrap 95% interval; then the
confusion of the reader's labels with the mapper's categories and the rules that decided.

Run: nice python benchmarks/mapper_accuracy.py [--labels tests/data/open_answers.csv]
[--judge embedded] [--threshold 0.5] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from statsmodels.stats.proportion import proportion_confint

from culture_probe.backends import Backend, create_backend
from culture_probe.errors import InputError
from culture_probe.mapper import (
    READER_LABELS,
    MappedAnswer,
    MapperAgreement,
    agreement_with_labels,
    map_open_answers,
    mapped_category,
)

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "open_answers.csv"
COLUMNS = ("answer_id", "source", "item_id", "language", "options", "answer", "label")


@dataclass(frozen=True)
class LabelledAnswer:
    """One open answer and what its reader took it to be."""

    answer_id: str
    source: str
    item_id: str
    language: str
    options: tuple[str, ...]
    answer: str
    label: str


def read_labelled_answers(path: Path = LABELS) -> list[LabelledAnswer]:
    """The labelled answers of a CSV file, each label checked against its options.

    Raises:
        InputError: a column is missing, the options are not a JSON list of strings, or a label is
            neither an option index nor one of ``abstain``/``refused``; the error names the line.
    """
    answers = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"missing columns {missing}; expected {list(COLUMNS)}", path=path)
        line = reader.line_num + 1
        for row in reader:  # an answer may span lines: a row starts after the previous one ends
            options = _options(row["options"], path, line)
            _check_label(row["label"], len(options), path, line)
            answers.append(
                LabelledAnswer(
                    row["answer_id"],
                    row["source"],
                    row["item_id"],
                    row["language"],
                    options,
                    row["answer"],
                    row["label"],
                )
            )
            line = reader.line_num + 1
    return answers


def _options(value: str, path: Path, line: int) -> tuple[str, ...]:
    try:
        options = json.loads(value)
    except json.JSONDecodeError:
        options = None
    if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
        raise InputError(
            f"'{value[:40]}' is not a JSON list of option texts",
            path=path,
            line=line,
            key="options",
        )
    return tuple(options)


def _check_label(label: str, n_options: int, path: Path, line: int) -> None:
    valid = [str(index) for index in range(n_options)] + list(READER_LABELS)
    if label not in valid:
        raise InputError(
            f"label '{label}' is not an option index of this answer's {n_options} options, "
            f"nor one of {list(READER_LABELS)}",
            path=path,
            line=line,
            key="label",
        )


def map_labelled(answers: list[LabelledAnswer], judge: Backend | None = None) -> list[MappedAnswer]:
    """The mapper's reading of every labelled answer."""
    return map_open_answers(
        [a.answer for a in answers],
        [a.options for a in answers],
        [a.language for a in answers],
        judge=judge,
    )


def summary_row(name: str, result: MapperAgreement) -> str:
    """One table row: answers, abstention, accuracy with its Wilson interval, recall, kappa."""
    correct = round(result.accuracy * result.decided)
    low, high = proportion_confint(correct, result.decided, method="wilson")
    kappa_low, kappa_high = result.kappa_interval
    placed = (
        "no option labels"
        if math.isnan(result.correct_options)
        else (f"{result.correct_options:.1%}")
    )
    return (
        f"| {name} | {result.answers} | {result.abstention_rate:.1%} | {result.accuracy:.1%} "
        f"[{low:.1%}, {high:.1%}] | {placed} | {result.kappa:.3f} "
        f"[{kappa_low:.3f}, {kappa_high:.3f}] |"
    )


def report(answers: list[LabelledAnswer], mapped: list[MappedAnswer], resamples: int) -> str:
    """The markdown tables: overall and per setting, the confusion, the deciding rules."""
    lines = [
        "| answers | n | abstained | accuracy where decided [95%] | reader's options placed "
        "| Cohen's kappa [95%] |",
        "|---|---|---|---|---|---|",
    ]
    labels = [a.label for a in answers]
    lines.append(summary_row("all", agreement_with_labels(labels, mapped, resamples)))
    for source in sorted({a.source for a in answers}):
        chosen = [i for i, a in enumerate(answers) if a.source == source]
        result = agreement_with_labels(
            [labels[i] for i in chosen], [mapped[i] for i in chosen], resamples
        )
        lines.append(summary_row(source, result))
    for language in ("en", "other languages"):
        chosen = [i for i, a in enumerate(answers) if (a.language == "en") == (language == "en")]
        result = agreement_with_labels(
            [labels[i] for i in chosen], [mapped[i] for i in chosen], resamples
        )
        lines.append(summary_row(language, result))
    lines += ["", *confusion_table(labels, mapped), "", *rule_table(labels, mapped)]
    return "\n".join(lines)


def confusion_table(labels: list[str], mapped: list[MappedAnswer]) -> list[str]:
    """Reader's label (rows) by the mapper's category (columns)."""
    got = [mapped_category(answer) for answer in mapped]
    categories = sorted(set(labels) | set(got), key=lambda c: (not c.isdigit(), c))
    counts = Counter(zip(labels, got, strict=True))
    lines = [
        "| reader \\ mapper | " + " | ".join(categories) + " |",
        "|---" * (len(categories) + 1) + "|",
    ]
    for label in categories:
        cells = [str(counts.get((label, category), 0)) for category in categories]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def rule_table(labels: list[str], mapped: list[MappedAnswer]) -> list[str]:
    """How many answers each rule decided, and how many of them as the reader did."""
    lines = ["| rule | answers | as the reader |", "|---|---|---|"]
    for rule in sorted({answer.rule for answer in mapped}):
        chosen = [i for i, answer in enumerate(mapped) if answer.rule == rule]
        agree = sum(labels[i] == mapped_category(mapped[i]) for i in chosen)
        lines.append(f"| {rule} | {len(chosen)} | {agree} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--judge", choices=("none", "embedded"), default="none")
    parser.add_argument("--resamples", type=int, default=2000)
    arguments = parser.parse_args()
    answers = read_labelled_answers(arguments.labels)
    judge = create_backend("hf", model="embedded") if arguments.judge == "embedded" else None
    started = time.perf_counter()
    mapped = map_labelled(answers, judge)
    seconds = time.perf_counter() - started
    print(f"{len(answers)} answers mapped in {seconds:.1f} s (judge: {arguments.judge})\n")
    print(report(answers, mapped, arguments.resamples))


if __name__ == "__main__":
    main()
