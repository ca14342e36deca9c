"""Agreement statistics against scikit-learn, statsmodels, the krippendorff package and by hand."""

from __future__ import annotations

import math
import random
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss
from typer.testing import CliRunner

from culture_probe.agreement import cohen_kappa, fleiss_kappa
from culture_probe.agreement import ratings_alpha as krippendorff_alpha
from culture_probe.survey import PaperRecord, build_fields, read_review, write_workbook
from culture_probe.survey._agreement import compute_agreement, jaccard_distance, masi_distance
from culture_probe.survey.cli import app
from culture_probe.taxonomy import load_taxonomy

TAXONOMY = Path(__file__).parents[1] / "taxonomy" / "taxonomy.yaml"


@pytest.fixture(scope="module")
def fields() -> tuple:
    return build_fields(load_taxonomy(TAXONOMY))


# Hand-worked 2x2 table, 10 papers, "does the paper use Region?":
#                 B yes   B no
#       A yes       4       1      A says yes 5/10
#       A no        2       3      B says yes 6/10
# Cohen: p_o = (4 + 3) / 10 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4.
# Krippendorff (nominal): coincidences o_yy = 8, o_nn = 6, o_yn = o_ny = 3; n_y = 11, n_n = 9,
# n = 20; D_o = 6 / 20 = 0.3; D_e = 2 * 11 * 9 / (20 * 19) = 198 / 380; alpha = 1 - 114/198
# = 14/33.
HAND_A = [1] * 4 + [1] * 1 + [0] * 2 + [0] * 3
HAND_B = [1] * 4 + [0] * 1 + [1] * 2 + [0] * 3


def test_hand_worked_two_by_two_table() -> None:
    assert cohen_kappa(HAND_A, HAND_B) == pytest.approx(0.4)
    units = [[a, b] for a, b in zip(HAND_A, HAND_B, strict=True)]
    assert krippendorff_alpha(units) == pytest.approx(14 / 33)
    assert cohen_kappa_score(HAND_A, HAND_B) == pytest.approx(0.4)
    assert krippendorff.alpha([HAND_A, HAND_B], level_of_measurement="nominal") == pytest.approx(
        14 / 33
    )


def _random_ratings(seed: int, units: int, raters: int, categories: int) -> list[list[int]]:
    generator = random.Random(seed)
    truth = [generator.randrange(categories) for _ in range(units)]
    # Annotators copy the truth 70% of the time, so agreement is moderate, not zero.
    return [
        [t if generator.random() < 0.7 else generator.randrange(categories) for _ in range(raters)]
        for t in truth
    ]


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_scikit_learn(seed: int) -> None:
    ratings = _random_ratings(seed, units=40, raters=2, categories=4)
    first, second = [u[0] for u in ratings], [u[1] for u in ratings]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))


@pytest.mark.parametrize(("seed", "raters"), [(0, 3), (1, 4), (2, 5)])
def test_fleiss_kappa_matches_statsmodels(seed: int, raters: int) -> None:
    ratings = _random_ratings(seed, units=30, raters=raters, categories=3)
    table, _ = aggregate_raters(np.array(ratings))
    assert fleiss_kappa(ratings) == pytest.approx(statsmodels_fleiss(table, method="fleiss"))


@pytest.mark.parametrize("seed", range(4))
def test_nominal_alpha_with_missing_ratings_matches_krippendorff_package(seed: int) -> None:
    ratings: list[list[int | None]] = [list(u) for u in _random_ratings(seed, 25, 3, 4)]
    generator = random.Random(100 + seed)
    for unit in ratings:
        unit[generator.randrange(3)] = None if generator.random() < 0.4 else unit[0]
    matrix = [[np.nan if u[r] is None else u[r] for u in ratings] for r in range(3)]
    expected = krippendorff.alpha(matrix, level_of_measurement="nominal")
    assert krippendorff_alpha(ratings) == pytest.approx(expected)


def _set_alpha_by_package(ratings: list[list[frozenset[str] | None]], distance) -> float:
    """The krippendorff package's alpha with a set distance given as a callable over value codes."""
    domain = sorted({v for unit in ratings for v in unit if v is not None}, key=sorted)
    code = {value: index for index, value in enumerate(domain)}
    distances = np.array([[distance(a, b) for b in domain] for a in domain])

    def metric(v1, v2, i1, i2, n_v, dtype=np.float64):
        return distances[i1, i2].astype(dtype)

    raters = len(ratings[0])
    matrix = [[np.nan if u[r] is None else code[u[r]] for u in ratings] for r in range(raters)]
    return krippendorff.alpha(
        matrix, value_domain=list(range(len(domain))), level_of_measurement=metric
    )


@pytest.mark.parametrize("seed", range(3))
def test_set_alphas_match_krippendorff_package(seed: int) -> None:
    generator = random.Random(seed)
    labels = ["region", "language", "religion", "gender"]

    def annotate(truth: set[str]) -> frozenset[str]:
        chosen = {label for label in truth if generator.random() < 0.8}
        chosen |= {label for label in labels if generator.random() < 0.1}
        return frozenset(chosen)

    truths = [{label for label in labels if generator.random() < 0.4} for _ in range(30)]
    ratings: list[list[frozenset[str] | None]] = [[annotate(t) for _ in range(3)] for t in truths]
    ratings[0][1] = None
    for distance in (masi_distance, jaccard_distance):
        expected = _set_alpha_by_package(ratings, distance)
        assert krippendorff_alpha(ratings, distance) == pytest.approx(expected)


