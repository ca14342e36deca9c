"""Studies as factorial designs: crossed axes, format factors, option-order policy and a budget."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from culture_probe.design import (
    build_plan,
    describe_design,
    design_units,
    enumerate_options,
    example_prompts,
    option_orders,
    smallest_budget,
)
from culture_probe.errors import InputError
from culture_probe.study import load_study
from culture_probe.taxonomy import load_taxonomy

ITEMS = """\
items:
  - id: pork
    scale: ordinal
    options: [Often, Sometimes, Rarely, Never]
    paraphrases: ["How often do you eat pork?", "How often is pork on your table?"]
  - id: tea
    scale: ordinal
    options: [Every day, Some days, Never]
    paraphrases: ["How often do you drink tea?", "How often is there tea in your cup?"]
  - id: staple
    scale: nominal
    options: [Rice, Bread, Potatoes]
    paraphrases: ["Which staple do you eat most?", "Which of these is on your plate most days?"]
  - id: sweet
    scale: nominal
    options: [Fruit, Cake, Rice pudding]
    paraphrases: ["Which dessert do you eat most?", "Which sweet do you have after dinner?"]
"""


def write_study(folder: Path, repo: Path, body: str, items: str = ITEMS) -> Path:
    """A study beside its own items, with the packaged taxonomy, template and framings."""
    (folder / "items.yaml").write_text(items)
    study = folder / "study.yaml"
    study.write_text(
        "study: probe\n"
        "semantic_proxy: food_and_drink\n"
        f"taxonomy: {repo / 'taxonomy' / 'taxonomy.yaml'}\n"
        "items: items.yaml\n"
        f"template: {repo / 'probes' / 'templates' / 'multiple_choice.en.j2'}\n"
        f"framings: {repo / 'probes' / 'framings' / 'persona.en.yaml'}\n"
        "use_framings: [how_would]\n" + body
    )
    return study


def line_of(path: Path, fragment: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def error_of(study: Path, **options: int) -> str:
    with pytest.raises(InputError) as caught:
        build_plan(load_study(study, **options))
    return str(caught.value)


CROSSED = """\
axes:
  region: [IN, IL, US]
  religion: [islam, hinduism, judaism]
cross: [region, religion]
exclude:
  - {region: [IL, US], religion: hinduism}
persona:
  culture: "a {{ religion.adjective }} person {{ region.in_phrase }}"
  placebo: "a person {{ placebo.clause }}"
controls:
  baseline: true
  placebos: [colour_green]
