"""Every packaged study, on a small slice scored by the embedded model: its claims are consistent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from culture_probe.analysis import analyze, assert_consistent, summary_cells, tidy_responses
from packaged_studies import SLICES


def test_every_packaged_study_has_a_slice(repo: Path) -> None:
    studies = {
        path.stem
        for path in (repo / "taxonomy").glob("*.yaml")
        if "\nstudy:" in "\n" + path.read_text(encoding="utf-8")
    }
    assert studies == set(SLICES)


@pytest.mark.slow
@pytest.mark.parametrize("study", sorted(SLICES))
def test_claims_of_a_packaged_study_agree_with_its_tables(
    study: str, packaged_study_runs: Any
) -> None:
    run = packaged_study_runs[study]
    result = analyze(tidy_responses(run.plan, run.responses), n_bootstrap=50, n_permutations=19)
    assert result.claims, result.headline
    assert_consistent(result.claims, result.tables, result.summary, summary_cells(result.summary))
    assert [claim["sentence"] for claim in run.summary["claims"]]  # the run wrote its claims
    nominal = run.plan.loc[run.plan["scale"] == "nominal", "item_id"].unique()
    if len(nominal):
        assert set(result.tables["nominal_stats"]["item_id"]) == set(nominal)
        assert not set(nominal) & set(result.tables["factor_stats"]["item_id"])
    if " x " in "".join(run.plan["axis"].unique()):
        # a sentence per axis and per interaction, with its share or, truncated to zero beside a
        # significant culture test, in words
        text = " ".join(result.headline)
        zero = next((c.words["names"] for c in result.claims if c.kind == "note"), "")
        for name, kind in (("region", "axis"), ("religion", "axis"), ("region × religion", "")):
            said = f"The {name} {kind or 'interaction of the axes'} explains" in text
            assert said or name in re.split(r", | and ", zero), text
        assert "India × Islam" in set(run.plan["proxy_name"])
