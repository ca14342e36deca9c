"""Coverage of the bootstrap intervals over wordings, by simulation: Kendall's W, culture share, rho2.

**Kendall's W.** Each simulated unit (an item on one axis) has C proxies with true effects of a
random size, and P wordings that each add independent noise to the proxy means. The true W for P wordings is
((P - 1) rho + 1) / P, with rho the unit's mean Spearman correlation between two wordings, estimated
here from 300 fresh wordings of the same unit. The analysis resamples wordings with replacement
(``paraphrase_bootstrap``) and reads the bias-corrected percentile interval
(``bias_corrected_interval``), as ``culture-probe analyze`` does. The table gives, per P, the share
of units whose 95% interval contains the true W, for the shipped replicates (pairs of distinct
wordings only) and, beside them, for replicates that recompute W on the resampled wordings as they
are (a wording drawn twice then agrees perfectly with itself).

**Culture share and rho2(1).** Cell means follow the random-effects model that the decomposition
assumes: proxy effects (sd 1), wording effects (sd 0.7), proxy-by-wording effects (sd 0.5) and 2
replicates a cell (sd 0.6). The proxies are the unit's own fixed set, as the bootstrap keeps them:
the true culture share is s2_C / (s2_C + 0.7^2 + 0.5^2 + 0.6^2) and the true rho2(1) is
s2_C / (s2_C + 0.5^2 + 0.6^2 / 2), with s2_C the variance of the unit's drawn proxy effects.
The rows "rho2_1, F interval" are the interval ``analyze`` reports for rho2(1): the noncentral
F interval of ``rho2_interval``; the other rows are the bootstrap's.

Run: python benchmarks/interval_coverage.py [--units 150] [--bootstrap 400] [--seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from culture_probe.analysis._anova import (
    block_ranks,
    friedman,
    item_statistics,
    paraphrase_bootstrap,
    rho2_interval,
)
from culture_probe.analysis._items import bias_corrected_interval

PROXIES = 10
FRESH_WORDINGS = 300
WORDINGS = (3, 4, 6, 12)
#: standard deviations of the variance-component model: proxy, wording, interaction, replicate
SD_PROXY, SD_WORDING, SD_INTERACTION, SD_REPLICATE = 1.0, 0.7, 0.5, 0.6
REPLICATES = 2


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
    return covered_share(low, high, truth)


def covered_share(low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return float(np.mean((low <= truth) & (truth <= high))), float(np.mean(high - low))


def concordance_table(units: int, bootstrap: int, rng: np.random.Generator) -> None:
    print(
        "| wordings | W | true W | mean replicate | coverage | width | repeats: mean | coverage | width |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for wordings in WORDINGS:
        scale = rng.uniform(0.2, 1.5, size=(units, 1, 1))
        effects = rng.normal(size=(units, PROXIES, 1)) * scale
        means = effects + rng.normal(size=(units, PROXIES, wordings))
        estimate = np.asarray(friedman(*block_ranks(means))["kendall_w"])
        draws = rng.integers(0, wordings, size=(units, bootstrap, wordings))
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


def components_table(units: int, bootstrap: int, rng: np.random.Generator) -> None:
    print("| wordings | statistic | estimate | truth | mean replicate | coverage | width |")
    print("|---|---|---|---|---|---|---|")
    for wordings in WORDINGS:
        proxy = rng.normal(size=(units, PROXIES, 1)) * SD_PROXY
        cells = (
            proxy
            + rng.normal(size=(units, 1, wordings)) * SD_WORDING
            + rng.normal(size=(units, PROXIES, wordings)) * SD_INTERACTION
        )
        noise = rng.normal(size=(units, PROXIES, wordings, REPLICATES)) * SD_REPLICATE
        replicates = cells[..., None] + noise
        means = replicates.mean(axis=-1)
        within = ((replicates - means[..., None]) ** 2).sum(axis=-1)
        estimates = item_statistics(means, within, REPLICATES)
        draws = rng.integers(0, wordings, size=(units, bootstrap, wordings))
        resampled = paraphrase_bootstrap(means, within, REPLICATES, draws)
        s2_proxy = proxy[..., 0].var(axis=1, ddof=1)
        truths = {
            "culture_share": s2_proxy
            / (s2_proxy + SD_WORDING**2 + SD_INTERACTION**2 + SD_REPLICATE**2),
            "rho2_1": s2_proxy / (s2_proxy + SD_INTERACTION**2 + SD_REPLICATE**2 / REPLICATES),
        }
        for name, truth in truths.items():
            covered, width = coverage(resampled[name], estimates[name], truth)
            print(
                f"| {wordings} | {name} | {np.nanmean(estimates[name]):.3f} | {truth.mean():.3f} "
                f"| {np.nanmean(resampled[name]):.3f} | {covered:.0%} | {width:.3f} |"
            )
        # what analyze reports for rho2(1): the exact interval from MS_C / MS_CP
        covered, width = covered_share(*rho2_interval(estimates, wordings, 0.95), truths["rho2_1"])
        print(
            f"| {wordings} | rho2_1, F interval | {np.nanmean(estimates['rho2_1']):.3f} "
            f"| {truths['rho2_1'].mean():.3f} | - | {covered:.0%} | {width:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=150)
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.units} units x {PROXIES} proxies, {args.bootstrap} resamples, seed {args.seed}")
    concordance_table(args.units, args.bootstrap, rng)
    print()
    components_table(args.units, args.bootstrap, rng)


if __name__ == "__main__":
    main()
