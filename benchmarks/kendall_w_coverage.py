"""Coverage of the bootstrap interval for Kendall's W across wordings, by simulation.

Each simulated unit (an item on one axis) has C proxies with true effects of a random size, and P
wordings that each add independent noise to the proxy means. The true W for P wordings is
((P - 1) rho + 1) / P, with rho the unit's mean Spearman correlation between two wordings, estimated
here from 300 fresh wordings of the same unit. The analysis resamples wordings with replacement
(``paraphrase_bootstrap``) and reads the bias-corrected percentile interval
(``bias_corrected_interval``), as ``culture-probe analyze`` does. The table gives, per P, the share
of units whose 95% interval contains the true W, for the shipped replicates (pairs of distinct
wordings only) and, beside them, for replicates that recompute W on the resampled wordings as they
are (a wording drawn twice then agrees perfectly with itself).

Run: python benchmarks/kendall_w_coverage.py [--units 150] [--bootstrap 400] [--seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from culture_probe.analysis._anova import (
    block_ranks,
    friedman,
    paraphrase_bootstrap,
)
from culture_probe.analysis._items import bias_corrected_interval

PROXIES = 10
FRESH_WORDINGS = 300


def true_concordance(effects: np.ndarray, wordings: int, rng: np.random.Generator) -> np.ndarray:
    """Each unit's W for ``wordings`` wordings, from its mean correlation over fresh wordings."""
    fresh = effects + rng.normal(size=(effects.shape[0], PROXIES, FRESH_WORDINGS))
    ranks = stats.rankdata(fresh, axis=1)
    rho = np.array(
        [
            (np.corrcoef(unit.T).sum() - FRESH_WORDINGS) / (FRESH_WORDINGS * (FRESH_WORDINGS - 1))
            for unit in ranks
        ]
    )
    return np.asarray(((wordings - 1) * rho + 1) / wordings)


def with_repeats(means: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """W recomputed on the resampled wordings as drawn, repeats included."""
    ranks, ties = block_ranks(means)
    take = draws[:, :, None, :]
    return np.asarray(
        friedman(
            np.take_along_axis(ranks[:, None], take, axis=-1),
            np.take_along_axis(ties[:, None], draws, axis=-1),
        )["kendall_w"]
    )


def coverage(
    replicates: np.ndarray, estimate: np.ndarray, truth: np.ndarray
) -> tuple[float, float]:
    low, high = bias_corrected_interval(replicates, estimate)
    return float(np.mean((low <= truth) & (truth <= high))), float(np.mean(high - low))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=150)
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.units} units x {PROXIES} proxies, {args.bootstrap} resamples, seed {args.seed}")
    print(
        "| wordings | W | true W | mean replicate | coverage | width | repeats: mean | coverage | width |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for wordings in (3, 4, 6, 12):
        scale = rng.uniform(0.2, 1.5, size=(args.units, 1, 1))
        effects = rng.normal(size=(args.units, PROXIES, 1)) * scale
        means = effects + rng.normal(size=(args.units, PROXIES, wordings))
        estimate = np.asarray(friedman(*block_ranks(means))["kendall_w"])
        draws = rng.integers(0, wordings, size=(args.units, args.bootstrap, wordings))
        shipped = paraphrase_bootstrap(means, np.zeros_like(means), 1, draws)["kendall_w"]
        repeated = with_repeats(means, draws)
        truth = true_concordance(effects, wordings, rng)
        covered, width = coverage(shipped, estimate, truth)
        covered_repeats, width_repeats = coverage(repeated, estimate, truth)
        print(
            f"| {wordings} | {estimate.mean():.3f} | {truth.mean():.3f} | "
            f"{np.nanmean(shipped):.3f} | {covered:.0%} | {width:.3f} | "
            f"{np.nanmean(repeated):.3f} | {covered_repeats:.0%} | {width_repeats:.3f} |"
        )


if __name__ == "__main__":
    main()