"""


# ---------------------------------------------------------------------------------------- crossing


@pytest.fixture(scope="module")
def food_religion(repo: Path) -> pd.DataFrame:
    return build_plan(load_study(repo / "taxonomy" / "food_religion.yaml"))


def test_the_food_study_crosses_religion_with_country(food_religion: pd.DataFrame) -> None:
    cultures = food_religion[food_religion["proxy_kind"] == "culture"]
    pairs = set(zip(cultures["axis_region"], cultures["axis_religion"], strict=True))
    expected = set(
        itertools.product(
            ["IN", "IL", "US"], ["hinduism", "islam", "judaism", "christianity", "zoroastrianism"]
        )
    ) - {("IL", "zoroastrianism")}
    assert pairs == expected
    assert set(cultures["axis"]) == {"region x religion"}
    assert set(cultures["proxy"]) == {f"{region}+{religion}" for region, religion in expected}
    row = food_religion[
        (food_religion["proxy"] == "IN+islam") & (food_religion["framing"] == "think_of")
    ]
    assert row["user"].iloc[0].startswith("Think of a typical Muslim family in India.\n\n")
    us = food_religion[
        (food_religion["proxy"] == "US+judaism") & (food_religion["framing"] == "describe")
    ]
    assert (
        us["system"].iloc[0]
        == "You describe the everyday life of a typical Jewish family in the United States."
    )


def test_placebos_take_the_shape_of_the_crossed_persona(food_religion: pd.DataFrame) -> None:
    placebo = food_religion[food_religion["proxy"] == "blue_front_door"]
    assert placebo["user"].str.contains("Think of a typical family whose front door is blue.").any()
    # placebos and the baseline sit on no axis: "" in every axis column
    controls = food_religion[food_religion["proxy_kind"] != "culture"]
    assert (controls[["axis_region", "axis_religion"]] == "").all().all()


def test_plan_size_is_the_product_and_is_shown(food_religion: pd.DataFrame) -> None:
    # 3 ordinal items x 16 personas x 3 paraphrases x 2 framings x 2 orders, the nominal item in 4
    # cyclic orders, and the baseline (one framing) over every item
    assert len(food_religion) == 3 * 16 * 3 * 2 * 2 + 16 * 3 * 2 * 4 + (3 * 3 * 2 + 3 * 4) == 990
    line = describe_design(food_religion)
    assert "[3 region x 5 religion - 1 excluded = 14 personas] + 2 placebos" in line
    assert line.endswith("= 990 prompts")


def test_a_study_adds_values_in_its_own_taxonomy_file(repo: Path) -> None:
    study = load_study(repo / "taxonomy" / "food_religion.yaml")
    religion = study.taxonomy.category("religion")
    assert religion is not None and religion.value("zoroastrianism") is not None
    packaged = load_taxonomy(repo / "taxonomy" / "taxonomy.yaml").category("religion")
    assert packaged is not None and packaged.value("zoroastrianism") is None  # not edited
    assert any(path.endswith("food_religion.taxonomy.yaml") for path in study.files)


def test_israel_is_in_the_taxonomy(repo: Path) -> None:
    region = load_taxonomy(repo / "taxonomy" / "taxonomy.yaml").category("region")
    assert region is not None
    israel = region.value("IL")
    assert israel is not None and israel.name == "Israel" and israel.forms["adjective"] == "Israeli"


def test_crossed_axes_with_exclusions_and_example_prompts(tmp_path: Path, repo: Path) -> None:
    plan = build_plan(load_study(write_study(tmp_path, repo, CROSSED)))
    cultures = set(plan.loc[plan["proxy_kind"] == "culture", "proxy"])
    assert len(cultures) == 9 - 2 and "IL+hinduism" not in cultures and "IN+hinduism" in cultures
    kinds = [kind for kind, _, _ in example_prompts(plan)]
    assert kinds[:3] == ["persona IN+islam", "placebo colour_green", "baseline"]
    _, _, user = example_prompts(plan)[0]
    assert user.startswith("How would a Muslim person in India answer the following question?")


def test_axes_not_crossed_are_said_to_be_added(tmp_path: Path, repo: Path) -> None:
    body = CROSSED.split("cross:")[0]
    plan = build_plan(load_study(write_study(tmp_path, repo, body)))
    assert "3 region + 3 religion (added, not crossed)" in describe_design(plan)
    assert set(plan["axis_religion"]) == {"", "islam", "hinduism", "judaism"}


@pytest.mark.parametrize(
    ("edit", "fragment", "expected"),
    [
        (
            ("religion: hinduism}", "religion: sikhism}"),
            "sikhism",
            "key 'exclude.religion': exclude names 'sikhism'",
        ),
        (
            ("cross: [region, religion]", "cross: [region, religoin]"),
            "religoin",
            "key 'cross': 'religoin' is not an axis",
        ),
        (
            ("  religion: [islam, hinduism, judaism]", "  religion: []"),
            "religion: []",
            "key 'axes.religion': axis 'religion' has no values",
        ),
        (
            ("{{ religion.adjective }}", "{{ religion.adjectiv }}"),
            "adjectiv",
            "key 'persona.culture': template uses an undefined variable",
        ),
        (('  placebo: "a person {{ placebo.clause }}"\n', ""), "persona:", "key 'persona.placebo'"),
    ],
)
def test_bad_crossings_name_file_line_and_key(
    tmp_path: Path, repo: Path, edit: tuple[str, str], fragment: str, expected: str
) -> None:
    assert edit[0] in CROSSED
    study = write_study(tmp_path, repo, CROSSED.replace(*edit))
    message = error_of(study)
    assert f"{study}:{line_of(study, fragment)}: {expected}" in message


def test_unknown_keys_list_the_valid_ones_and_suggest_only_close_spellings(
    tmp_path: Path, repo: Path
) -> None:
    study = write_study(tmp_path, repo, CROSSED.replace("cross:", "intersections:"))
    message = error_of(study)
    assert "unknown key in a study (valid keys: " in message and "cross, " in message
    assert "did you mean" not in message
    study.write_text(study.read_text().replace("intersections:", "crosss:"))
    assert "did you mean 'cross'?" in error_of(study)


# ---------------------------------------------------------------------------------- format factors


FORMATS = """\
axes:
  region: [JP]
