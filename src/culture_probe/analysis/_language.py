"""The language effect: proxy x prompt-language variance decomposition
(docs/statistics.md#culture-against-wording-the-variance-decomposition; docs/statistics.md#reliability).

A study with ``languages: [en, ja, ...]`` asks every item about every proxy in several languages. Per
item x axis, the culture rows are arranged in a proxy (C) x language (L) table of mean scores, each cell
averaging its wordings, option orders and seeds (the replicates), and decomposed with the same random
two-way model as the culture-vs-wording decomposition (:mod:`culture_probe.analysis._anova`): language
takes the place of wording. ``var_language`` is how much the answer moves with the prompt's language
whatever the culture, ``var_interaction`` how much the culture profile itself changes between
languages (Hershcovich et al. 2022's "linguistic form and style" and "common ground" at work), and
``f_language = MS_L / MS_CL`` tests a language effect that generalises over the proxies.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from culture_probe.analysis._anova import context_sum_of_squares, decompose, f_tests
from culture_probe.analysis._design import UNIT_COLUMNS, Cube, balanced_cubes

LANGUAGE_COLUMNS = (
    *UNIT_COLUMNS,
    "n_proxies",
    "n_languages",
    "n_replicates",
    "languages",
    "var_proxy",
    "var_language",
    "var_interaction",
    "var_residual",
    "culture_share",
    "language_share",
    "interaction_share",
    "f_proxy",
    "p_proxy",
    "f_language",
    "p_language",
    "f_interaction",
    "p_interaction",
    "language_means",
)


def language_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per item x axis: the proxy x language decomposition of the culture rows' scores.

    Args:
        tidy: the tidy responses table with a ``language`` column.

    Returns:
        One row per unit with the columns of :data:`LANGUAGE_COLUMNS`; ``language_means`` is the
        JSON of each language's mean score over proxies. Empty when the plan has a single language.
    """
    culture = tidy.loc[(tidy["proxy_kind"] == "culture") & tidy["score"].notna()]
    if culture.empty or culture["language"].nunique() < 2:
        return pd.DataFrame(columns=list(LANGUAGE_COLUMNS))
    # Language stands where wording stands in the core design; the wordings within a language,
    # the option orders and the seeds are the replicates of a proxy x language cell.
    arranged = pd.DataFrame(
        {
            "item_id": culture["item_id"].to_numpy(),
            "axis": culture["axis"].to_numpy(),
            "proxy": culture["proxy"].to_numpy(),
            "wording": culture["language"].to_numpy(),
            "order": (
                culture["wording"].astype(str) + "|" + culture["order"].astype(str)
            ).to_numpy(),
            "seed": culture["seed"].to_numpy(),
            "score": culture["score"].to_numpy(dtype=np.float64),
        }
    )
    tables = [_cube_rows(cube) for cube in balanced_cubes(arranged).cubes]
    if not tables:
        return pd.DataFrame(columns=list(LANGUAGE_COLUMNS))
    return pd.concat(tables, ignore_index=True).loc[:, list(LANGUAGE_COLUMNS)]


def _cube_rows(cube: Cube) -> pd.DataFrame:
    means = cube.means
    deviations = cube.replicate_deviations
    context_ss = None if deviations is None else context_sum_of_squares(deviations)
    parts = decompose(means, cube.within_ss, cube.n_replicates, cube.df_within, context_ss)
    tests = f_tests(parts)
    table = cube.units.loc[:, list(UNIT_COLUMNS)].copy()
    table["n_proxies"], table["n_languages"] = means.shape[1], means.shape[2]
    table["n_replicates"] = cube.n_replicates
    languages = cube.wordings
    table["languages"] = [",".join(map(str, row)) for row in languages]
    var_e = np.nan_to_num(parts["var_residual"])
    total = parts["var_proxy"] + parts["var_wording"] + parts["var_interaction"] + var_e
    with np.errstate(divide="ignore", invalid="ignore"):
        table["culture_share"] = parts["var_proxy"] / total
        table["language_share"] = parts["var_wording"] / total
        table["interaction_share"] = parts["var_interaction"] / total
    table["var_proxy"] = parts["var_proxy"]
    table["var_language"] = parts["var_wording"]
    table["var_interaction"] = parts["var_interaction"]
    table["var_residual"] = parts["var_residual"]
    for name in ("proxy", "interaction"):
        table[f"f_{name}"], table[f"p_{name}"] = tests[f"f_{name}"], tests[f"p_{name}"]
    table["f_language"], table["p_language"] = tests["f_wording"], tests["p_wording"]
    language_means = means.mean(axis=1)
    table["language_means"] = [
        json.dumps(
            {str(code): round(float(value), 6) for code, value in zip(codes, row, strict=True)}
        )
        for codes, row in zip(languages, language_means, strict=True)
    ]
    return table
