"""Small public-dataset look-alikes, written by the tests in each dataset's own format.

The importers read files published by others: WVS wave-7 country distributions (lilyflower03's
``<cc>_wvs.json``, Cao et al. 2025's ``sft_wvs_valid.json``), AlKhamissi et al.'s (2024)
paraphrase sets, BLEnD's ``data/`` folder and the survey's long paper list. The suite needs files in
those shapes and nothing outside the repository, so this module writes them: a few rows each, of
invented questions, answers and shares, laid out as the real data is (``../shared/data``, see
``CULTURE_PROBE_REAL_DATA`` in ``tests/real_data/conftest.py``). The constants below are the
expected values the tests assert, so that every number a test checks is stated once, here.

Each file carries the quirks of its upstream that the importers must handle: shares that sum to
0.99 (rounded), answer letters out of order and one left out, a row whose shares sum past the
tolerance, a translation key (``Q1_ar``), a paraphrase set without paraphrases, a "Don't know"
option, one title in two casings, one title under two first authors.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

LILY = "wvs_wave7_country_distributions_lilyflower03"
CAO = "simllmculturedist_cao2025/sft_wvs_valid.json"
ALKHAMISSI = "alkhamissi2024_cultural_trends"
BLEND = "blend"
SURVEY_LIST = "survey/survey_v1_readme_paper_categories.csv"

# --- WVS-7 country distributions (lilyflower03 format) -------------------------------------------

#: file prefix -> region (``ch`` is China in the upstream's file names)
LILY_FILES = {"us": "US", "ch": "CN", "eg": "EG", "jp": "JP"}
FOUR_POINT = ("Very important", "Rather important", "Not very important", "Not at all important")
AGREEMENT = ("Agree strongly", "Agree", "Disagree", "Disagree strongly")

#: question id -> (English text, options, {region: shares in code order})
LILY_QUESTIONS: dict[str, tuple[str, tuple[str, ...], dict[str, tuple[float, ...]]]] = {
    "Q1": (
        "How much does family matter in your life?",
        FOUR_POINT,
        {
            "US": (0.70, 0.20, 0.07, 0.03),
            "CN": (0.55, 0.35, 0.08, 0.02),
            "EG": (0.90, 0.08, 0.01, 0.01),
            "JP": (0.80, 0.15, 0.04, 0.0),  # sums to 0.99: renormalised
        },
    ),
    "Q2": (
        "How much do friends matter in your life?",
        FOUR_POINT,
        {
            "US": (0.45, 0.40, 0.12, 0.03),
            "CN": (0.20, 0.50, 0.25, 0.05),
            "EG": (0.35, 0.30, 0.25, 0.10),
            "JP": (0.30, 0.45, 0.20, 0.05),
        },
    ),
    "Q4": (
        "How much does politics matter in your life?",
        FOUR_POINT,
        {
            "US": (0.15, 0.35, 0.35, 0.15),
            "CN": (0.10, 0.30, 0.40, 0.20),
            "EG": (0.05, 0.15, 0.30, 0.50),
            "JP": (0.08, 0.40, 0.42, 0.10),
        },
    ),
    "Q6": (
        "How much does religion matter in your life?",
        FOUR_POINT,
        {
            "US": (0.40, 0.25, 0.20, 0.15),
            "CN": (0.02, 0.08, 0.30, 0.60),
            "EG": (0.85, 0.12, 0.02, 0.01),
            "JP": (0.05, 0.10, 0.35, 0.50),
        },
    ),
    "Q33": (
        "When jobs are scarce, men should have more right to a job than women.",
        AGREEMENT,
        {
            "US": (0.05, 0.10, 0.35, 0.50),
            "CN": (0.10, 0.30, 0.40, 0.20),
            "EG": (0.50, 0.30, 0.15, 0.05),
            "JP": (0.04, 0.16, 0.50, 0.30),
        },
    ),
    "Q57": (
        "Can most people be trusted, or do you need to be careful?",
        ("Most people can be trusted", "Need to be very careful"),
        {"US": (0.35, 0.65), "CN": (0.60, 0.40), "EG": (0.10, 0.90), "JP": (0.33, 0.67)},
    ),
}
#: four-option questions with shares for every country (the alignment tests' items)
LILY_FOUR_OPTION = ("Q1", "Q2", "Q4", "Q6", "Q33")
#: a row of Egypt's file whose shares sum to 1.3: refused when strict, listed when not
LILY_BAD_QUESTION = "Q30"
LILY_BAD_SUM = "1.300"
#: Japan's file holds machine-translated question texts, as upstream's non-US files do
JAPANESE_TEXT = {"Q1": "家族はあなたの人生でどのくらい大切ですか？"}


def _lily_example(question_id: str, region: str) -> dict[str, Any]:
    text, options, shares = LILY_QUESTIONS[question_id]
    distribution = {str(code): share for code, share in enumerate(shares[region], start=1)}
    return {
        "id": question_id,
        "question_id": question_id.removeprefix("Q"),
        "topic": "Social values",
        "question_text": JAPANESE_TEXT.get(question_id, text) if region == "JP" else text,
        "options": [f"{code}. {option}" for code, option in enumerate(options, start=1)],
        "most_common_response": max(distribution, key=lambda code: distribution[code]),
        "distribution": distribution,
    }


def write_lilyflower(folder: Path) -> list[Path]:
    """``us_wvs.json`` ... ``jp_wvs.json``: the questions above, and Egypt's bad row."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for prefix, region in LILY_FILES.items():
        examples = [_lily_example(question_id, region) for question_id in LILY_QUESTIONS]
        if region == "EG":
            examples.append(
                {
                    "id": LILY_BAD_QUESTION,
                    "question_id": LILY_BAD_QUESTION.removeprefix("Q"),
                    "question_text": "How often do you read a newspaper?",
                    "options": ["1. Daily", "2. Weekly", "3. Never"],
                    "distribution": {"1": 0.6, "2": 0.5, "3": 0.2},
                }
            )
        document = {
            "name": "world_values_survey",
            "description": "Invented rows in the shape of the published files.",
            "examples": examples,
            "countries": {region: region},
        }
        path = folder / f"{prefix}_wvs.json"
        path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
        paths.append(path)
    return paths