formats:
  enumerator: ["A.", "(a)", "1.", "i.", none]
  separator: ["\\n", "; "]
  instruction: [default, "Reply with the {{ label_word }} of your choice ({{ labels | join('/') }})."]
  shots: [0, 1, 3]
"""


@pytest.fixture(scope="module")
def formats_plan(tmp_path_factory: pytest.TempPathFactory, repo: Path) -> pd.DataFrame:
    return build_plan(load_study(write_study(tmp_path_factory.mktemp("formats"), repo, FORMATS)))


def test_format_factors_are_crossed_and_have_their_columns(formats_plan: pd.DataFrame) -> None:
    # 4 items x 2 paraphrases x 2 orders (ordinal: canonical + reversed; nominal: the default
    # canonical + reversed) x 5 enumerators x 2 separators x 2 instructions x 3 shots
    assert len(formats_plan) == 4 * 2 * 2 * 5 * 2 * 2 * 3
    assert set(formats_plan["enumerator"]) == {"A.", "(a)", "1.", "i.", "none"}
    assert set(formats_plan["separator"]) == {"\n", "; "}
    assert set(formats_plan["instruction"]) == {"default", "i2"}
    assert set(formats_plan["shots"]) == {"0", "1", "3"}
    assert formats_plan["prompt_id"].is_unique
    assert set(formats_plan["wording"]) == {"p1/how_would", "p2/how_would"}  # formats stay apart


def _one(plan: pd.DataFrame, **where: str) -> pd.Series:
    rows = plan
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, where
    return rows.iloc[0]


BASE = {
    "item_id": "pork",
    "paraphrase": "p1",
    "order": "canonical",
    "instruction": "default",
    "shots": "0",
}


@pytest.mark.parametrize(
    ("enumerator", "labels", "first_line"),
    [
        ("A.", ["A", "B", "C", "D"], "A. Often"),
        ("(a)", ["a", "b", "c", "d"], "(a) Often"),
        ("1.", ["1", "2", "3", "4"], "1. Often"),
        ("i.", ["i", "ii", "iii", "iv"], "i. Often"),
        ("none", ["Often", "Sometimes", "Rarely", "Never"], "Often"),
    ],
)
def test_labels_follow_the_enumerator(
    formats_plan: pd.DataFrame, enumerator: str, labels: list[str], first_line: str
) -> None:
    row = _one(formats_plan, **BASE, enumerator=enumerator, separator="\n")
    assert list(row["option_labels"]) == labels
    assert f"\n\n{first_line}\n" in row["user"]
    inline = _one(formats_plan, **BASE, enumerator=enumerator, separator="; ")
    assert f"{first_line}; " in inline["user"]


def test_bare_options_whose_first_words_repeat_are_answered_by_position() -> None:
    shown = enumerate_options(
        "none", ["Not very important", "Not at all important", "Very important"]
    )
    assert shown.labels == ["1", "2", "3"] and shown.style == "positions"
    assert enumerate_options("[I]", ["x", "y"]).lines == ["[I] x", "[II] y"]


def test_a_reversed_order_keeps_each_label_with_its_option(formats_plan: pd.DataFrame) -> None:
    row = _one(formats_plan, **{**BASE, "order": "reversed"}, enumerator="none", separator="\n")
    shown = [row["options"][index] for index in row["display_to_canonical"]]
    assert (
        list(row["option_labels"])
        == [text.split()[0] for text in shown]
        == ["Never", "Rarely", "Sometimes", "Often"]
    )


def test_the_instruction_factor_replaces_the_template_instruction(
    formats_plan: pd.DataFrame,
) -> None:
    row = _one(formats_plan, **{**BASE, "instruction": "i2"}, enumerator="i.", separator="\n")
    assert row["user"].endswith("Reply with the numeral of your choice (i/ii/iii/iv).")
    default = _one(formats_plan, **BASE, enumerator="i.", separator="\n")
    assert default["user"].endswith("Answer with the roman numeral of one option only.")


def test_demonstrations_come_from_other_items_deterministically(formats_plan: pd.DataFrame) -> None:
    questions = {
        "pork": "How often do you eat pork?",
        "tea": "How often do you drink tea?",
        "staple": "Which staple do you eat most?",
        "sweet": "Which dessert do you eat most?",
    }
    for item_id, own in questions.items():
        where = {**BASE, "item_id": item_id, "enumerator": "A.", "separator": "\n"}
        one = _one(formats_plan, **{**where, "shots": "1"})["user"]
        three = _one(formats_plan, **{**where, "shots": "3"})["user"]
        others = [text for other, text in questions.items() if other != item_id]
        assert sum(text in three for text in others) == 3  # all the other items, never its own
        assert three.count("Answer: ") == 3 and one.count("Answer: ") == 1
        demo = next(text for text in others if text in one)
        assert three.index(demo) < min(three.index(t) for t in others if t != demo)  # nested
        assert own in one.split("Answer: ")[-1]  # the item asked comes last


def test_demonstrations_are_the_same_in_a_second_build(tmp_path: Path, repo: Path) -> None:
    study = write_study(tmp_path, repo, FORMATS)
    first, second = build_plan(load_study(study)), build_plan(load_study(study))
    assert first["user"].tolist() == second["user"].tolist()
    assert first["prompt_id"].tolist() == second["prompt_id"].tolist()


def test_default_formats_keep_the_prompt_ids_they_had(tmp_path: Path, repo: Path) -> None:
    plain = build_plan(load_study(write_study(tmp_path, repo, "axes:\n  region: [JP]\n")))
    varied = build_plan(load_study(write_study(tmp_path, repo, FORMATS)))
    defaults = varied[
        (varied["enumerator"] == "A.")
        & (varied["separator"] == "\n")
        & (varied["instruction"] == "default")
        & (varied["shots"] == "0")
    ]
    assert set(defaults["prompt_id"]) == set(plain["prompt_id"])
    assert (plain["enumerator"] == "A.").all() and (plain["shots"] == "0").all()


@pytest.mark.parametrize(
    ("block", "fragment", "expected"),
    [
        (
            'formats:\n  enumerator: ["A.", "(aa)"]\n',
            "(aa)",
            "key 'formats.enumerator': unknown enumerator '(aa)'",
        ),
        (
            "formats:\n  shots: [0, 4]\n",
            "shots",
            "key 'formats.shots': 4 demonstrations need 5 multiple-choice items",
        ),
        (
            "formats:\n  separator: []\n",
            "separator",
            "key 'formats.separator': factor 'separator' has no variants",
        ),
        (
            "formats:\n  orders: [canonical]\n",
            "orders",
            "key 'orders': unknown key in formats (valid keys: enumerator, instruction, separator, shots)",
        ),
        (
            "option_orders: {ordinal: [cyclic]}\n",
            "ordinal",
            "key 'option_orders.ordinal': 'cyclic' is not an order for this scale",
        ),
    ],
)
def test_bad_format_factors_name_file_line_and_key(
    tmp_path: Path, repo: Path, block: str, fragment: str, expected: str
) -> None:
    study = write_study(tmp_path, repo, "axes:\n  region: [JP]\n" + block)
    assert f"{study}:{line_of(study, fragment)}: {expected}" in error_of(study)


# -------------------------------------------------------------------------------------- orders


def test_ordinal_scales_are_never_shifted_cyclically(repo: Path) -> None:
    food = build_plan(load_study(repo / "taxonomy" / "food.yaml"))
    assert set(food.loc[food["scale"] == "ordinal", "order"]) == {"canonical", "reversed"}
    assert {"cyclic1", "cyclic2"} <= set(food.loc[food["scale"] == "nominal", "order"])


def test_permutations_where_few_and_cyclic_shifts_where_many(tmp_path: Path, repo: Path) -> None:
    assert len(option_orders(("permutations",), 3)) == 6
    assert len(option_orders(("permutations",), 5)) == 5  # 120 would be too many: cyclic
    study = write_study(
        tmp_path,
        repo,
        "axes:\n  region: [JP]\noption_orders: {ordinal: [canonical], nominal: [permutations]}\n",
    )
    plan = build_plan(load_study(study))
    per_item = plan.groupby("item_id")["order"].nunique().to_dict()
    assert per_item == {"pork": 1, "tea": 1, "staple": 6, "sweet": 6}


# -------------------------------------------------------------------------------------- budget


def test_a_budget_draws_a_balanced_fraction(tmp_path: Path, repo: Path) -> None:
    # 160 of 320 prompts: the smallest budget is now 128 (each of the 4 items asked 32 times so
    # that every format factor and every two-way interaction keeps a degree of freedom), so the
    # 80 this test drew before is refused
    study = write_study(
        tmp_path, repo, FORMATS.replace("  shots: [0, 1, 3]\n", "") + "budget: 160\n"
    )
    plan = build_plan(load_study(study))
    assert len(plan) == 160 and plan["prompt_id"].is_unique
    assert plan.attrs["full_size"] == 4 * 2 * 2 * 5 * 2 * 2
    assert plan["item_id"].value_counts().tolist() == [40] * 4  # even per item
    for item, rows in plan.groupby("item_id"):
        for column in ("enumerator", "separator", "instruction", "order", "paraphrase"):
            counts = rows[column].value_counts()
            assert counts.max() - counts.min() <= 1, (item, column, counts.to_dict())
    assert "budget: a balanced 160 prompts" in describe_design(plan)
    again = build_plan(load_study(study))
    assert again["prompt_id"].tolist() == plan["prompt_id"].tolist()


def test_a_budget_too_small_to_estimate_every_factor(tmp_path: Path, repo: Path) -> None:
    study = write_study(tmp_path, repo, FORMATS + "budget: 30\n")
    message = error_of(study)
    assert (
        f"{study}:{line_of(study, 'budget: 30')}: key 'budget': a budget of 30 prompts" in message
    )
    # one culture, so per item the grand mean, the format factors' and the order's and the
    # paraphrase's levels - 1 (1 + 1 + 4 + 1 + 1 + 2 = 10), their two-way interactions
    # ((10^2 - (1 + 1 + 16 + 1 + 1 + 4)) / 2 = 38) and one residual degree of freedom
    assert smallest_budget(design_units(load_study(study))) == 4 * (1 + 10 + 38 + 1)
    assert "needs at least 200 (4 items" in message
    assert "key '--budget': a budget of 12 prompts" in error_of(study, budget=12)
    assert len(build_plan(load_study(study, budget=220))) == 220  # the command line wins


# ------------------------------------------------------------------------------- YAML and templates


def test_norway_and_norwegian_stay_strings(tmp_path: Path, repo: Path) -> None:
    study = write_study(tmp_path, repo, "axes:\n  region: [NO, DE]\n")
    plan = build_plan(load_study(study))
    assert set(plan["proxy"]) == {"NO", "DE"}
    assert "a person from Norway" in plan["user"].iloc[0]


def test_a_byte_order_mark_is_dropped_from_templates_and_yaml(tmp_path: Path, repo: Path) -> None:
    template = tmp_path / "template.j2"
    source = (repo / "probes" / "templates" / "multiple_choice.en.j2").read_text()
    template.write_bytes(b"\xef\xbb\xbf" + source.encode())
    study = write_study(tmp_path, repo, "axes:\n  region: [JP]\n")
    study.write_bytes(
        b"\xef\xbb\xbf"
        + study.read_text()
        .replace(str(repo / "probes" / "templates" / "multiple_choice.en.j2"), "template.j2")
        .encode()
    )
    plan = build_plan(load_study(study))
    assert not plan["user"].str.contains("\ufeff").any()
    assert plan["user"].str.contains("How often do you eat pork?\n\nA. Often", regex=False).any()


@pytest.mark.parametrize(
    "tag", ["{% include 'x.j2' %}", "{% import 'x.j2' as x %}", "{% extends 'x.j2' %}"]
)
def test_templates_cannot_reach_other_files(tmp_path: Path, repo: Path, tag: str) -> None:
    (tmp_path / "template.j2").write_text("{{ question }}\n" + tag + "\n")
    study = write_study(tmp_path, repo, "axes:\n  region: [JP]\n")
    study.write_text(
        study.read_text().replace(
            str(repo / "probes" / "templates" / "multiple_choice.en.j2"), "template.j2"
        )
    )
    message = error_of(study)
    assert f"{tmp_path / 'template.j2'}:2: templates cannot use" in message


def test_alias_bombs_are_refused_under_any_key(tmp_path: Path, repo: Path) -> None:
    bomb = "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 10 if previous else ['x'] * 10)}]\n"
        for previous, name in zip([None, "a", "b", "c"], ["a", "b", "c", "d"], strict=True)
    )
    for where in (
        "axes:\n  region: [*d]\n",
        "axes:\n  region: [JP]\ncontrols:\n  placebos: [*d]\n",
    ):
        study = write_study(tmp_path, repo, where)
        study.write_text(bomb + study.read_text())
        message = error_of(study)
        assert "aliases expand to more than 10,000 nodes" in message
        assert f"{study}:{line_of(study, '[*c, *c')}" in message


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path, repo: Path) -> None:
    study = write_study(tmp_path, repo, "axes:\n  region: [JP]\n")
    with study.open("a") as handle:
        handle.write("#" + "x" * 5_000_000 + "\n")
    assert (
        f"file is {study.stat().st_size:,} bytes; a study, items, framings or taxonomy file (YAML) "
        "may be at most 4,194,304 bytes (4 MiB)" in error_of(study)
    )


@pytest.mark.parametrize(
    ("old", "new", "fragment", "expected"),
    [
        (
            "options: [Rice, Bread, Potatoes]",
            "options: [Rice, Bread, rice]",
            "rice]",
            "key 'options': option 3 repeats option 1",
        ),
        (
            '"How often is pork on your table?"',
            '"How often do you eat pork?"',
            'pork?", "How often do you eat pork',
            "key 'paraphrases': paraphrase 2 repeats paraphrase 1",
        ),
    ],
)
def test_duplicate_options_and_paraphrases_are_refused(
    tmp_path: Path, repo: Path, old: str, new: str, fragment: str, expected: str
) -> None:
    items = ITEMS.replace(old, new)
    study = write_study(tmp_path, repo, "axes:\n  region: [JP]\n", items=items)
    path = tmp_path / "items.yaml"
    assert f"{path}:{line_of(path, fragment)}: {expected}" in error_of(study)


JA_ITEMS = """\
items:
  - id: pork
    options: [Often, Never]
    paraphrases: ["How often do you eat pork?"]
    translations:
      ja: {options: [よく, まったくない], paraphrases: ["豚肉をどのくらい食べますか。"]}
