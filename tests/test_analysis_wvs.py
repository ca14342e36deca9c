"""Alignment on World Values Survey wave-7 country distributions (USA, China, Egypt, Japan).

The model here is a perfect mirror: asked about a country, under any wording and option order, it
answers with that country's WVS distribution. Every alignment statistic then has a known value.
The tests run on invented distributions in the published files' format (``upstream.py``); the
same checks run on the real files in ``real_data/test_real_wvs_alignment.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from culture_probe.analysis import analyze, tidy_responses
from upstream import LILY, LILY_FOUR_OPTION

COUNTRIES = {"US": "us", "CN": "ch", "EG": "eg", "JP": "jp"}
WORDINGS = ("p1/imagine", "p2/imagine", "p3/imagine")


def four_option_reference(folder: Path, max_items: int = 12) -> pd.DataFrame:
    """The reference table of the four-option questions every country's file holds.

    Args:
        folder: a folder of lilyflower03 ``<cc>_wvs.json`` files.
        max_items: keep the first this many questions.
    """
    per_country = {}
    for proxy, stem in COUNTRIES.items():
        examples = json.loads((folder / f"{stem}_wvs.json").read_text(encoding="utf-8"))["examples"]
        per_country[proxy] = {e["id"]: e["distribution"] for e in examples}
    in_every_file = sorted(set.intersection(*(set(d) for d in per_country.values())))
    records = []
    for item in in_every_file:
        shapes = {len(per_country[p][item]) for p in COUNTRIES}
        if shapes != {4}:
            continue
        for proxy in COUNTRIES:
            shares = np.array([per_country[proxy][item][str(k + 1)] for k in range(4)], dtype=float)
            shares = shares / shares.sum()  # published shares are rounded to 2 decimals
            records += [
                {"item_id": item, "proxy": proxy, "option": k, "share": shares[k]} for k in range(4)
            ]
    reference = pd.DataFrame(records)
    items = reference["item_id"].unique()[:max_items]
    return reference.loc[reference["item_id"].isin(items)].reset_index(drop=True)


@pytest.fixture(scope="module")
def wvs_reference(upstream_data: Path) -> pd.DataFrame:
    return four_option_reference(upstream_data / LILY)


def _mirror_study(reference: pd.DataFrame, wordings: tuple[str, ...] = WORDINGS) -> pd.DataFrame:
    """Plan and responses of a model that reproduces each country's distribution."""
    shares = reference.pivot_table(index=["item_id", "proxy"], columns="option", values="share")
    plan_rows, response_rows = [], []
    orders = {"canonical": [0, 1, 2, 3], "reversed": [3, 2, 1, 0]}
    for (item, proxy), distribution in shares.iterrows():
        for wording in wordings:
            for order, display in orders.items():
                prompt_id = f"{item}-{proxy}-{wording}-{order}"
                plan_rows.append(
                    {
                        "prompt_id": prompt_id,
                        "item_id": item,
                        "scale": "ordinal",
                        "n_options": 4,
                        "axis": "region",
                        "proxy": proxy,
                        "proxy_kind": "culture",
                        "wording": wording,
                        "order": order,
                        "display_to_canonical": display,
                        "seed": 0,
                    }
                )
                response_rows.append({"prompt_id": prompt_id, "probs": distribution.to_numpy()})
    return tidy_responses(pd.DataFrame(plan_rows), pd.DataFrame(response_rows))


def test_a_mirror_of_the_wvs_is_perfectly_aligned_and_specific(wvs_reference: pd.DataFrame) -> None:
    assert set(wvs_reference["item_id"]) == set(LILY_FOUR_OPTION)
    check_a_mirror_is_perfectly_aligned_and_specific(wvs_reference)


def test_wording_noise_as_large_as_country_differences_is_flagged(
    wvs_reference: pd.DataFrame,
) -> None:
    check_wording_noise_as_large_as_country_differences_is_flagged(wvs_reference)


def check_a_mirror_is_perfectly_aligned_and_specific(wvs_reference: pd.DataFrame) -> None:
    tidy = _mirror_study(wvs_reference)
    n_items = wvs_reference["item_id"].nunique()
    result = analyze(tidy, wvs_reference, n_bootstrap=50, n_permutations=199)
    alignment = result.tables["alignment"]
    assert len(alignment) == n_items * 4 * len(WORDINGS)
    np.testing.assert_allclose(alignment["sim_jsd"], 1.0, atol=1e-6)
    np.testing.assert_allclose(alignment["representativeness"], 1.0, atol=1e-9)
    summary = result.tables["alignment_summary"]
    np.testing.assert_allclose(summary["cps"], 1.0, atol=1e-6)
    # Its own country's distribution is the closest of the four: the smallest possible p, 1/4.
    distinct = summary["specificity"] > 0
    assert distinct.mean() >= 0.9
    np.testing.assert_allclose(summary.loc[distinct, "specificity_p"], 0.25)
    # No wording moves the answers, so the noise-to-human-signal ratio is 0.
    np.testing.assert_allclose(summary["nsr"], 0.0, atol=1e-9)
    verdicts = result.tables["item_stats"]["verdict"]
    assert (verdicts == "culture-dominant").all()


def check_wording_noise_as_large_as_country_differences_is_flagged(
    wvs_reference: pd.DataFrame,
) -> None:
    # Four wordings, each answering with the distribution of a rotated country (a Latin square):
    # every proxy's answers run through all four countries, so the wording moves answers exactly as
    # much as the real cross-country differences (NSR = 1) and every proxy has the same mean.
    wordings = (*WORDINGS, "p4/imagine")
    tidy = _mirror_study(wvs_reference, wordings)
    proxies = list(COUNTRIES)
    rotation = {w: i for i, w in enumerate(wordings)}
    shares = wvs_reference.pivot_table(index=["item_id", "proxy"], columns="option", values="share")

    def rotated(row: pd.Series) -> np.ndarray:
        shift = rotation[row["wording"]]
        other = proxies[(proxies.index(row["proxy"]) + shift) % len(proxies)]
        return shares.loc[(row["item_id"], other)].to_numpy()

    tidy["probs"] = tidy.apply(rotated, axis=1)
    tidy["score"] = np.stack(tidy["probs"].to_numpy()) @ (np.arange(4) / 3)
    result = analyze(tidy, wvs_reference, n_bootstrap=50, n_permutations=99)
    np.testing.assert_allclose(result.tables["alignment_summary"]["nsr"], 1.0)
    items = result.tables["item_stats"]
    np.testing.assert_allclose(items["var_proxy"], 0.0, atol=1e-12)
    assert (items["verdict"] == "wording-dominated").all()
