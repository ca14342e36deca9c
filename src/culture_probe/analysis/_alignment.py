"""Alignment with human reference distributions (docs/statistics.md#alignment-with-human-answers)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from culture_probe.analysis._information import js_distance
from culture_probe.analysis._tidy import require_columns
from culture_probe.columns import REFERENCE_COLUMNS
from culture_probe.errors import InputError

SHARE_TOLERANCE = 1e-3


def alignment_tables(
    tidy: pd.DataFrame, probs: np.ndarray, reference: pd.DataFrame, n_permutations: int, seed: int
) -> dict[str, pd.DataFrame]:
    """Per-wording alignment and its per-proxy summary.

    ``alignment`` (item x axis x proxy x wording): ``sim_jsd`` = 1 - JS distance (base 2) between
    the model's pooled answer distribution and the human one (Durmus et al. 2023, GlobalOpinionQA);
    ``representativeness`` = 1 - W1 / (K - 1) on the ordinal positions (Santurkar et al. 2023,
    OpinionQA; ordinal items only).

    ``alignment_summary`` (item x axis x proxy): over wordings, ``max_p``, ``avg_p``, ``min_p`` and
    ``cps`` = MaxP (1 - (MaxP - AvgP)) of ``sim_jsd`` (Mizrahi et al. 2024) and ``avg_representativeness``;
    ``baseline_sim``, the no-proxy prompt's similarity to this proxy's humans, and
    ``steering_effect`` = AvgP - baseline_sim; ``specificity`` = Sim(c, H_c) - mean over c' != c of
    Sim(c, H_c'), with ``specificity_p`` the exact label-permutation p-value (rank of the own human
    distribution among all) and ``specificity_item_p``, a permutation test of the mean specificity
    over the item's proxies; ``nsr``, the noise-to-human-signal ratio of the item, mean over proxies
    of the standard deviation across wordings of the mean score, over the standard deviation across
    proxies of the human mean score (after Khan et al. 2025). NSR >= 1: wording alone moves answers
    as much as real cross-country differences.
    """
    human = _validated_reference(reference, tidy)
    answered = ~np.isnan(probs).any(axis=1)
    rows = tidy.loc[answered]
    width = probs.shape[1]
    keys = ["item_id", "axis", "proxy", "proxy_kind", "wording"]
    pooled = pd.DataFrame(probs[answered]).groupby([rows[k].to_numpy() for k in keys]).mean()
    pooled.index = pooled.index.set_names(keys)
    model = pooled.reset_index()
    scores = rows.groupby(keys, observed=True)["score"].mean().rename("mean_score")
    model = model.merge(scores.reset_index(), on=keys)
    n_options = tidy.groupby("item_id")["n_options"].first()
    model["n_options"] = model["item_id"].map(n_options).to_numpy()
    scale = tidy.groupby("item_id")["scale"].first()
    model["scale"] = model["item_id"].map(scale).to_numpy()
    culture = model.loc[model["proxy_kind"] == "culture"]
    baseline = model.loc[model["proxy_kind"] == "baseline"]
    per_wording, summaries = [], []
    rng = np.random.default_rng([seed, 4])
    for (item, axis), unit in culture.groupby(["item_id", "axis"], sort=True):
        item_human = human.loc[human.index.get_level_values(0) == item].droplevel(0)
        shared = unit.loc[unit["proxy"].isin(item_human.index)]
        if shared.empty:
            continue
        item_baseline = baseline.loc[baseline["item_id"] == item]
        wording, summary = _unit_alignment(
            shared, item_human, item_baseline, width, n_permutations, rng
        )
        per_wording.append(wording.assign(item_id=item, axis=axis))
        summaries.append(summary.assign(item_id=item, axis=axis))
    first = ["item_id", "axis", "proxy"]
    if not per_wording:
        return {
            "alignment": pd.DataFrame(columns=[*first, "wording", "sim_jsd"]),
            "alignment_summary": pd.DataFrame(columns=[*first, "avg_p", "nsr"]),
        }
    alignment = pd.concat(per_wording, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    return {
        "alignment": alignment[[*first, *[c for c in alignment.columns if c not in first]]],
        "alignment_summary": summary[[*first, *[c for c in summary.columns if c not in first]]],
    }


def _validated_reference(reference: pd.DataFrame, tidy: pd.DataFrame) -> pd.DataFrame:
    """Human shares as a (item_id, proxy) x option matrix; rejects malformed references."""
    require_columns(reference, REFERENCE_COLUMNS, where="reference.parquet")
    totals = reference.groupby(["item_id", "proxy"])["share"].sum()
    bad = (totals - 1).abs() > SHARE_TOLERANCE
    if bad.any():
        item, proxy = bad.index[bad.to_numpy()][0]
        raise InputError(
            f"shares of item '{item}', proxy '{proxy}' sum to {totals[(item, proxy)]:.4f}; "
            "expected 1",
            path="reference.parquet",
            key="share",
        )
    n_options = reference["item_id"].map(tidy.groupby("item_id")["n_options"].first())
    outside = (reference["option"] < 0) | (reference["option"] >= n_options.fillna(np.inf))
    if outside.any():
        row = int(np.flatnonzero(outside.to_numpy())[0])
        raise InputError(
            f"option {reference['option'].iloc[row]} of item '{reference['item_id'].iloc[row]}' "
            f"is outside 0..{int(n_options.iloc[row]) - 1} (row {row})",
            path="reference.parquet",
            line=row,
            key="option",
        )
    matrix = reference.pivot_table(
        index=["item_id", "proxy"], columns="option", values="share", aggfunc="sum", fill_value=0.0
    )
    return matrix


def _unit_alignment(
    unit: pd.DataFrame,
    human: pd.DataFrame,
    baseline: pd.DataFrame,
    width: int,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = list(range(width))
    human = human.reindex(columns=columns, fill_value=0.0)
    proxies = sorted(unit["proxy"].unique())
    wordings = sorted(unit["wording"].unique())
    grid = unit.set_index(["proxy", "wording"]).reindex(
        pd.MultiIndex.from_product([proxies, wordings])
    )
    model = grid[columns].to_numpy(dtype=np.float64).reshape(len(proxies), len(wordings), width)
    targets = human.loc[proxies].to_numpy(dtype=np.float64)  # (C, K)
    n_options = int(unit["n_options"].iat[0])
    ordinal = unit["scale"].iat[0] == "ordinal"
    own = 1 - js_distance(model, targets[:, None, :])  # (C, P)
    wording_table = pd.DataFrame(
        {
            "proxy": np.repeat(proxies, len(wordings)),
            "wording": np.tile(wordings, len(proxies)),
            "sim_jsd": own.ravel(),
            "representativeness": (
                _representativeness(model, targets[:, None, :], n_options).ravel()
                if ordinal
                else np.nan
            ),
        }
    )
    cross = 1 - js_distance(model[:, None, :, :], targets[None, :, None, :]).mean(axis=2)  # (C, C)
    summary = _summary_columns(own, cross, proxies, n_permutations, rng)
    if ordinal:
        summary["avg_representativeness"] = (
            wording_table.groupby("proxy", sort=True)["representativeness"].mean().to_numpy()
        )
    summary["baseline_sim"] = _baseline_similarity(baseline, targets, columns)
    summary["steering_effect"] = summary["avg_p"] - summary["baseline_sim"]
    summary["nsr"] = _noise_to_signal(
        grid["mean_score"].to_numpy().reshape(own.shape), targets, n_options
    )
    return wording_table, summary


def _summary_columns(
    own: np.ndarray,
    cross: np.ndarray,
    proxies: list[str],
    n_permutations: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    max_p, avg_p = own.max(axis=1), own.mean(axis=1)
    n = len(proxies)
    off_diagonal = (cross.sum(axis=1) - np.diag(cross)) / max(n - 1, 1)
    at_least = (cross >= np.diag(cross)[:, None] - 1e-12).sum(axis=1)
    observed = np.trace(cross)
    labels = rng.permuted(np.broadcast_to(np.arange(n), (n_permutations, n)), axis=1)
    permuted = cross[np.arange(n)[None, :], labels].sum(axis=1)
    item_p = (1 + (permuted >= observed - 1e-12).sum()) / (1 + n_permutations)
    return pd.DataFrame(
        {
            "proxy": proxies,
            "n_wordings": own.shape[1],
            "max_p": max_p,
            "avg_p": avg_p,
            "min_p": own.min(axis=1),
            "cps": max_p * (1 - (max_p - avg_p)),
            "specificity": np.diag(cross) - off_diagonal if n > 1 else np.nan,
            "specificity_p": at_least / n if n > 1 else np.nan,
            "specificity_item_p": item_p if n > 1 else np.nan,
        }
    )


def _representativeness(model: np.ndarray, human: np.ndarray, n_options: int) -> np.ndarray:
    """1 - W1(model, human) / (K - 1) on positions 0..K-1 (sum of absolute CDF differences)."""
    gap = np.abs(np.cumsum(model, axis=-1) - np.cumsum(human, axis=-1))[..., : n_options - 1]
    return np.asarray(1 - gap.sum(axis=-1) / max(n_options - 1, 1))


def _baseline_similarity(baseline: pd.DataFrame, targets: np.ndarray, columns: list[int]) -> Any:
    if baseline.empty:
        return np.nan
    distributions = baseline[columns].to_numpy(dtype=np.float64)  # (W0, K)
    similarity = 1 - js_distance(distributions[None, :, :], targets[:, None, :])
    return similarity.mean(axis=1)


def _noise_to_signal(mean_scores: np.ndarray, targets: np.ndarray, n_options: int) -> float:
    wording_noise = (
        np.std(mean_scores, axis=1, ddof=1).mean() if mean_scores.shape[1] > 1 else np.nan
    )
    positions = np.arange(targets.shape[1]) / max(n_options - 1, 1)
    human_scores = targets @ positions
    signal = np.std(human_scores, ddof=1) if len(human_scores) > 1 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(wording_noise / signal)
