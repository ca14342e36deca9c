"""Short-answer items: how often the model's written answer is one the annotators gave.

A short-answer item (BLEnD, Myung et al. 2024) has no options, so none of the variance decomposition
applies. Each written answer is scored by the runner: ``match`` is 1 when an annotated answer for the
question and culture occurs in it (:func:`culture_probe.scoring.with_matches`), ``match_share`` is the
share of annotators who gave that answer. The analysis reports, per proxy x prompt language x
wording, the match rate with an item-clustered bootstrap interval: answers to the same question are
not independent (Miller 2024, "Adding Error Bars to Evals"), so items, not prompts, are resampled.
Each item weighs the same: the rate is the mean over items of the item's mean match over its seeds
and option orders, and the percentile interval resamples those item means.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from culture_probe.analysis._analyze import AnalysisResult
from culture_probe.analysis._summary import finite
from culture_probe.errors import InputError
from culture_probe.formatting import format_interval

SHORT_ANSWER_CELL = ("proxy", "language", "wording")
TABLE_NAME = "short_answer"
CONFIDENCE = 0.95


def item_clustered_rate(
    values: np.ndarray, items: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> tuple[float, float, float, int]:
    """Mean of the per-item means, its percentile bootstrap interval over items, and the item count.

    Args:
        values: one value per prompt (NaN values are left out).
        items: the item of each prompt, the resampling cluster.
        n_bootstrap: resamples of the items, with replacement.
        rng: the random generator.

    Example:
        >>> rate, low, high, n = item_clustered_rate(
        ...     np.array([1.0, 0.0, 1.0]), np.array(["a", "a", "b"]), 200, np.random.default_rng(0)
        ... )
        >>> rate, n
        (0.75, 2)
    """
    present = ~np.isnan(values)
    if not present.any():
        return float("nan"), float("nan"), float("nan"), 0
    means = pd.Series(values[present]).groupby(items[present], sort=True).mean().to_numpy()
    estimate = float(means.mean())
    draws = rng.integers(0, len(means), size=(n_bootstrap, len(means)))
    replicates = means[draws].mean(axis=1)
    tail = (1.0 - CONFIDENCE) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return estimate, float(low), float(high), len(means)


def short_answer_table(tidy: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Match rate per proxy x language x wording, with item-clustered 95% intervals.

    Args:
        tidy: short-answer rows of the plan joined with the responses: ``item_id, axis, proxy,
            proxy_name, language, wording, outcome, match, match_share``.
        n_bootstrap: bootstrap resamples of the items per cell.
        seed: random seed.

    Returns:
        One row per cell: ``axis, proxy, proxy_name, language, wording, n_items, n_prompts,
        match_rate, match_low, match_high, mean_match_share, refusal_rate, invalid_rate``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (proxy, language, wording), group in tidy.groupby(list(SHORT_ANSWER_CELL), sort=True):
        items = group["item_id"].astype(str).to_numpy()
        rate, low, high, n_items = item_clustered_rate(
            group["match"].to_numpy(dtype=np.float64), items, n_bootstrap, rng
        )
        share = group["match_share"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "axis": str(group["axis"].iloc[0]),
                "proxy": str(proxy),
                "proxy_name": str(group["proxy_name"].iloc[0]),
                "language": str(language),
                "wording": str(wording),
                "n_items": n_items,
                "n_prompts": len(group),
                "match_rate": rate,
                "match_low": low,
                "match_high": high,
                "mean_match_share": _item_mean(share, items),
                "refusal_rate": float(group["outcome"].eq("refused").mean()),
                "invalid_rate": float(group["outcome"].eq("invalid").mean()),
            }
        )
    return pd.DataFrame(rows)


def _item_mean(values: np.ndarray, items: np.ndarray) -> float:
    present = ~np.isnan(values)
    if not present.any():
        return float("nan")
    return float(pd.Series(values[present]).groupby(items[present]).mean().mean())


def short_answer_summary(
    tidy: pd.DataFrame, table: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Overall and per-language match rates (item-clustered), and the best and worst proxies."""
    rng = np.random.default_rng(seed)
    items = tidy["item_id"].astype(str).to_numpy()
    match = tidy["match"].to_numpy(dtype=np.float64)

    def rate(mask: np.ndarray) -> dict[str, Any]:
        estimate, low, high, n_items = item_clustered_rate(
            match[mask], items[mask], n_bootstrap, rng
        )
        return {"estimate": estimate, "ci_low": low, "ci_high": high, "n_items": n_items}

    languages = tidy["language"].astype(str).to_numpy()
    proxies = tidy["proxy"].astype(str).to_numpy()
    return {
        "n_items": int(tidy["item_id"].nunique()),
        "n_prompts": len(tidy),
        "match_rate": rate(np.ones(len(tidy), dtype=bool)),
        "by_language": {code: rate(languages == code) for code in sorted(set(languages))},
        "by_proxy": {proxy: rate(proxies == proxy) for proxy in sorted(set(proxies))},
        "refusal_rate": float(tidy["outcome"].eq("refused").mean()),
        "n_cells": len(table),
    }


