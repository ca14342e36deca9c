"""Tidy export: one row per prompt x model x option, in CSV (formulas neutralised) and Parquet."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culture_probe.compare import compare
from culture_probe.errors import InputError
from culture_probe.export import export, neutralise_formulas
from test_compare_stats import make_run, synthetic_plan, synthetic_responses

FORMULA = '=HYPERLINK("http://example.invalid","click")'


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    plan = synthetic_plan(("q1", "q2"))
    # option texts and proxy names come from user files: a hostile one must stay text
    plan["options"] = [[FORMULA, "+1", "-1", "@sum"]] * len(plan)
    plan["proxy_name"] = plan["proxy_name"].where(plan["proxy"] != "JP", "\tJapan")
    responses_a = synthetic_responses(plan, seed=1)
    responses_a.at[0, "probs"] = []
    responses_a.loc[0, ["answer", "outcome"]] = [-1, "refused"]
    return (
        make_run(tmp_path / "a", "model-a", plan, responses_a),
        make_run(tmp_path / "b", "model-b", plan, synthetic_responses(plan, seed=2)),
    )


def test_one_row_per_prompt_model_and_option_with_the_probabilities(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    path = export(list(runs), tmp_path / "answers.parquet")
    table = pd.read_parquet(path)
    assert len(table) == 2 * 128 * 4
    assert list(table.columns[:2]) == ["prompt_id", "model"]
    assert not table.duplicated(["prompt_id", "model", "option_index"]).any()
    responses = pd.read_parquet(runs[1] / "responses.parquet").set_index("prompt_id")
    plan = pd.read_parquet(runs[1] / "plan.parquet").set_index("prompt_id")
    b = table.loc[table["model"] == "model-b (hf, float32)"]
    for row in b.sample(40, random_state=0).itertuples():
        assert row.probability == pytest.approx(
            responses.at[row.prompt_id, "probs"][row.option_index]
        )
        shown = list(plan.at[row.prompt_id, "display_to_canonical"])
        assert shown[row.display_position] == row.option_index
        assert row.option_label == "ABCD"[row.display_position]
        assert row.chosen == (responses.at[row.prompt_id, "answer"] == row.option_index)
    # probabilities sum to 1 per prompt, and exactly one option is chosen
    per_prompt = b.groupby("prompt_id")
    assert np.allclose(per_prompt["probability"].sum(), 1.0)
    assert (per_prompt["chosen"].sum() == 1).all()
    refused = table.loc[
        (table["model"] == "model-a (hf, float32)") & (table["outcome"] == "refused")
    ]
    assert len(refused) == 4 and refused["probability"].isna().all() and not refused["chosen"].any()


def test_csv_cells_a_spreadsheet_would_evaluate_stay_text(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    path = export(compare(list(runs), n_bootstrap=100), tmp_path / "answers.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 128 * 4
    texts = {row["option_text"] for row in rows}
    assert texts == {"'" + FORMULA, "'+1", "'-1", "'@sum"}
    assert {row["proxy_name"] for row in rows if row["proxy"] == "JP"} == {"'\tJapan"}
    every_cell = [value for row in rows for value in row.values()]
    assert not [v for v in every_cell if v[:1] in ("=", "+", "@", "\t", "\r")]
    # numbers stay numbers: only text cells are touched
    assert pd.read_csv(path)["probability"].dtype == np.float64


def test_the_formula_neutraliser_leaves_numbers_and_plain_text_alone() -> None:
    frame = pd.DataFrame({"text": ["=1", "plain", "-x", None], "value": [-1.5, 2.0, 3.0, 4.0]})
    out = neutralise_formulas(frame)
    assert out["text"].tolist()[:3] == ["'=1", "plain", "'-x"] and pd.isna(out["text"].iat[3])
    assert out["value"].tolist() == [-1.5, 2.0, 3.0, 4.0]


def test_export_refuses_an_unknown_format_and_writes_nothing(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="unknown export format 'xlsx'"):
        export(runs[0], tmp_path / "answers.xlsx", format="xlsx")
    assert not (tmp_path / "answers.xlsx").exists()
    with pytest.raises(InputError, match=r"is not a run directory \(no manifest\.json\)"):
        export(tmp_path, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_the_module_is_callable_like_the_function_it_exports(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    import culture_probe.export as module

    written = module(runs[0], tmp_path / "a.parquet")
    assert len(pd.read_parquet(written)) == 128 * 4


def test_line_breaks_inside_option_texts_keep_one_csv_row_per_record(tmp_path: Path) -> None:
    plan = synthetic_plan(("q1",))
    plan["options"] = [["Yes\rof course", "No\nnever", "Maybe\r\nlater", "plain"]] * len(plan)
    run = make_run(tmp_path / "a", "model-a", plan, synthetic_responses(plan, seed=1))
    path = export(run, tmp_path / "answers.csv")
    table = pd.read_csv(path)
    assert len(table) == len(plan) * 4
    assert set(table["option_text"]) == {"Yes\rof course", "No\nnever", "Maybe\r\nlater", "plain"}
    with path.open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len(plan) * 4
