"""The taxonomy file holds the survey's whole taxonomy, with usable demographic values."""

from __future__ import annotations

from pathlib import Path

import pytest

from culture_probe.errors import InputError
from culture_probe.taxonomy import Taxonomy, load_taxonomy


@pytest.fixture(scope="module")
def taxonomy(repo: Path) -> Taxonomy:
    return load_taxonomy(repo / "taxonomy" / "taxonomy.yaml")


def test_demographic_proxies_of_the_survey_are_all_there(taxonomy: Taxonomy) -> None:
    studied = {c.label for c in taxonomy.in_dimension("demographic") if c.status == "studied"}
    assert studied == {"Ethnicity", "Education", "Religion", "Race", "Gender", "Language", "Region"}
    extensions = {c.id for c in taxonomy.in_dimension("demographic") if c.status == "extension"}
    assert {"age", "socio_economic_class", "intersection"} <= extensions


def test_semantic_proxies_studied_and_not_yet_studied(taxonomy: Taxonomy) -> None:
    semantic = taxonomy.in_dimension("semantic")
    studied = {c.label for c in semantic if c.status == "studied"}
    assert studied == {
        "Emotions and Values",
        "Food and Drink",
        "Social and Political Relations",
        "Basic Actions and Technology",
        "Names",
    }
    assert sum(c.status == "not_yet_studied" for c in semantic) >= 16


def test_interaction_dimensions_and_methods(taxonomy: Taxonomy) -> None:
    assert {c.label for c in taxonomy.in_dimension("interaction")} == {
        "Aboutness",
        "Common Ground",
        "Objectives and Values",
        "Linguistic Form and Style",
    }
    methods = {c.id for c in taxonomy.in_dimension("method")}
    assert {"black_box_discriminative", "black_box_generative", "white_box"} <= methods
    assert {"single_turn", "multi_turn"} <= methods


def test_every_entry_has_a_description_and_a_known_citation(taxonomy: Taxonomy) -> None:
    sources = {source.id for source in taxonomy.sources}
    for category in taxonomy.categories:
        assert category.description.strip(), category.id
        assert {part.strip() for part in category.citation.split(";")} <= sources


def test_countries_cover_every_inhabited_continent_with_iso_codes(taxonomy: Taxonomy) -> None:
    region = taxonomy.category("region")
    assert region is not None
    assert len(region.values) >= 40
    continents = {value.attributes["continent"] for value in region.values}
    assert {"Africa", "Asia", "Europe", "North America", "South America", "Oceania"} <= continents
    for value in region.values:
        assert len(value.id) == 2 and value.id.isupper(), value.id
        assert len(value.attributes["iso3166_alpha3"]) == 3, value.id
        assert value.attributes["wvs_name"], value.id
        assert value.attributes["languages"], value.id


def test_every_country_language_is_a_language_value(taxonomy: Taxonomy) -> None:
    language = taxonomy.category("language")
    region = taxonomy.category("region")
    assert language is not None and region is not None
    known = {value.id for value in language.values}
    for country in region.values:
        assert set(country.attributes["languages"]) <= known, country.id


def test_a_taxonomy_with_an_unknown_citation_names_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text(
        "sources:\n"
        "  - {id: survey, citation: A survey}\n"
        "dimensions:\n"
        "  - id: semantic\n"
        "    label: Semantic\n"
        "    categories:\n"
        "      - id: food\n"
        "        label: Food\n"
        "        description: Food.\n"
        "        citation: survy\n"
    )
    with pytest.raises(InputError) as caught:
        load_taxonomy(bad)
    message = str(caught.value)
    assert f"{bad}:10" in message
    assert "key 'citation'" in message
    assert "did you mean 'survey'?" in message