def test_masi_and_jaccard_distances_by_hand() -> None:
    a, b = frozenset({"region", "language"}), frozenset({"region"})
    # Subset: J = 1/2, M = 2/3 -> MASI = 1 - 1/3.
    assert masi_distance(a, b) == pytest.approx(2 / 3)
    assert jaccard_distance(a, b) == pytest.approx(1 / 2)
    # Overlap without containment: J = 1/3, M = 1/3 -> 1 - 1/9.
    assert masi_distance(a, frozenset({"region", "gender"})) == pytest.approx(8 / 9)
    assert masi_distance(a, frozenset({"gender"})) == 1.0
    assert masi_distance(frozenset(), frozenset()) == 0.0


def test_no_variation_gives_nan_like_scikit_learn() -> None:
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))


def _annotator_records(seed: int, annotator: str, papers: int) -> list[PaperRecord]:
    generator = random.Random(seed)
    truth = random.Random(7)  # the same papers for every annotator
    records = []
    for index in range(papers):
        demographic = [c for c in ("region", "language", "religion") if truth.random() < 0.5]
        demographic = [c for c in demographic if generator.random() < 0.85]
        access = truth.choice(["black-box", "white-box"])
        if generator.random() < 0.2:
            access = "both"
        records.append(
            PaperRecord(
                f"p{index:02d}",
                f"Paper {index}",
                year=2023,
                values={
                    "demographic": tuple(demographic),
                    "access": (access,),
                    "annotator": (annotator,),
                },
            )
        )
    return records


def test_workbook_agreement_matches_independent_implementations(
    tmp_path: Path, fields: tuple
) -> None:
    paths = [
        write_workbook(tmp_path / f"{name}.xlsx", _annotator_records(seed, name, 30), fields)
        for seed, name in enumerate(["AB", "CD"])
    ]
    sheets = [read_review(str(path), fields) for path in paths]
    result = compute_agreement(sheets, fields)
    assert result.annotators == ["AB", "CD"]
    table = result.table.set_index(["field", "label"])
    first, second = ([r.labels("access")[0] for r in s.records] for s in sheets)
    access = table.loc[("access", "")]
    assert access["kappa_statistic"] == "cohen_kappa"
    assert access["kappa"] == pytest.approx(cohen_kappa_score(first, second))
    assert access["papers"] == 30
    codes = {"black-box": 0, "white-box": 1, "both": 2}
    assert access["alpha_nominal"] == pytest.approx(
        krippendorff.alpha(
            [[codes[v] for v in first], [codes[v] for v in second]], level_of_measurement="nominal"
        )
    )
    region_first = [int("region" in r.labels("demographic")) for r in sheets[0].records]
    region_second = [int("region" in r.labels("demographic")) for r in sheets[1].records]
    assert table.loc[("demographic", "region"), "kappa"] == pytest.approx(
        cohen_kappa_score(region_first, region_second)
    )
    sets = [
        [frozenset(a.labels("demographic")), frozenset(b.labels("demographic"))]
        for a, b in zip(*(s.records for s in sheets), strict=True)
    ]
    assert table.loc[("demographic", ""), "alpha_masi"] == pytest.approx(
        _set_alpha_by_package(sets, masi_distance)
    )
    disagreeing = sum(a != b for a, b in zip(first, second, strict=True))
    assert (result.disagreements["field"] == "access").sum() == disagreeing


def test_agreement_command_writes_disagreements_and_uses_fleiss_for_three(
    tmp_path: Path, fields: tuple
) -> None:
    paths = [
        write_workbook(tmp_path / f"{name}.xlsx", _annotator_records(seed, name, 12), fields)
        for seed, name in enumerate(["AB", "CD", "EF"])
    ]
    out, table_out = tmp_path / "disagreements.xlsx", tmp_path / "agreement.csv"
    result = CliRunner().invoke(
        app,
        [
            "agreement",
            *map(str, paths),
            "-o",
            str(out),
            "--table",
            str(table_out),
            "--taxonomy",
            str(TAXONOMY),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Agreement of AB, CD, EF" in result.output
    disagreements = pd.read_excel(out)
    assert {"paper_id", "field", "AB", "CD", "EF", "adjudicated"} <= set(disagreements.columns)
    table = pd.read_csv(table_out, keep_default_na=False)
    access = table[(table["field"] == "access") & (table["label"] == "")].iloc[0]
    ratings = [[r.labels("access")[0] for r in read_review(str(p), fields).records] for p in paths]
    units = np.array(list(zip(*ratings, strict=True)))
    counts, _ = aggregate_raters(units)
    assert access["kappa_statistic"] == "fleiss_kappa"
    assert float(access["kappa"]) == pytest.approx(statsmodels_fleiss(counts, method="fleiss"))
    assert len(disagreements) == sum(len(set(unit)) > 1 for unit in units) + sum(
        len({tuple(r.labels("demographic")) for r in records}) > 1
        for records in zip(*(read_review(str(p), fields).records for p in paths), strict=True)
    )
