"""How stable is the ranking of models across wordings? Kendall's W and reversal probabilities.

Mizrahi et al. (2024, "State of What Art? A Call for Multi-Prompt LLM Evaluation") showed that the
order of models changes with the prompt's wording. Per item, each wording ranks the models by their
mean score on the item's culture prompts: Kendall's W over the wordings (judges) is 1 when every
wording orders the models alike (with the Friedman test of the models across wordings), and the
reversal probability of a pair of models is the share of wordings whose difference has the opposite
sign to the difference over all wordings: the chance that a study run with one other wording would
rank the pair the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from culture_probe.analysis import block_ranks, friedman
from culture_probe.compare._runs import ComparedRun

CULTURE = "culture"


def wording_means(runs: Sequence[ComparedRun]) -> pd.DataFrame:
    """Mean score per item x wording (culture proxies), one column per model label."""
    columns = {}
    for run in runs:
        culture = run.tidy.loc[run.tidy["proxy_kind"] == CULTURE]
        columns[run.label] = culture.groupby(["item_id", "wording"], sort=True)["score"].mean()
    return pd.DataFrame(columns).dropna()


def ranking_table(runs: Sequence[ComparedRun]) -> pd.DataFrame:
    """Per item: ``n_models, n_wordings, kendall_w, friedman_stat, friedman_p,
    reversal_probability`` (the mean over pairs of models of :func:`pair_reversals`' share)."""
    means = wording_means(runs)
    reversals = pair_reversals(runs, means)
    rows = []
    for item, block in means.groupby(level="item_id", sort=True):
        matrix = block.to_numpy(dtype=np.float64).T  # (models, wordings)
        ranks, ties = block_ranks(matrix)
        result = friedman(ranks, ties)
        item_reversals = reversals.loc[reversals["item_id"] == item, "reversal_probability"]
        rows.append(
            {
                "item_id": item,
                "n_models": matrix.shape[0],
                "n_wordings": matrix.shape[1],
                "kendall_w": float(result["kendall_w"]),
                "friedman_stat": float(result["friedman_stat"]),
                "friedman_p": float(result["friedman_p"]),
                "reversal_probability": float(item_reversals.mean()),
            }
        )
    return pd.DataFrame(rows)


def pair_reversals(runs: Sequence[ComparedRun], means: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per item and pair of models: ``difference`` (mean over wordings, b - a), ``n_wordings``,
    ``reversals`` (wordings whose difference has the opposite sign) and their share,
    ``reversal_probability``. A pair with no overall difference has no direction to reverse (NaN).
    """
    means = wording_means(runs) if means is None else means
    rows = []
    for a, b in combinations([run.label for run in runs], 2):
        per_wording = (means[b] - means[a]).groupby(level="item_id", sort=True)
        for item, differences in per_wording:
            overall = float(differences.mean())
            direction = np.sign(overall)
            reversed_ = (
                int((np.sign(differences.to_numpy()) == -direction).sum()) if direction else 0
            )
            rows.append(
                {
                    "item_id": item,
                    "model_a": a,
                    "model_b": b,
                    "difference": overall,
                    "n_wordings": len(differences),
                    "reversals": reversed_,
                    "reversal_probability": reversed_ / len(differences) if direction else np.nan,
                }
            )
    return pd.DataFrame(rows)
