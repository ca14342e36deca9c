"""Per-wording statistics: proxy flip rate, the COW ratio and Cramér's V (plain and bias-corrected)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association

from culture_probe.analysis import analyze, tidy_responses
from culture_probe.analysis._wording import cramers_v
from culture_probe.analysis.synthetic import PlantedEffects, simulate_study


def _tidy(answers: dict[tuple[str, str], list[int]], n_options: int = 3) -> pd.DataFrame:
    """A nominal item whose responses put all probability on the given canonical answers."""
    records = []
    for (proxy, wording), chosen in answers.items():
        for replicate, answer in enumerate(chosen):
            probs = np.full(n_options, 0.0)
            probs[answer] = 1.0
            records.append(
                {
                    "prompt_id": f"{proxy}-{wording}-{replicate}",
                    "item_id": "Q1",
                    "scale": "nominal",
                    "n_options": n_options,
                    "axis": "region",
                    "proxy": proxy,
                    "proxy_kind": "culture",
                    "wording": wording,
                    "order": "canonical",
                    "display_to_canonical": list(range(n_options)),
                    "seed": replicate,
                    "probs": list(probs),
                }
            )
    frame = pd.DataFrame(records)
    return tidy_responses(frame.drop(columns=["probs"]), frame[["prompt_id", "probs"]])


def test_proxy_flip_rate_and_cow_ratio_by_hand() -> None:
    # Modal answers (proxy x wording):   W1  W2  W3
    #                               C1    0   0   1
    #                               C2    0   1   1
    #                               C3    2   1   1
    # Proxy flips per wording: W1 (0,0,2) -> 2 of 3 pairs; W2 (0,1,1) -> 2/3; W3 (1,1,1) -> 0.
    # mean_p FR^C = 4/9. Wording flips per proxy: C1 (0,0,1) -> 2/3; C2 (0,1,1) -> 2/3;
    # C3 (2,1,1) -> 2/3; mean_c FR^P = 2/3. COW = (4/9) / (2/3) = 2/3.
    modal = {
        ("C1", "W1"): 0,
        ("C1", "W2"): 0,
        ("C1", "W3"): 1,
        ("C2", "W1"): 0,
        ("C2", "W2"): 1,
        ("C2", "W3"): 1,
        ("C3", "W1"): 2,
        ("C3", "W2"): 1,
        ("C3", "W3"): 1,
    }
    result = analyze(_tidy({k: [v, v] for k, v in modal.items()}), n_bootstrap=10, n_permutations=9)
    wordings = result.tables["wording_stats"].set_index("wording")
    np.testing.assert_allclose(
        wordings.loc[["W1", "W2", "W3"], "proxy_flip_rate"], [2 / 3, 2 / 3, 0]
    )
    item = result.tables["item_stats"].iloc[0]
    assert item["proxy_flip_rate"] == pytest.approx(4 / 9)
    assert item["mean_wording_flip_rate"] == pytest.approx(2 / 3)
    assert item["cow_ratio"] == pytest.approx(2 / 3)
    # a nominal item stays out of the ordinal summary; its modal agreement is the complement:
    # proxy pairs agreeing 1/3, 1/3, 3/3 per wording (5/9), wording pairs 1/3 for every proxy
    assert "region" not in result.summary["axes"]
    nominal = result.tables["nominal_stats"].iloc[0]
    assert nominal["modal_agreement_proxies"] == pytest.approx(5 / 9)
    assert nominal["modal_agreement_wordings"] == pytest.approx(1 / 3)


def test_cramers_v_per_wording_matches_scipy_and_is_averaged() -> None:
    answers = {
        ("C1", "W1"): [0, 0, 0, 1],
        ("C2", "W1"): [1, 1, 2, 1],
        ("C3", "W1"): [2, 2, 2, 0],
        ("C1", "W2"): [0, 1, 0, 1],
        ("C2", "W2"): [1, 0, 1, 0],
        ("C3", "W2"): [2, 1, 2, 2],
    }
    result = analyze(_tidy(answers), n_bootstrap=10, n_permutations=9)
    wordings = result.tables["wording_stats"].set_index("wording")
    expected = []
    for wording in ("W1", "W2"):
        table = np.zeros((3, 3), dtype=np.int64)
        for (proxy, w), chosen in answers.items():
            if w == wording:
                for answer in chosen:
                    table[int(proxy[1]) - 1, answer] += 1
        expected.append(association(table, method="cramer", correction=False))
        assert wordings.loc[wording, "cramers_v"] == pytest.approx(expected[-1])
        assert wordings.loc[wording, "n_responses"] == 12
    item = result.tables["item_stats"].iloc[0]
    assert item["cramers_v"] == pytest.approx(np.mean(expected))
    assert item["cramers_v_corrected"] == pytest.approx(wordings["cramers_v_corrected"].mean())


def test_bias_corrected_cramers_v_by_hand() -> None:
    # [[8, 2], [3, 7]]: N = 20, expected 5.5 / 4.5 per column, chi2 = 2 (6.25/5.5 + 6.25/4.5)
    # = 5.050505; phi2 = 0.2525253; phi2~ = phi2 - 1/19 = 0.1998937; k~ - 1 = r~ - 1 = 1 - 1/19;
    # V~ = sqrt(0.1998937 / 0.9473684) = sqrt(0.2110 ...) = 0.4593461.
    plain, corrected = cramers_v(np.array([[8, 2], [3, 7]]))
    assert plain == pytest.approx(np.sqrt(5.050505 / 20), rel=1e-6)
    assert corrected == pytest.approx(0.4593461, rel=1e-6)
    # A perfect association stays 1 after correction; independence gives 0.
    assert cramers_v(np.array([[10, 0], [0, 10]])) == pytest.approx((1.0, 1.0))
    assert cramers_v(np.array([[5, 5], [5, 5]])) == pytest.approx((0.0, 0.0))
    # Unused options are not categories; a single answer column leaves nothing to associate.
    assert cramers_v(np.array([[8, 0, 2], [3, 0, 7]])) == pytest.approx((plain, corrected))
    assert all(np.isnan(cramers_v(np.array([[4, 0], [6, 0]]))))


def test_bias_correction_shrinks_v_under_independence() -> None:
    # 6 proxies x 4 answers drawn independently: plain V is biased up, V~ much less so.
    rng = np.random.default_rng(0)
    plain, corrected = zip(
        *(cramers_v(rng.multinomial(40, [0.25] * 4, size=6)) for _ in range(200)), strict=True
    )
    assert np.mean(plain) > 0.1
    assert np.mean(corrected) < np.mean(plain) / 2


def test_culture_effect_shows_in_proxy_flips_not_in_wording_flips() -> None:
    plan, responses = simulate_study(
        PlantedEffects(culture=0.2), n_items=4, n_proxies=5, n_paraphrases=4, n_orders=2, seed=6
    )
    item = analyze(tidy_responses(plan, responses), n_bootstrap=10, n_permutations=9).tables[
        "item_stats"
    ]
    assert (item["proxy_flip_rate"] > 0.3).all()
    assert (item["mean_wording_flip_rate"] == 0).all()
    assert np.isinf(item["cow_ratio"]).all()
