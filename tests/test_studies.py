"""The semantic-domain studies: Food and Drink, Social and Political Relations, Basic Actions and
Technology, Names."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from culture_probe.design import build_plan
from culture_probe.study import Study, load_study

DOMAINS = {
    "food": "food_and_drink",
    "social": "social_and_political_relations",
    "technology": "basic_actions_and_technology",
    "names": "names",
}


@pytest.fixture(scope="module", params=sorted(DOMAINS))
def domain(request: pytest.FixtureRequest, repo: Path) -> tuple[Study, pd.DataFrame]:
    study = load_study(repo / "taxonomy" / f"{request.param}.yaml")
    return study, build_plan(study)


def test_each_domain_study_meets_its_design(domain: tuple[Study, pd.DataFrame]) -> None:
    study, plan = domain
    assert study.semantic_proxy == DOMAINS[study.id]
    assert len(study.items) >= 6
    for item in study.items:
        assert len(item.paraphrases) >= 4, item.id
        assert len(set(item.paraphrases)) == len(item.paraphrases), item.id
        assert 3 <= len(item.options) <= 6, (item.id, item.options)
        assert len(set(item.options)) == len(item.options), item.id
    axes = {proxy.axis for proxy in study.proxies if proxy.kind == "culture"}
    assert "region" in axes and len(axes) >= 2  # crossed with more than country
    assert {"placebo"} <= set(plan["proxy_kind"])
    assert 500 <= len(plan) <= 5000 and plan["prompt_id"].is_unique


def test_options_with_commas_stay_one_option(repo: Path) -> None:
    food = load_study(repo / "taxonomy" / "food.yaml")
    staple = next(item for item in food.items if item.id == "staple_with_dinner")
    assert "Maize (tortillas, ugali or polenta)" in staple.options
    names = load_study(repo / "taxonomy" / "names.yaml")
    order = next(item for item in names.items if item.id == "name_order")
    assert order.options[0] == "Family name first, then given name"


@pytest.mark.parametrize("name", ["food", "technology", "names"])
def test_cyclic_orders_show_every_option_at_every_position_equally(repo: Path, name: str) -> None:
    study = load_study(repo / "taxonomy" / f"{name}.yaml")
    assert study.option_orders == ("cyclic",)
    plan = build_plan(study)
    nominal = plan[plan["scale"] == "nominal"]
    for (item_id, proxy), rows in nominal.groupby(["item_id", "proxy"]):
        first_shown = Counter(order[0] for order in rows["display_to_canonical"])
        assert len(set(first_shown.values())) == 1, (item_id, proxy, first_shown)
        assert set(first_shown) == set(range(rows["n_options"].iat[0]))


def test_subnational_regions_have_their_own_personas(repo: Path) -> None:
    food = load_study(repo / "taxonomy" / "food.yaml")
    plan = build_plan(food)
    row = plan[(plan["proxy"] == "IN-TN") & (plan["framing"] == "imagine")].iloc[0]
    assert row["system"] == "Imagine you are a person from Tamil Nadu, India."
    assert row["axis"] == "subnational_region"
