"""Real prompts in every enumerator and separator, scored by the embedded model.

The labels the plan gives must be what the model answers with: most of its next-token probability on
the labels where the format is the one it was tuned on ("A."), clearly more than chance elsewhere, and
each label carried back to the option it was shown with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from culture_probe.design import build_plan
from culture_probe.scoring import requests_for, to_canonical
from culture_probe.study import load_study

ITEMS = """\
items:
  - id: sky
    scale: nominal
    options: [Blue, Green, Red, Yellow]
    paraphrases: ["What colour is the sky on a clear day?"]
  - id: spider
    scale: nominal
    options: [Two, Four, Six, Eight]
    paraphrases: ["How many legs does a spider have?"]
"""
ENUMERATORS = ["A.", "(a)", "1.", "i.", "none"]
#: SmolLM2-135M puts 0.78-0.87 of its next-token mass on "A"-style labels, 0.04-0.41 on the others
#: (it often starts with "(" or a word); chance for four labels of a 49,152-token vocabulary is ~1e-4.
SHOWN = {
    "A.": "{label}. {text}",
    "(a)": "({label}) {text}",
    "1.": "{label}. {text}",
    "i.": "{label}. {text}",
    "none": "{text}",
}
MIN_MASS = {"A.": 0.5, "(a)": 0.03, "1.": 0.1, "i.": 0.1, "none": 0.03}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, repo: Path, hf_backend: Any) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("formats")
    (folder / "items.yaml").write_text(ITEMS)
    (folder / "study.yaml").write_text(
        "study: formats\n"
        f"taxonomy: {repo / 'taxonomy' / 'taxonomy.yaml'}\n"
        "items: items.yaml\n"
        f"template: {repo / 'probes' / 'templates' / 'multiple_choice.en.j2'}\n"
        f"framings: {repo / 'probes' / 'framings' / 'persona.en.yaml'}\n"
        "use_framings: [imagine]\n"
        "axes: {region: [JP]}\n"
        "option_orders: [canonical, reversed]\n"
        "formats:\n"
        f"  enumerator: {ENUMERATORS}\n"
        '  separator: ["\\n", "; "]\n'
    )
    plan = build_plan(load_study(folder / "study.yaml"))
    assert len(plan) == 2 * 2 * len(ENUMERATORS) * 2
    results = hf_backend.score(requests_for(plan))
    rows = [
        {**to_canonical(result, row.display_to_canonical), "label_probs": result.label_probs}
        for row, result in zip(plan.itertuples(), results, strict=True)
    ]
    return pd.concat([plan, pd.DataFrame(rows)], axis=1)


@pytest.mark.parametrize("enumerator", ENUMERATORS)
@pytest.mark.parametrize("separator", ["\n", "; "])
def test_the_labels_carry_the_probability_mass(
    scored: pd.DataFrame, enumerator: str, separator: str
) -> None:
    rows = scored[(scored["enumerator"] == enumerator) & (scored["separator"] == separator)]
    assert len(rows) == 4
    assert (rows["option_mass"] > MIN_MASS[enumerator]).all(), rows["option_mass"].tolist()
    for probs in rows["probs"]:
        assert np.isclose(sum(probs), 1.0) and min(probs) >= 0


@pytest.mark.parametrize("enumerator", ENUMERATORS)
def test_each_label_goes_back_to_the_option_it_was_shown_with(
    scored: pd.DataFrame, enumerator: str
) -> None:
    rows = scored[scored["enumerator"] == enumerator]
    for row in rows.itertuples():
        shown = [row.options[index] for index in row.display_to_canonical]
        for label, text, probability in zip(row.option_labels, shown, row.label_probs, strict=True):
            assert SHOWN[enumerator].format(label=label, text=text) in row.user
            canonical = row.options.index(text)
            assert row.probs[canonical] == pytest.approx(probability)
        chosen = int(np.argmax(row.label_probs))
        assert row.answer == row.display_to_canonical[chosen]
    if enumerator == "none":
        for row in rows.itertuples():
            shown = [row.options[index] for index in row.display_to_canonical]
            assert list(row.option_labels) == [text.split()[0] for text in shown]


def test_reversing_the_order_moves_the_position_preference_not_the_option(
    scored: pd.DataFrame,
) -> None:
    """The small model favours the first position; in canonical terms that favour follows the order."""
    lettered = scored[scored["enumerator"] == "A."]
    canonical = lettered[lettered["order"] == "canonical"]
    reversed_ = lettered[lettered["order"] == "reversed"]
    assert (canonical["answer"] == 0).all() and (reversed_["answer"] == 3).all()


@pytest.mark.slow
def test_a_slice_of_the_crossed_food_study_is_scored(repo: Path, hf_backend: Any) -> None:
    from culture_probe.planning import PlanFilter, prepare

    prepared = prepare(
        repo / "taxonomy" / "food_religion.yaml",
        PlanFilter(items=("pork_at_home",), proxies=("IN+islam", "US+christianity", "none")),
    )
    plan = prepared.plan[prepared.plan["paraphrase"] == "p1"].reset_index(drop=True)
    assert len(plan) == 2 * 2 * 2 + 2  # two personas x two framings x two orders + the baseline
    assert plan["user"].str.contains("a typical Muslim family in India", regex=False).any()
    results = hf_backend.score(requests_for(plan))
    masses = [result.option_mass for result in results]
    assert min(masses) > 0.5, masses
    assert all(np.isclose(sum(result.label_probs), 1.0) for result in results)