def short_answer_headline(summary: dict[str, Any], names: dict[str, str]) -> list[str]:
    """Plain-English sentences about the match rates."""
    overall = summary["match_rate"]
    if overall["n_items"] == 0:
        return ["No short answer was scored."]
    sentences = [
        f"Across {_count(summary['n_items'], 'short-answer question')} "
        f"({_count(summary['n_prompts'], 'prompt')}), "
        f"{_interval(overall)} of the model's answers were among the annotators' "
        "answers (95% interval in brackets, items resampled)."
    ]
    by_language = {k: v for k, v in summary["by_language"].items() if v["n_items"]}
    if len(by_language) > 1:
        parts = [f"{_percent(v['estimate'])} in {code}" for code, v in by_language.items()]
        sentences.append(f"By prompt language: {', '.join(parts)}.")
    by_proxy = {k: v for k, v in summary["by_proxy"].items() if v["n_items"]}
    if len(by_proxy) > 1:
        best = max(by_proxy, key=lambda proxy: by_proxy[proxy]["estimate"])
        worst = min(by_proxy, key=lambda proxy: by_proxy[proxy]["estimate"])
        if by_proxy[best]["estimate"] > by_proxy[worst]["estimate"]:
            sentences.append(
                f"Answers matched most often about {names.get(best, best)} "
                f"({_percent(by_proxy[best]['estimate'])}) and least often about "
                f"{names.get(worst, worst)} ({_percent(by_proxy[worst]['estimate'])})."
            )
    if summary["refusal_rate"] > 0:
        sentences.append(
            f"The model declined {_percent(summary['refusal_rate'])} of the questions."
        )
    return sentences


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _interval(rate: dict[str, Any]) -> str:
    return format_interval(rate["estimate"], rate["ci_low"], rate["ci_high"], "{:.0%}")


def short_answer_rows(plan: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """The short-answer rows of the plan joined with their scored responses."""
    for column in ("match", "match_share", "outcome"):
        if column not in responses.columns:
            raise InputError(
                "the responses have short-answer items but no match columns",
                path="responses.parquet",
                key=column,
                hint="score the run again with culture-probe score (it matches the answers)",
            )
    columns = ["prompt_id", "item_id", "axis", "proxy", "proxy_name", "language", "wording"]
    return plan[columns].merge(
        responses[["prompt_id", "outcome", "generated", "match", "match_share"]],
        on="prompt_id",
        how="inner",
    )


def add_short_answers(
    result: AnalysisResult | None,
    plan: pd.DataFrame,
    responses: pd.DataFrame,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> AnalysisResult:
    """``result`` (the analysis of the choice items, or None) with the short-answer table added.

    The table goes to ``stats/short_answer.parquet``, the summary under ``"short_answer"`` and the
    sentences after the choice items' headline.
    """
    rows = short_answer_rows(plan, responses)
    table = short_answer_table(rows, n_bootstrap, seed)
    summary = short_answer_summary(rows, table, n_bootstrap, seed)
    names = dict(zip(plan["proxy"].astype(str), plan["proxy_name"].astype(str), strict=True))
    headline = short_answer_headline(summary, names)
    if result is None:
        result = AnalysisResult(
            summary={
                "n_responses": len(rows),
                "n_items": summary["n_items"],
                "n_bootstrap": n_bootstrap,
                "seed": seed,
                "axes": {},
            }
        )
    result.tables[TABLE_NAME] = table
    result.summary["short_answer"] = _json_safe(summary)
    result.headline = [*result.headline, *headline]
    return result


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    return finite(value)
