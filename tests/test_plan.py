"""The plan: the full factorial design, one row per prompt, with stable content-hash ids."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from culture_probe.design import build_plan, option_orders
from culture_probe.planning import PlanFilter, prepare
from culture_probe.study import Study, load_study


@pytest.fixture(scope="module")
def values_study(repo: Path) -> Study:
    return load_study(repo / "taxonomy" / "values.yaml")


@pytest.fixture(scope="module")
def values_plan(values_study: Study) -> pd.DataFrame:
    return build_plan(values_study)


def test_plan_size_is_the_product_of_the_design(
    values_study: Study, values_plan: pd.DataFrame
) -> None:
    framed = [p for p in values_study.proxies if p.kind != "baseline"]
    has_baseline = any(p.kind == "baseline" for p in values_study.proxies)
    expected = 0
    formats = values_study.formats
    variants = (
        len(formats.enumerators)
        * len(formats.separators)
        * len(formats.instructions)
        * len(formats.shots)
    )
    for item in values_study.items:
        orders = len(option_orders(values_study.orders_for(item), len(item.options)))
        per_proxy = len(item.paraphrases) * orders * len(values_study.seeds) * variants
        expected += per_proxy * len(framed) * len(values_study.framings)
        expected += per_proxy if has_baseline else 0
    assert len(values_plan) == expected
    assert values_plan["prompt_id"].is_unique


def test_values_study_meets_its_design(values_study: Study, values_plan: pd.DataFrame) -> None:
    assert len(values_study.items) >= 12
    assert all(len(item.paraphrases) >= 4 for item in values_study.items)
    assert all(item.scale == "ordinal" and item.wvs_id for item in values_study.items)
    cultures = {p.id for p in values_study.proxies if p.kind == "culture"}
    assert len(cultures) >= 10
    assert {"baseline", "placebo"} <= set(values_plan["proxy_kind"])
    assert len(values_study.framings) >= 1
    assert set(values_plan["order"]) == {"canonical", "reversed"}
    assert set(values_plan["enumerator"]) == {"A.", "1.", "(a)"}  # a format factor
    assert 4000 <= len(values_plan) <= 4500  # about the size the study always had


def test_prompt_ids_are_the_same_in_a_fresh_process(repo: Path, values_plan: pd.DataFrame) -> None:
    code = (
        "import json; from culture_probe.runner import prepare; "
        "print(json.dumps(list(prepare('taxonomy/values.yaml').plan['prompt_id'][:50])))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert json.loads(fresh.stdout) == list(values_plan["prompt_id"][:50])


def test_prompt_ids_change_with_the_prompt_text(tmp_path: Path, repo: Path) -> None:
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    before = prepare(tmp_path / "taxonomy" / "values.yaml").plan.set_index("prompt_id")
    framings = tmp_path / "probes" / "framings" / "persona.en.yaml"
    framings.write_text(framings.read_text().replace("Imagine you are", "Picture yourself as"))
    after = prepare(tmp_path / "taxonomy" / "values.yaml").plan.set_index("prompt_id")
    changed = before.index.difference(after.index)
    assert len(changed) == (before["framing"] == "imagine").sum()
    assert set(before.loc[changed, "framing"]) == {"imagine"}


def test_reversed_order_shows_the_last_option_first(values_plan: pd.DataFrame) -> None:
    row = values_plan[(values_plan["order"] == "reversed")].iloc[0]
    first_shown = row["options"][row["display_to_canonical"][0]]
    assert first_shown == row["options"][-1]
    assert f"A. {first_shown}" in row["user"]


def test_persona_reaches_the_prompt_and_the_baseline_has_none(values_plan: pd.DataFrame) -> None:
    japan = values_plan[(values_plan["proxy"] == "JP") & (values_plan["framing"] == "imagine")]
    assert len(japan) and (japan["system"] == "Imagine you are a person from Japan.").all()
    baseline = values_plan[values_plan["proxy_kind"] == "baseline"]
    assert (baseline["system"] == "").all()
    assert not baseline["user"].str.contains("person from").any()


def test_cyclic_orders_put_every_option_at_every_position() -> None:
    orders = option_orders(("cyclic",), 4)
    assert len(orders) == 4
    for position in range(4):
        assert sorted(order.display_to_canonical[position] for order in orders) == [0, 1, 2, 3]


def test_filters_restrict_the_plan_and_name_unknown_values(repo: Path) -> None:
    prepared = prepare(
        repo / "taxonomy" / "values.yaml", PlanFilter(items=("family_importance",), proxies=("JP",))
    )
    assert set(prepared.plan["item_id"]) == {"family_importance"}
    assert set(prepared.plan["proxy"]) == {"JP"}
    assert list(prepared.plan["row"]) == list(range(len(prepared.plan)))
    with pytest.raises(Exception, match="did you mean 'JP'"):
        prepare(repo / "taxonomy" / "values.yaml", PlanFilter(proxies=("JPN",)))