"""
FRAMINGS_EN = 'framings:\n  - {id: think, user: "Think of {{ persona }}. {{ question }}"}\n'
FRAMINGS_JA = """\
language: ja
compose:
  culture: "{{ region.in_phrase }}{{ religion.adjective }}の家族"
forms:
  IN: {in_phrase: "インドの"}
  JP: {in_phrase: "日本の"}
  islam: {adjective: イスラム教徒}
  hinduism: {adjective: ヒンドゥー教徒}
framings:
  - {id: think, user: "{{ persona }}を考えてください。{{ question }}"}
"""


def test_a_crossed_persona_is_composed_in_each_language(tmp_path: Path, repo: Path) -> None:
    (tmp_path / "framings.en.yaml").write_text(FRAMINGS_EN)
    (tmp_path / "framings.ja.yaml").write_text(FRAMINGS_JA)
    body = (
        "languages: [en, ja]\naxes:\n  region: [IN, JP]\n  religion: [islam, hinduism]\n"
        'cross: all\npersona:\n  culture: "a {{ religion.adjective }} family {{ region.in_phrase }}"\n'
    )
    study = write_study(tmp_path, repo, body, items=JA_ITEMS)
    text = study.read_text().replace("use_framings: [how_would]\n", "")
    text = text.replace(
        str(repo / "probes" / "framings" / "persona.en.yaml"), "framings.{lang}.yaml"
    )
    text = text.replace("multiple_choice.en.j2", "multiple_choice.{lang}.j2")
    study.write_text(text)
    plan = build_plan(load_study(study))
    rows = plan[(plan["proxy"] == "IN+islam") & (plan["order"] == "canonical")].set_index(
        "language"
    )
    assert rows.loc["en", "user"].startswith("Think of a Muslim family in India. ")
    assert rows.loc["ja", "user"].startswith("インドのイスラム教徒の家族を考えてください。")
    (tmp_path / "framings.ja.yaml").write_text(
        FRAMINGS_JA.replace("compose:\n  culture:", "description:")
    )
    message = error_of(study)
    assert "framings.ja.yaml" in message and "key 'compose'" in message


def test_the_intersection_category_points_to_cross(tmp_path: Path, repo: Path) -> None:
    study = write_study(tmp_path, repo, "axes:\n  intersection: [IN_islam]\n")
    message = error_of(study)
    assert f"{study}:{line_of(study, 'intersection')}: key 'axes.intersection'" in message
    assert "cross: [region, religion]" in message
