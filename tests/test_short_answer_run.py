"""An imported BLEnD-format study scored end to end: written answers, matches, analysis and report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from culture_probe.analysis._short_answer import item_clustered_rate
from culture_probe.analysis._terminal import _number, format_terminal_summary
from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.generation import short_answer_result
from culture_probe.planning import prepare
from culture_probe.runner import analyze_run_dir, report_run_dir
from culture_probe.scoring import with_matches
from upstream import KOREA_CHICKEN_SHARE


@pytest.fixture
def short_decoding(hf_backend: object) -> Iterator[object]:
    """The session's embedded model, greedy and 12 new tokens, restored afterwards."""
    saved = hf_backend.generation  # type: ignore[attr-defined]
    hf_backend.generation = replace(saved, temperature=0.0, max_new_tokens=12)  # type: ignore[attr-defined]
    yield hf_backend
    hf_backend.generation = saved  # type: ignore[attr-defined]


def test_blend_study_runs_end_to_end(
    short_decoding: object, scored_blend_run: Callable[[Any], Any]
) -> None:
    scored = scored_blend_run(short_decoding)
    prepared, responses, run_dir = scored.prepared, scored.responses, scored.run_dir

    stored = pd.read_parquet(run_dir / "responses.parquet")
    assert len(stored) == 3 and stored["generated"].str.strip().str.len().gt(0).all()
    answers = pd.read_parquet(run_dir / "answers.parquet")
    merged = prepared.plan[["prompt_id", "item_id", "proxy"]].merge(stored, on="prompt_id")
    for row in merged.itertuples():
        annotated = answers.loc[
            (answers["item_id"] == row.item_id) & (answers["proxy"] == row.proxy)
        ]
        found = [a for a in annotated["answer"] if a.casefold() in row.generated.casefold()]
        # an answered text matches exactly when some annotated answer occurs in it
        assert row.match == float(bool(found) and row.outcome == "answered")
        assert (row.matched_answer != "") == (row.match == 1.0)
    assert responses["match"].notna().all()

    result = analyze_run_dir(run_dir, bootstrap=200)
    table = pd.read_parquet(run_dir / "stats" / "short_answer.parquet")
    assert sorted(zip(table["proxy"], table["language"], strict=True)) == [
        ("GB", "en"),
        ("KR", "en"),
        ("KR", "ko"),
    ]
    by_cell = merged.merge(prepared.plan[["prompt_id", "language"]], on="prompt_id")
    expected = by_cell.set_index(["proxy", "language"])["match"]
    for row in table.itertuples():
        assert row.match_rate == expected[(row.proxy, row.language)]
        assert row.match_low <= row.match_rate <= row.match_high
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["short_answer"]["match_rate"]["estimate"] == pytest.approx(
        stored["match"].mean()
    )
    assert any("short-answer question" in sentence for sentence in summary["headline"])
    assert format_terminal_summary(result).row_count == 1 + 2 + 2  # all, 2 languages, 2 proxies

    page = report_run_dir(run_dir).read_text(encoding="utf-8")
    assert 'id="chart-short-answer"' in page and "table-short-answer" in page


def test_match_columns_on_a_hand_worked_answer(blend_study: Path) -> None:
    plan = prepare(blend_study).plan
    korea_en = plan.loc[(plan["proxy"] == "KR") & (plan["language"] == "en")]
    korea_en = pd.concat([korea_en] * 3, ignore_index=True).assign(prompt_id=["a", "b", "c"])
    request = ScoringRequest("p", "", "q", ())
    texts = ["I'd say fried chicken.", "I'm sorry, I can't answer that. Chicken?", "Pizza"]
    rows = [short_answer_result(request, text) for text in texts]
    responses = pd.DataFrame(
        {
            "prompt_id": ["a", "b", "c"],
            "outcome": [r.outcome for r in rows],
            "generated": texts,
        }
    )
    answers = pd.read_parquet(blend_study.parent / "answers.parquet")
    scored = with_matches(korea_en, responses, answers)
    # South Korea's beer food: 치킨 / fried chicken / chicken 4 votes of 7
    assert list(scored["match"]) == [1.0, 0.0, 0.0]
    assert list(scored["match_share"]) == [KOREA_CHICKEN_SHARE, 0.0, 0.0]
    assert scored["matched_answer"].iloc[0] in {"fried chicken", "chicken"}
    assert [r.outcome for r in rows] == ["answered", "refused", "answered"]


def test_item_clustered_interval_against_scipy_bootstrap() -> None:
    rng = np.random.default_rng(1)
    items = np.repeat(np.arange(12), 3)
    values = (rng.random(len(items)) < np.repeat(rng.random(12), 3)).astype(float)
    rate, low, high, n_items = item_clustered_rate(values, items, 20000, rng)
    item_means = pd.Series(values).groupby(items).mean().to_numpy()
    reference = stats.bootstrap(
        (item_means,), np.mean, n_resamples=20000, method="percentile", random_state=2
    ).confidence_interval
    assert n_items == 12 and rate == pytest.approx(item_means.mean())
    assert low == pytest.approx(reference.low, abs=0.02)
    assert high == pytest.approx(reference.high, abs=0.02)


def test_terminal_numbers_stay_short_for_huge_bounds() -> None:
    assert _number(8e25, short=True) == ">100"
    assert _number(float("inf")) == "∞"
    assert _number(-float("inf")) == "-∞"
    assert _number(100.0) == "100"
    assert _number(0.456, short=True) == ".46"
