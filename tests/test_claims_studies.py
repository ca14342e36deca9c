"""Every packaged study, on a small slice scored by the embedded model: its claims are consistent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import culture_probe as cp
from culture_probe.analysis import analyze, assert_consistent, summary_cells, tidy_responses

#: per study: items (an ordinal and a nominal one where the study has both) and proxies, chosen so
#: that every slice has two proxies per axis it touches (four crossed personas for the crossed
#: studies) and stays under about 110 prompts per language (the two-language crossed study asks
#: 288)
SLICES = {
    "values": ("family_importance", "JP,NG"),
    "values_languages": ("family_importance", "CN,JP"),
    "values_elicitation": ("family_importance", "US,JP"),
    "food": ("pork_acceptability,morning_drink", "IN,JP"),
    "food_religion": ("pork_at_home", "IN+islam,IN+hinduism,US+islam,US+hinduism"),
    "food_religion_languages": (
        "pork_at_home,everyday_staple",
        "IN+islam,IN+hinduism,US+islam,US+hinduism",
    ),
    "names": ("name_order", "EG,JP"),
    "social": ("deference_to_elders,caring_for_parents", "man,woman"),
    "technology": ("trusting_ai_assistants,drying_laundry", "BR,CN"),
}


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
    study: str, hf_backend: Any, repo: Path, tmp_path: Path
) -> None:
    items, proxies = SLICES[study]
    run = cp.run(
        repo / "taxonomy" / f"{study}.yaml",
        backend=hf_backend,
        out=tmp_path / "run",
        items=items,
        proxies=proxies,
        bootstrap=20,
        report=False,
    )
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
