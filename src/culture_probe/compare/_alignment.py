"""Which model is closer to the people of each country? Alignment per model, paired on wordings.

Each run's alignment with the human reference is the run analysis' own (``analysis._alignment``):
per wording, ``sim_jsd`` = 1 - Jensen-Shannon distance (base 2) between the model's answer
distribution and the country's, and over wordings MaxP, AvgP, MinP and CPS (Mizrahi et al. 2024).
Between two models the difference of ``sim_jsd`` is taken wording by wording (the same prompts), and
its interval is the t interval over wordings, as for the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from culture_probe.analysis import alignment_tables
from culture_probe.compare._paired import mean_of_means_interval, t_interval
from culture_probe.compare._runs import ComparedRun

SUMMARY_COLUMNS = ("max_p", "avg_p", "min_p", "cps")
KEYS = ["item_id", "axis", "proxy"]


def per_model_alignment(
    runs: Sequence[ComparedRun], n_permutations: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, per_wording)`` for every run that has a reference, with a ``model`` column.

    ``summary``: ``model, item_id, axis, proxy, n_wordings, max_p, avg_p, min_p, cps``;
    ``per_wording``: ``model, item_id, axis, proxy, wording, sim_jsd``.
    """
    summaries, wordings = [], []
    for run in runs:
        if run.reference is None:
            continue
        tables = alignment_tables(run.tidy, run.probs, run.reference, n_permutations, seed)
        summary, per_wording = tables["alignment_summary"], tables["alignment"]
        if summary.empty:
            continue
        summaries.append(summary[[*KEYS, "n_wordings", *SUMMARY_COLUMNS]].assign(model=run.label))
        wordings.append(per_wording[[*KEYS, "wording", "sim_jsd"]].assign(model=run.label))
    if not summaries:
        return pd.DataFrame(columns=["model", *KEYS, *SUMMARY_COLUMNS]), pd.DataFrame()
    summary = pd.concat(summaries, ignore_index=True)
    per_wording = pd.concat(wordings, ignore_index=True)
    return _model_first(summary), _model_first(per_wording)


def closeness_differences(
    per_wording: pd.DataFrame, pair: tuple[str, str], n_bootstrap: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(by_item, by_country)``: AvgP of model b minus model a, paired on wordings, with intervals.

    ``by_item`` (item x axis x proxy) and ``by_country`` (axis x proxy, the mean over items, wordings
    resampled within each item): ``model_a, model_b, avg_p_a, avg_p_b, difference, low, high,
    closer`` (the model whose AvgP is higher when the interval excludes 0, else "neither").
    """
    a, b = pair
    wide = per_wording.pivot_table(
        index=[*KEYS, "wording"], columns="model", values="sim_jsd", aggfunc="first"
    )
    if a not in wide.columns or b not in wide.columns:
        return pd.DataFrame(), pd.DataFrame()
    wide = wide[[a, b]].dropna()
    by_item, groups = [], {}
    for key, block in wide.groupby(level=KEYS, sort=True):
        differences = (block[b] - block[a]).to_numpy()
        groups[key] = differences
        estimate = float(differences.mean())
        low, high = t_interval(differences)
        by_item.append(_row(dict(zip(KEYS, key, strict=True)), pair, block, estimate, low, high))
    by_country = []
    for (axis, proxy), block in wide.groupby(level=["axis", "proxy"], sort=True):
        items = [groups[key] for key in groups if key[1:] == (axis, proxy)]
        estimate = float(np.mean([group.mean() for group in items]))
        low, high = mean_of_means_interval(items)
        item_means = block.groupby(level="item_id").mean()
        by_country.append(
            _row(
                {"axis": axis, "proxy": proxy, "n_items": len(items)},
                pair,
                item_means,
                estimate,
                low,
                high,
            )
        )
    return pd.DataFrame(by_item), pd.DataFrame(by_country)


def _row(
    keys: dict[str, object],
    pair: tuple[str, str],
    block: pd.DataFrame,
    estimate: float,
    low: float,
    high: float,
) -> dict[str, object]:
    a, b = pair
    closer = b if low > 0 else a if high < 0 else "neither"
    return {
        **keys,
        "model_a": a,
        "model_b": b,
        "avg_p_a": float(block[a].mean()),
        "avg_p_b": float(block[b].mean()),
        "difference": estimate,
        "low": low,
        "high": high,
        "closer": closer,
    }


def _model_first(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["model", *[c for c in frame.columns if c != "model"]]]
