"""Importers: public datasets in their own formats become studies with human reference answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culture_probe.errors import InputError
from culture_probe.importers import (
    RegionResolver,
    import_alkhamissi,
    import_blend,
    import_globalopinionqa,
    import_wvs,
    parse_selections,
    write_study,
)
from culture_probe.importers._writer import ImportedStudy
from culture_probe.planning import PlanFilter, prepare
from culture_probe.scoring import (
    answer_matches,
    best_match,
    copy_reference,
    score_plan,
    score_short_answers,
    write_responses,
)
from culture_probe.store import RunDirectory
from culture_probe.study import load_study, read_reference
from culture_probe.taxonomy import Taxonomy, load_taxonomy
from upstream import (
    ALKHAMISSI,
    BLEND_QUESTION,
    CAO,
    CAO_OPTIONS,
    CAO_PERCENTS,
    CAO_QUESTION,
    FOUR_POINT,
    KOREA_CHICKEN_SHARE,
    LILY,
    LILY_BAD_QUESTION,
    LILY_BAD_SUM,
    LILY_QUESTIONS,
    MISMATCHED,
    PARAPHRASED,
    WITHOUT_PARAPHRASES,
)


@pytest.fixture(scope="module")
def taxonomy_path(repo: Path) -> Path:
    return repo / "taxonomy" / "taxonomy.yaml"


@pytest.fixture(scope="module")
def taxonomy(taxonomy_path: Path) -> Taxonomy:
    return load_taxonomy(taxonomy_path)


@pytest.fixture(scope="module")
def resolver(taxonomy: Taxonomy) -> RegionResolver:
    return RegionResolver.from_taxonomy(taxonomy)


def write_goqa_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


GOQA_COLUMNS = ("question", "selections", "options", "source")
GOQA_ROWS = [
    {
        "question": "Do you think people in your country should be able to say what they want?",
        "selections": "defaultdict(<class 'list'>, {'Japan': [0.62, 0.3, 0.08], "
        "'Germany': [0.8, 0.15, 0.05], 'Britain': [0.7, 0.25, 0.05]})",
        "options": "['Yes', 'No', 'DK/Refused']",
        "source": "GAS",
    },
    {
        "question": "How important is religion in your life?\nSelect one.",
        "selections": "defaultdict(<class 'list'>, {'Japan': [0.1, 0.2, 0.3, 0.4], "
        "'Nigeria': [0.7, 0.2, 0.05, 0.05]})",
        "options": "['Very important', 'Rather important', 'Not very important', "
        "'Not at all important']",
        "source": "WVS",
    },
]


def test_globalopinionqa_csv_becomes_a_study_with_renormalised_country_shares(
    tmp_path: Path, resolver: RegionResolver, taxonomy_path: Path
) -> None:
    source = write_goqa_csv(tmp_path / "global_opinions.csv", GOQA_ROWS, GOQA_COLUMNS)
    imported = import_globalopinionqa(source, resolver)
    study_file = write_study(imported, tmp_path / "goqa", taxonomy_path)
    study = load_study(study_file)
    assert study.items[0].options == ("Yes", "No")  # DK/Refused dropped
    assert {p.id for p in study.proxies} == {"JP", "DE", "GB", "NG"}
    reference = read_reference(study.reference or "")
    japan = reference[(reference["item_id"] == "goqa00002") & (reference["proxy"] == "JP")]
    assert japan["share"].tolist() == pytest.approx([0.62 / 0.92, 0.30 / 0.92])
    # The second question spans two lines of the CSV: its id is its first line, 3.
    religion = reference[reference["item_id"] == "goqa00003"]
    assert religion.groupby("proxy")["share"].sum().tolist() == pytest.approx([1.0, 1.0])


def test_selections_are_parsed_without_eval() -> None:
    parsed = parse_selections(
        "defaultdict(<class 'list'>, {'Côte d’Ivoire': [0.5, 0.5]})", path="x.csv", line=2
    )
    assert parsed == {"Côte d’Ivoire": [0.5, 0.5]}
    with pytest.raises(InputError, match=r"x\.csv:7: key 'selections'"):
        parse_selections(
            "defaultdict(<class 'list'>, {'A': __import__('os')})", path="x.csv", line=7
        )


def test_globalopinionqa_missing_column_names_the_column_and_file(
    tmp_path: Path, resolver: RegionResolver
) -> None:
    rows = [{k: v for k, v in GOQA_ROWS[0].items() if k != "options"}]
    source = write_goqa_csv(tmp_path / "bad.csv", rows, ("question", "selections", "source"))
    with pytest.raises(InputError) as error:
        import_globalopinionqa(source, resolver)
    assert "bad.csv:1: key 'options'" in str(error.value)


def test_globalopinionqa_shares_that_sum_past_the_tolerance_name_the_line(
    tmp_path: Path, resolver: RegionResolver
) -> None:
    rows = [dict(GOQA_ROWS[0]), dict(GOQA_ROWS[0])]
    rows[1]["selections"] = "defaultdict(<class 'list'>, {'Japan': [0.7, 0.3, 0.1]})"
    source = write_goqa_csv(tmp_path / "sum.csv", rows, GOQA_COLUMNS)
    with pytest.raises(InputError) as error:
        import_globalopinionqa(source, resolver)
    message = str(error.value)
    assert "sum.csv:3: key 'selections'" in message and "1.100" in message and "0.02" in message
    assert not (tmp_path / "out").exists()


def test_unknown_country_gets_a_did_you_mean(tmp_path: Path, resolver: RegionResolver) -> None:
    rows = [dict(GOQA_ROWS[0])]
    rows[0]["selections"] = "defaultdict(<class 'list'>, {'Japon': [0.6, 0.3, 0.1]})"
    source = write_goqa_csv(tmp_path / "country.csv", rows, GOQA_COLUMNS)
    with pytest.raises(InputError, match="did you mean 'Japan'"):
        import_globalopinionqa(source, resolver)
    skipped = import_globalopinionqa(
        write_goqa_csv(tmp_path / "two.csv", [GOQA_ROWS[1], rows[0]], GOQA_COLUMNS),
        resolver,
        strict=False,
    )
    assert any("Japon" in message for message in skipped.skipped)


def test_cao2025_distributions_are_percentages_renormalised(
    upstream_data: Path, resolver: RegionResolver
) -> None:
    imported = import_wvs(
        [upstream_data / CAO], resolver, countries=["JP", "US", "DE"], questions=[CAO_QUESTION]
    )
    reference = imported.reference.sort_values("option")
    for region, country in (("JP", "Japan"), ("US", "United States")):
        percents = CAO_PERCENTS[country]  # letters in file order; the US leaves B out
        expected = np.array([percents.get(letter, 0.0) for letter in "ABCDE"])
        got = reference.loc[reference["proxy"] == region, "share"].to_numpy()
        assert got == pytest.approx(expected / expected.sum())
    assert set(reference["proxy"]) == {"JP", "US", "DE"}  # Brazil left out by the filter
    assert imported.items[0]["options"] == list(CAO_OPTIONS)


def test_lilyflower_files_map_file_prefix_to_country_and_reject_bad_sums(
    upstream_data: Path, resolver: RegionResolver
) -> None:
    files = sorted((upstream_data / LILY).glob("*_wvs.json"))
    with pytest.raises(InputError) as error:
        import_wvs(files, resolver)  # strict: the first bad row stops the import
    assert "eg_wvs.json" in str(error.value) and "key 'examples[" in str(error.value)
    imported = import_wvs(files, resolver, questions=["Q1"], strict=False)
    japan = imported.reference.query("proxy == 'JP'").sort_values("option")["share"]
    assert japan.tolist() == pytest.approx([0.80 / 0.99, 0.15 / 0.99, 0.04 / 0.99, 0.0])
    assert set(imported.study["axes"]["region"]) == {"US", "CN", "EG", "JP"}
    assert imported.items[0]["paraphrases"] == [LILY_QUESTIONS["Q1"][0]]  # the English text
    bad = [message for message in imported.skipped if LILY_BAD_QUESTION in message]
    assert len(bad) == 1 and LILY_BAD_SUM in bad[0]


def test_alkhamissi_paraphrases_join_country_distributions(
    upstream_data: Path, resolver: RegionResolver
) -> None:
    imported = import_alkhamissi(
        upstream_data / ALKHAMISSI,
        sorted((upstream_data / LILY).glob("*_wvs.json")),
        resolver,
        min_countries=4,
        strict=False,
    )
    assert [item["id"] for item in imported.items] == list(PARAPHRASED)
    assert all(len(item["paraphrases"]) == 4 for item in imported.items)
    family = next(item for item in imported.items if item["id"] == "Q1")
    assert family["options"] == list(FOUR_POINT)  # "Don't know" dropped
    counts = imported.reference.groupby("item_id")["proxy"].nunique()
    assert (counts == 4).all()
    skipped = imported.log["skipped"]
    assert f"{WITHOUT_PARAPHRASES}: no paraphrases in wvs_questions.json" in skipped
    assert sum(message.startswith(f"{MISMATCHED} in ") for message in skipped) == 4


def test_a_failed_write_leaves_no_folder(tmp_path: Path, taxonomy_path: Path) -> None:
    broken = ImportedStudy(
        {"study": "x", "axes": {"region": ["JP"]}},
        [{"id": "q", "options": ["a", "b"], "paraphrases": ["?"]}],
        pd.DataFrame({"item_id": ["q"], "proxy": ["JP"]}),  # no option, no share
    )
    with pytest.raises(KeyError):
        write_study(broken, tmp_path / "study", taxonomy_path)
    assert list(tmp_path.iterdir()) == []


def blend_answers(upstream_data: Path, country: str, question_id: str) -> pd.DataFrame:
    """One BLEnD question's annotated answers, every alias (local and English) with its votes."""
    entry = json.loads((upstream_data / f"blend/annotations/{country}_data.json").read_text())
    return pd.DataFrame(
        [
            (group, answer, annotation["count"])
            for group, annotation in enumerate(entry[question_id]["annotations"])
            for answer in [*annotation["answers"], *annotation["en_answers"]]
        ],
        columns=["group", "answer", "votes"],
    )


