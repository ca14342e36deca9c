"""Prompt language as an axis: translated items, localised personas, the proxy x language decomposition."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from culture_probe.analysis import analyze
from culture_probe.analysis._language import language_table
from culture_probe.analysis._tidy import tidy_responses
from culture_probe.design import build_plan
from culture_probe.errors import InputError
from culture_probe.planning import PlanFilter, prepare
from culture_probe.scoring import score_plan, write_responses
from culture_probe.store import RunDirectory
from culture_probe.study import Study, load_study

LANGUAGES = ["en", "ja", "zh", "ar", "es"]


@pytest.fixture(scope="module")
def study(repo: Path) -> Study:
    return load_study(repo / "taxonomy" / "values_languages.yaml")


@pytest.fixture(scope="module")
def plan(study: Study) -> pd.DataFrame:
    return build_plan(study)


def test_the_same_question_is_asked_about_japan_in_english_and_in_japanese(
    plan: pd.DataFrame,
) -> None:
    japan = plan[(plan["proxy"] == "JP") & (plan["item_id"] == "family_importance")]
    assert sorted(japan["language"].unique()) == sorted(LANGUAGES)
    english = japan[(japan["language"] == "en") & (japan["paraphrase"] == "p1")].iloc[0]
    japanese = japan[(japan["language"] == "ja") & (japan["paraphrase"] == "p1")].iloc[0]
    assert english["system"] == "Imagine you are a person from Japan."
    assert japanese["system"] == "あなたは日本出身の人だと想像してください。"
    assert "家族" in japanese["user"] and "アルファベットだけで答えて" in japanese["user"]
    assert japanese["options"][0] == "とても重要" and english["options"][0] == "Very important"
    assert japanese["wording"] == "p1/imagine@ja"
    assert len(plan) == 3 * 4 * 5 * 4 * 2 and plan["prompt_id"].is_unique


def test_english_prompt_ids_do_not_depend_on_the_other_languages(
    tmp_path: Path, repo: Path, plan: pd.DataFrame
) -> None:
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    path = tmp_path / "taxonomy" / "values_languages.yaml"
    path.write_text(path.read_text().replace("languages: [en, ja, zh, ar, es]", "languages: [en]"))
    english_only = prepare(path).plan
    assert set(english_only["prompt_id"]) == set(plan.loc[plan["language"] == "en", "prompt_id"])


def test_a_missing_translation_names_the_item_and_language(tmp_path: Path, repo: Path) -> None:
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    path = tmp_path / "taxonomy" / "values_languages.yaml"
    path.write_text(path.read_text().replace("[en, ja, zh, ar, es]", "[en, ja, ko]"))
    with pytest.raises(
        InputError, match=r"file not found for language 'ko'.*multiple_choice\.ko\.j2"
    ):
        load_study(path)
    probes = tmp_path / "probes"
    shutil.copy(
        probes / "templates/multiple_choice.en.j2", probes / "templates/multiple_choice.ko.j2"
    )
    shutil.copy(probes / "framings/persona.en.yaml", probes / "framings/persona.ko.yaml")
    with pytest.raises(InputError, match="item 'family_importance' has no 'ko' translation"):
        load_study(path)
    path.write_text(path.read_text().replace("[en, ja, ko]", "[en, jp]"))
    with pytest.raises(InputError, match="did you mean 'ja'"):
        load_study(path)


def test_a_translation_with_fewer_options_is_rejected(tmp_path: Path, repo: Path) -> None:
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    items = tmp_path / "probes" / "values_languages" / "items.yaml"
    items.write_text(items.read_text().replace("      - まったく重要ではない\n", "", 1))
    with pytest.raises(InputError) as error:
        load_study(tmp_path / "taxonomy" / "values_languages.yaml")
    assert "'ja' translation has 3 options, the original 4" in str(error.value)
    assert "items.yaml:" in str(error.value)


def test_a_framings_file_without_a_local_name_for_a_proxy_says_which(
    tmp_path: Path, repo: Path
) -> None:
    shutil.copytree(repo / "taxonomy", tmp_path / "taxonomy")
    shutil.copytree(repo / "probes", tmp_path / "probes")
    framings = tmp_path / "probes" / "framings" / "persona.ar.yaml"
    framings.write_text(framings.read_text().replace('  EG: "مصر"\n', ""))
    with pytest.raises(InputError, match="no persona for region value 'EG'"):
        load_study(tmp_path / "taxonomy" / "values_languages.yaml")


def planted_tidy(seed: int = 0) -> pd.DataFrame:
    """3 proxies x 3 languages x 2 wordings x 2 orders, with planted proxy and language effects."""
    rng = np.random.default_rng(seed)
    rows = []
    proxy_effect = {"JP": 0.1, "EG": 0.0, "MX": -0.1}
    language_effect = {"en": 0.15, "ja": 0.0, "ar": -0.05}
    for item in ("a", "b"):
        for proxy, c in proxy_effect.items():
            for language, lang in language_effect.items():
                for wording in ("p1/imagine", "p2/imagine"):
                    for order in ("canonical", "reversed"):
                        score = 0.5 + c + lang + rng.normal(0, 0.05)
                        rows.append(
                            {
                                "item_id": item,
                                "axis": "region",
                                "proxy": proxy,
                                "proxy_kind": "culture",
                                "language": language,
                                "wording": f"{wording}@{language}",
                                "order": order,
                                "seed": 0,
                                "score": score,
                            }
                        )
    return pd.DataFrame(rows)


def test_language_decomposition_matches_statsmodels_two_way_anova() -> None:
    tidy = planted_tidy()
    table = language_table(tidy).set_index("item_id")
    for item, rows in tidy.groupby("item_id"):
        fit = smf.ols("score ~ C(proxy) * C(language)", data=rows).fit()
        anova = anova_lm(fit, typ=2)
        ms = anova["sum_sq"] / anova["df"]
        ms_l, ms_cl = ms["C(language)"], ms["C(proxy):C(language)"]
        ms_c = ms["C(proxy)"]
        f_language = ms_l / ms_cl
        p_language = stats.f.sf(
            f_language, anova.loc["C(language)", "df"], anova.loc["C(proxy):C(language)", "df"]
        )
        n = 4  # replicates per cell: 2 wordings x 2 orders
        assert table.loc[item, "f_language"] == pytest.approx(f_language)
        assert table.loc[item, "p_language"] == pytest.approx(p_language)
        assert table.loc[item, "f_proxy"] == pytest.approx(ms_c / ms_cl)
        assert table.loc[item, "var_language"] == pytest.approx(max((ms_l - ms_cl) / (3 * n), 0))
        assert table.loc[item, "var_residual"] == pytest.approx(ms["Residual"])
        assert table.loc[item, "n_replicates"] == n
    assert (table["p_language"] < 0.05).all()  # the planted language effect is found


def test_analysis_reports_a_language_effect_only_with_several_languages(
    plan: pd.DataFrame,
) -> None:
    rng = np.random.default_rng(1)
    shift = plan["language"].map({"en": 0.3, "ja": 0.0, "zh": 0.1, "ar": -0.1, "es": 0.2})
    first = np.clip(0.4 + shift.to_numpy() + rng.normal(0, 0.02, len(plan)), 0.01, 0.97)
    probs = [[p, (1 - p) / 3, (1 - p) / 3, (1 - p) / 3] for p in first]
    responses = pd.DataFrame(
        {"prompt_id": plan["prompt_id"], "probs": probs, "option_mass": 0.9, "answer": 0}
    )
    tidy = tidy_responses(plan, responses)
    result = analyze(tidy, n_bootstrap=100, n_permutations=19)
    effect = result.tables["language_effect"]
    assert len(effect) == 3 and (effect["language_share"] > 0.5).all()
    english_only = analyze(tidy[tidy["language"] == "en"], n_bootstrap=100, n_permutations=19)
    assert "language_effect" not in english_only.tables


def test_japanese_and_arabic_prompts_get_answers_from_the_embedded_model(
    tmp_path: Path, repo: Path, hf_backend: object
) -> None:
    prepared = prepare(
        repo / "taxonomy" / "values_languages.yaml",
        PlanFilter(items=("family_importance",), proxies=("JP",)),
    )
    plan = prepared.plan[prepared.plan["paraphrase"] == "p1"].reset_index(drop=True)
    assert len(plan) == 5 * 2  # languages x orders
    run = RunDirectory.open(tmp_path / "run", {"run_key": "l", "plan_hash": "l"}, plan)
    score_plan(run, plan, hf_backend)  # type: ignore[arg-type]
    responses = write_responses(run, plan).merge(plan[["prompt_id", "language"]])
    assert np.allclose([sum(p) for p in responses["probs"]], 1.0)
    # The option letters keep real probability mass when the question is in another script.
    assert (responses["option_mass"] > 0.05).all(), responses[["language", "option_mass"]]
