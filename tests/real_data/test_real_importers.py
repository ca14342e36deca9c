"""The importers on the real published files: their quirks, row counts and known shares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.generation import short_answer_result
from culture_probe.errors import InputError
from culture_probe.importers import RegionResolver, import_alkhamissi, import_wvs
from culture_probe.planning import prepare
from culture_probe.scoring import answer_matches, best_match, with_matches
from culture_probe.taxonomy import load_taxonomy

LILY = "wvs_wave7_country_distributions_lilyflower03"
CAO = "simllmculturedist_cao2025/sft_wvs_valid.json"


@pytest.fixture(scope="module")
def resolver(repo: Path) -> RegionResolver:
    return RegionResolver.from_taxonomy(load_taxonomy(repo / "taxonomy" / "taxonomy.yaml"))


def test_cao2025_distributions_are_percentages_renormalised(
    real_data: Path, resolver: RegionResolver
) -> None:
    imported = import_wvs(
        [real_data / CAO], resolver, countries=["JP", "US", "DE"], questions=["Q164"]
    )
    records = json.loads((real_data / CAO).read_text())
    japan = next(r for r in records if r["id"] == "164" and "from Japan " in r["instruction"])
    dist = japan["options_dist"]  # letters in file order, not always A, B, C...
    expected = np.array([dist.get(letter, 0.0) for letter in "ABCDEFGHIJ"]) / sum(dist.values())
    got = imported.reference.query("proxy == 'JP'").sort_values("option")["share"].to_numpy()
    assert got == pytest.approx(expected)
    assert imported.items[0]["options"][0] == "Not at all important"
    assert len(imported.items[0]["options"]) == 10


def test_lilyflower_files_map_file_prefix_to_country_and_reject_bad_sums(
    real_data: Path, resolver: RegionResolver
) -> None:
    files = sorted((real_data / LILY).glob("*_wvs.json"))
    with pytest.raises(InputError) as error:
        import_wvs(files, resolver)  # strict: the first bad row stops the import
    assert "_wvs.json" in str(error.value) and "key 'examples[" in str(error.value)
    imported = import_wvs(files, resolver, questions=["Q1"], strict=False)
    japan = imported.reference.query("proxy == 'JP'").sort_values("option")["share"]
    assert japan.tolist() == pytest.approx([0.92 / 0.98, 0.06 / 0.98, 0.0, 0.0])
    assert set(imported.study["axes"]["region"]) == {"US", "CN", "EG", "JP"}
    assert any("Q121" in message and "1.240" in message for message in imported.skipped)


def test_alkhamissi_paraphrases_join_country_distributions(
    real_data: Path, resolver: RegionResolver
) -> None:
    imported = import_alkhamissi(
        real_data / "alkhamissi2024_cultural_trends",
        sorted((real_data / LILY).glob("*_wvs.json")),
        resolver,
        min_countries=4,
        strict=False,
    )
    assert len(imported.items) >= 20
    assert all(len(item["paraphrases"]) == 4 for item in imported.items)
    family = next(item for item in imported.items if item["id"] == "Q1")
    assert family["options"] == [
        "Very important",
        "Rather important",
        "Not very important",
        "Not at all important",
    ]
    counts = imported.reference.groupby("item_id")["proxy"].nunique()
    assert (counts == 4).all()


def test_blend_matching_on_real_annotations(real_data: Path) -> None:
    uk = json.loads((real_data / "blend/annotations/UK_data.json").read_text())["Al-en-02"]
    answers = pd.DataFrame(
        [(g, a, c["count"]) for g, c in enumerate(uk["annotations"]) for a in c["answers"]],
        columns=["group", "answer", "votes"],
    )
    match = best_match("Crisps, and maybe some nuts.", answers)
    total = sum(c["count"] for c in uk["annotations"])
    assert (match.answer, match.votes) == ("crisps", 3)
    assert match.vote_share == pytest.approx(3 / total)
    assert not best_match("A glass of water.", answers).matched
    korea = json.loads((real_data / "blend/annotations/South_Korea_data.json").read_text())
    assert korea["Al-en-06"]["annotations"][0]["answers"] == ["김치"]
    china = json.loads((real_data / "blend/annotations/China_data.json").read_text())
    assert answer_matches(china["Al-en-01"]["annotations"][1]["answers"][0], "孩子们常吃水果干。")


def test_an_echo_of_a_real_question_is_not_its_answer(real_data: Path) -> None:
    korea = json.loads((real_data / "blend/annotations/South_Korea_data.json").read_text())
    snacks = korea["Al-en-01"]  # "What is a common snack for preschool kids in South Korea?"
    answers = pd.DataFrame(
        [
            (group, answer, entry["count"])
            for group, entry in enumerate(snacks["annotations"])
            for answer in [*entry["answers"], *entry["en_answers"]]
        ],
        columns=["group", "answer", "votes"],
    )
    question = snacks["en_question"]
    echo = "In South Korea, a common snack for preschool kids is often made of rice flour."
    assert best_match(echo, answers).answer == "snack"  # an echo of the question scored
    assert not best_match(echo, answers, prompt=question).matched
    # the other aliases of the same annotation still count, with the same share of all votes
    total = sum(entry["count"] for entry in snacks["annotations"])
    cookies = best_match("Cookies, mostly.", answers, prompt=question)
    assert (cookies.answer, cookies.votes, cookies.vote_share) == ("cookie", 3, 3 / total)


def test_match_columns_on_a_hand_worked_real_answer(real_blend_study: Path) -> None:
    plan = prepare(real_blend_study).plan
    cells = sorted(zip(plan["proxy"], plan["language"], strict=True))
    assert cells == [("GB", "en"), ("KR", "en"), ("KR", "ko")]
    korea_en = plan.loc[(plan["proxy"] == "KR") & (plan["language"] == "en")]
    korea_en = pd.concat([korea_en] * 3, ignore_index=True).assign(prompt_id=["a", "b", "c"])
    request = ScoringRequest("p", "", "q", ())
    texts = ["I'd say fried chicken.", "I'm sorry, I can't answer that. Chicken?", "Pizza"]
    rows = [short_answer_result(request, text) for text in texts]
    responses = pd.DataFrame(
        {"prompt_id": ["a", "b", "c"], "outcome": [r.outcome for r in rows], "generated": texts}
    )
    answers = pd.read_parquet(real_blend_study.parent / "answers.parquet")
    scored = with_matches(korea_en, responses, answers)
    # South Korea, Al-en-02: 치킨 / fried chicken / chicken 5 votes, three others 1 each: 5 / 8.
    assert list(scored["match"]) == [1.0, 0.0, 0.0]
    assert list(scored["match_share"]) == [5 / 8, 0.0, 0.0]