def test_blend_answers_match_whole_words_and_count_their_votes(upstream_data: Path) -> None:
    answers = blend_answers(upstream_data, "UK", BLEND_QUESTION)
    match = best_match("Crisps, and maybe some nuts.", answers)
    assert (match.answer, match.votes) == ("crisps", 4)
    assert match.vote_share == pytest.approx(4 / 7)
    assert not best_match("A glass of water.", answers).matched
    korea = blend_answers(upstream_data, "South_Korea", BLEND_QUESTION)
    chicken = best_match("치킨입니다.", korea)
    assert (chicken.answer, chicken.vote_share) == ("치킨", pytest.approx(KOREA_CHICKEN_SHARE))
    assert best_match("Fried chicken, of course.", korea).vote_share == chicken.vote_share
    assert answer_matches("김치", "김치입니다.")
    assert not answer_matches("밥", "볶음밥")  # a word ending is not the answer
    assert answer_matches("花生", "人们常吃花生。")
    assert not answer_matches("rice", "licorice")


def test_numbers_match_whole_and_answers_the_prompt_contains_are_left_out(
    upstream_data: Path,
) -> None:
    assert answer_matches("12", "About 12 years.") and not answer_matches("1", "12 years")
    assert not answer_matches("8", "80 weeks") and answer_matches("18:00", "At 18:00.")
    answers = blend_answers(upstream_data, "UK", "Al-en-01")
    question = "What is a usual breakfast drink in UK?"
    echo = "In the UK, a usual breakfast drink is often served hot."
    assert best_match(echo, answers).answer == "drink"  # an echo of the question scored
    assert not best_match(echo, answers, prompt=question).matched
    # the other aliases of the same annotation still count, with the same share of all votes
    juice = best_match("Juice, mostly.", answers, prompt=question)
    assert (juice.answer, juice.votes, juice.vote_share) == ("juice", 2, 2 / 7)