# --- WVS-7 country distributions (Cao et al. 2025 format) ----------------------------------------

CAO_QUESTION = "Q7"
CAO_OPTIONS = ("Not at all important", "2", "3", "4", "Very important")
#: country name as upstream writes it -> percent by letter, in file order (not A, B, C ...)
CAO_PERCENTS = {
    "Japan": {"C": 30.0, "A": 10.0, "E": 15.0, "B": 20.0, "D": 25.0},
    "United States": {"E": 40.0, "D": 30.0, "C": 20.0, "A": 4.0},  # B left out: 0 %, sum 94
    "Germany": {"B": 25.0, "A": 35.0, "D": 15.0, "C": 20.0, "E": 5.0},
    "Brazil": {"A": 5.0, "B": 5.0, "C": 10.0, "D": 30.0, "E": 50.0},
}


def write_cao2025(path: Path) -> Path:
    """``sft_wvs_valid.json``: one question asked as someone from four countries."""
    records = [
        {
            "id": CAO_QUESTION.removeprefix("Q"),
            "instruction": f"How would someone from {country} answer the following question:\n\n",
            "input": "How important is tradition in your life? 5 means 'very important' and 1 "
            "means 'not at all important.' \nHere are the options: \n",
            "options": [
                f"({letter}){text}" for letter, text in zip("ABCDE", CAO_OPTIONS, strict=True)
            ],
            "options_dist": percents,
            "data_type": "valid",
        }
        for country, percents in CAO_PERCENTS.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


# --- AlKhamissi et al. (2024) paraphrase sets ----------------------------------------------------

#: questions with four paraphrases whose options (less "Don't know") match the distributions
PARAPHRASED = ("Q1", "Q2", "Q6", "Q33")
#: a set with options but no paraphrases, as one entry of the published file is
WITHOUT_PARAPHRASES = "Q49"
#: a set whose option count differs from the distributions': left out with a note
MISMATCHED = "Q4"


def _paraphrases(question_id: str) -> list[str]:
    topic = LILY_QUESTIONS[question_id][0].removesuffix("?").removesuffix(".")
    return [
        f"{LILY_QUESTIONS[question_id][0]}",
        f"Please say: {topic.lower()}?",
        f"In a few words, {topic.lower()}?",
        f"We would like to know: {topic.lower()}?",
    ]


def write_alkhamissi(folder: Path) -> Path:
    """``wvs_questions.json``: paraphrase sets keyed by question id, one translation key."""
    sets: dict[str, Any] = {}
    for question_id in PARAPHRASED:
        _, options, _ = LILY_QUESTIONS[question_id]
        sets[question_id] = {
            "description": f"Invented set {question_id}",
            "questions": _paraphrases(question_id),
            "options": [*options, "Don't know"],
        }
    sets["Q1_ar"] = {"questions": ["سؤال"], "options": ["أ", "ب"]}  # a translation: not read
    sets[MISMATCHED] = {
        "description": "Five options where the distributions have four",
        "questions": _paraphrases(MISMATCHED),
        "options": [*FOUR_POINT, "Somewhat important", "No answer"],
    }
    sets[WITHOUT_PARAPHRASES] = {"options": ["Yes", "No"]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wvs_questions.json"
    path.write_text(json.dumps(sets, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# --- BLEnD data/ ---------------------------------------------------------------------------------

#: "What do people eat with beer in ...?": the question the BLEnD fixtures ask
BLEND_QUESTION = "Al-en-02"
#: BLEnD file stem -> question id -> (local question, English question, annotations)
BLEND_ANNOTATIONS: dict[str, dict[str, tuple[str, str, list[dict[str, Any]]]]] = {
    "UK": {
        "Al-en-01": (
            "What is a usual breakfast drink in the UK?",
            "What is a usual breakfast drink in UK?",
            [
                {"answers": ["tea"], "en_answers": ["tea", "a cup of tea"], "count": 4},
                {"answers": ["juice"], "en_answers": ["orange juice"], "count": 2},
                {"answers": ["hot drink"], "en_answers": ["drink"], "count": 1},  # in the question
            ],
        ),
        BLEND_QUESTION: (
            "What do people eat with beer in the UK?",
            "What do people eat with beer in UK?",
            [
                {"answers": ["crisps"], "en_answers": ["crisps"], "count": 4},
                {"answers": ["pork pie"], "en_answers": ["pork pie"], "count": 2},
                {"answers": ["scampi fries"], "en_answers": ["scampi fries"], "count": 1},
            ],
        ),
    },
    "South_Korea": {
        BLEND_QUESTION: (
            "대한민국에서 사람들은 맥주와 함께 무엇을 먹나요?",
            "What do people eat with beer in South Korea?",
            [
                {"answers": ["치킨"], "en_answers": ["fried chicken", "chicken"], "count": 4},
                {"answers": ["감자튀김"], "en_answers": ["french fries", "fries"], "count": 2},
                {"answers": ["소시지"], "en_answers": ["sausage"], "count": 1},
            ],
        ),
    },
    "China": {
        BLEND_QUESTION: (
            "在中国，人们喝啤酒时吃什么？",
            "What do people eat with beer in China?",
            [{"answers": ["花生"], "en_answers": ["peanuts"], "count": 3}],
        ),
    },
}
#: votes for South Korea's fried chicken over all its votes (4 + 2 + 1)
KOREA_CHICKEN_SHARE = 4 / 7
BLEND_INSTRUCTION = {
    "UK": ("Answer in a few words.\n\nQuestion: {q}\nAnswer:", "Answer briefly: {q}"),
    "South_Korea": (
        "Answer in a few words.\n\nQuestion: {q}\nAnswer:",
        "짧게 답하시오.\n\n질문: {q}\n답변:",
    ),
    "China": (
        "Answer in a few words.\n\nQuestion: {q}\nAnswer:",
        "请简短回答。\n\n问题：{q}\n答案：",
    ),
}


def write_blend(folder: Path) -> Path:
    """BLEnD's ``data/``: annotations, prompt templates and question topics per country."""
    for sub in ("annotations", "prompts", "questions"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for stem, questions in BLEND_ANNOTATIONS.items():
        annotations = {
            question_id: {
                "question": local,
                "en_question": english,
                "annotations": entries,
                "idks": {"idk": 0, "no-answer": 0, "not-applicable": 0},
            }
            for question_id, (local, english, entries) in questions.items()
        }
        (folder / "annotations" / f"{stem}_data.json").write_text(
            json.dumps(annotations, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        english, translation = BLEND_INSTRUCTION[stem]
        _write_csv(
            folder / "prompts" / f"{stem}_prompts.csv",
            ["id", "English", "Translation"],
            [["inst-1", "{q} Answer with a list.", "{q}"], ["inst-4", english, translation]],
        )
        _write_csv(
            folder / "questions" / f"{stem}_questions.csv",
            ["", "ID", "Topic", "Source", "Question", "Translation"],
            [
                [str(row), question_id, "Food", "English (US)", local, english_question]
                for row, (question_id, (local, english_question, _)) in enumerate(questions.items())
            ],
        )
    return folder


# --- the survey's long paper list ---------------------------------------------------------------

SURVEY_COLUMNS = ("taxonomy", "dimension", "category", "authors_year", "title", "venue", "url")
DEMOGRAPHIC, SEMANTIC = "Demographic Proxies", "Semantic Proxies"
BLACK_BOX, WHITE_BOX = "Black-box Approach", "White-box Approach"
#: (authors and year, title, venue, [(dimension, category)]); one title in two casings (one paper),
#: one title under two first authors (two papers)
SURVEY_PAPERS = [
    (
        "Okafor, et al. (2023)",
        "Proverbs as a Probe of Regional Knowledge in Language Models",
        "ACL",
        [(DEMOGRAPHIC, "Region"), (DEMOGRAPHIC, "Language"), (SEMANTIC, "Emotions and Values"),
         (BLACK_BOX, "Discriminative Probing")],
    ),
    (
        "Lindqvist, et al. (2024)",
        "Whose Breakfast? Food Norms Across Countries in Chat Models",
        "ArXiv",
        [(DEMOGRAPHIC, "Region"), (SEMANTIC, "Food and Drink"), (BLACK_BOX, "Generative Probing")],
    ),
    (
        "Tanaka, et al. (2022)",
        "Neurons that Encode Nationality in Multilingual Models",
        "EMNLP",
        [(DEMOGRAPHIC, "Region"), (DEMOGRAPHIC, "Language"),
         (WHITE_BOX, "Mechanistic Interpretability")],
    ),
    (
        "Mendes, et al. (2023)",
        "Religious Holidays in Multilingual Question Answering",
        "NAACL",
        [(DEMOGRAPHIC, "Religion"), (DEMOGRAPHIC, "Language"), (BLACK_BOX, "Discriminative Probing")],
    ),
    (
        "Mendes, et al. (2023)",
        "Religious holidays in multilingual question answering",
        "NAACL",
        [(DEMOGRAPHIC, "Region")],
    ),
    (
        "Haddad, et al (2024)",
        "Values Surveys as Prompts",
        "ArXiv",
        [(DEMOGRAPHIC, "Region"), (SEMANTIC, "Emotions and Values"),
         ("Linguistic-Culture Interaction", "Common Ground"), (BLACK_BOX, "Discriminative Probing")],
    ),
    (
        "Novak, et al. (2024)",
        "Values Surveys as Prompts",
        "EMNLP",
        [(SEMANTIC, "Emotions and Values")],
    ),
]  # fmt: skip
#: papers (title up to case, first author, year) per label, and in all
SURVEY_PAPER_COUNTS = {"Region": 5, "Language": 3, "Emotions and Values": 3, "Aboutness": 0}
SURVEY_PAPERS_IN_ALL = 6
#: the one white-box paper, its id as the importer assigns it, and its demographic labels
WHITE_BOX_TITLE = "Neurons that Encode Nationality in Multilingual Models"
WHITE_BOX_ID = "tanaka2022neurons"


def write_survey_list(path: Path) -> Path:
    """The long list: one row per (paper, category), as the survey's README publishes it."""
    rows = []
    for authors_year, title, venue, labels in SURVEY_PAPERS:
        for dimension, category in labels:
            taxonomy = "methods" if dimension in (BLACK_BOX, WHITE_BOX) else "definition_of_culture"
            rows.append([taxonomy, dimension, category, authors_year, title, venue, ""])
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(path, list(SURVEY_COLUMNS), rows)
    return path


# --- all of it, laid out as the real data is -----------------------------------------------------


def write_upstream_data(root: Path) -> Path:
    """Every look-alike under ``root``, at the paths the real data has under ``../shared/data``."""
    write_lilyflower(root / LILY)
    write_cao2025(root / CAO)
    write_alkhamissi(root / ALKHAMISSI)
    write_blend(root / BLEND)
    write_survey_list(root / SURVEY_LIST)
    return root


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