@pytest.mark.slow
def test_imported_wvs_study_runs_with_the_embedded_model(
    tmp_path: Path, upstream_data: Path, resolver: RegionResolver, taxonomy_path: Path, hf_backend
) -> None:
    from culture_probe.analysis.cli import analyze_run

    imported = import_alkhamissi(
        upstream_data / ALKHAMISSI,
        sorted((upstream_data / LILY).glob("*_wvs.json")),
        resolver,
        questions=["Q1"],
        strict=False,
    )
    study_file = write_study(imported, tmp_path / "wvs", taxonomy_path)
    prepared = prepare(study_file, PlanFilter(proxies=("JP", "US")))
    plan = prepared.plan[prepared.plan["framing"] == "imagine"].reset_index(drop=True)
    assert len(plan) == 2 * 4 * 2  # countries x paraphrases x orders
    run = RunDirectory.open(tmp_path / "run", {"run_key": "t", "plan_hash": "t"}, plan)
    assert score_plan(run, plan, hf_backend) == len(plan)
    write_responses(run, plan)
    copy_reference(prepared.study, run)
    assert run.reference() is not None
    result = analyze_run(run.path, n_bootstrap=100, n_permutations=99)
    alignment = result.tables["alignment"]
    assert set(alignment["proxy"]) == {"JP", "US"}
    assert alignment["sim_jsd"].between(0, 1).all()
    assert set(result.tables["alignment_summary"]["proxy"]) == {"JP", "US"}


@pytest.mark.slow
def test_imported_globalopinionqa_study_runs_with_the_embedded_model(
    tmp_path: Path, resolver: RegionResolver, taxonomy_path: Path, hf_backend
) -> None:
    source = write_goqa_csv(tmp_path / "global_opinions.csv", GOQA_ROWS, GOQA_COLUMNS)
    study_file = write_study(
        import_globalopinionqa(source, resolver), tmp_path / "g", taxonomy_path
    )
    prepared = prepare(study_file, PlanFilter(proxies=("JP", "DE")))
    plan = prepared.plan[prepared.plan["framing"] == "imagine"].reset_index(drop=True)
    assert len(plan) == 2 * 2 * 2  # items x countries x orders
    run = RunDirectory.open(tmp_path / "run", {"run_key": "g", "plan_hash": "g"}, plan)
    score_plan(run, plan, hf_backend)
    responses = write_responses(run, plan)
    assert np.allclose([sum(p) for p in responses["probs"]], 1.0)


def test_imported_blend_study_generates_and_scores_short_answers(
    tmp_path: Path,
    upstream_data: Path,
    resolver: RegionResolver,
    taxonomy: Taxonomy,
    taxonomy_path: Path,
    hf_backend,
) -> None:
    imported = import_blend(
        upstream_data / "blend",
        resolver,
        taxonomy,
        countries=["GB", "KR"],
        questions=[BLEND_QUESTION],
    )
    study_file = write_study(imported, tmp_path / "blend", taxonomy_path)
    plan = prepare(study_file).plan
    cells = sorted(zip(plan["proxy"], plan["language"], strict=True))
    assert cells == [("GB", "en"), ("KR", "en"), ("KR", "ko")]
    generated = [_greedy(hf_backend, row.user) for row in plan.itertuples()]
    responses = pd.DataFrame({"prompt_id": plan["prompt_id"], "generated": generated})
    scored = score_short_answers(
        plan, responses, pd.read_parquet(tmp_path / "blend/answers.parquet")
    )
    assert len(scored) == 3
    for row in scored.itertuples():
        assert row.matched == (row.answer != "")
        assert 0.0 <= row.vote_share <= 1.0


def _greedy(backend: object, user: str) -> str:
    import torch

    tokenizer, model = backend.tokenizer, backend.model  # type: ignore[attr-defined]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return str(
        tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    )
