"""Coverage of the difference intervals ``culture-probe compare`` prints, by simulation.

Each simulated study puts ``--items`` items to two models. An item crosses 3 culture proxies x
``--wordings`` wordings x 2 option orders, one prompt per cell, and both models answer the same
prompts (paired on ``prompt_id``, as ``compare`` pairs them). A score (0-1 scale) is the item's
level + proxy effect (sd 0.1) + wording effect (sd 0.05, shared by both models) + order effect
(+-0.03) + noise (sd 0.04, independent per model and prompt); model b adds the item's planted
difference and a model x wording effect (random, mean 0: wording is a random facet, so the
estimand is the difference over the population of wordings).

Scenarios (per item, effects drawn afresh):

- ``null``: no planted difference, model x wording sd 0.02.
- ``shift``: a planted difference drawn from N(0, 0.05) per item, model x wording sd 0.02.
- ``interaction``: a planted difference drawn from N(0, 0.05), model x wording sd 0.06 (the
  model's advantage changes from wording to wording).

Per scenario the table gives, for the per-item difference (``item_differences``) and the pair's
mean difference over items (the headline's), the coverage of the printed 95% interval (the share
containing the planted truth), its mean width, and how many intervals were scored; the row
``bootstrap (old)`` is the bias-corrected percentile bootstrap over wordings that ``compare``
printed before, for comparison. "Null: excludes 0 / p < 0.05 / disagree" gives, on null items,
the share whose interval excludes 0, whose t test rejects, and where the two disagree.

The statistics are the shipped code's: ``differences_by`` and ``mean_of_means_interval`` from
``culture_probe.compare._paired``.

Run: nice python benchmarks/compare_coverage.py [--studies 200] [--items 5] [--wordings 8]
[--bootstrap 400] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from culture_probe.analysis import bias_corrected_interval
from culture_probe.compare._paired import differences_by, mean_of_means_interval

PROXIES = ("US", "JP", "DE")
ORDERS = (-0.03, 0.03)
SCENARIOS = {"null": (0.0, 0.02), "shift": (0.05, 0.02), "interaction": (0.05, 0.06)}


def old_bootstrap_interval(
    per_wording: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> tuple[float, float]:
    """The interval ``compare`` printed before: wordings resampled, bias-corrected percentiles."""
    draws = rng.integers(0, len(per_wording), size=(n_bootstrap, len(per_wording)))
    replicates = per_wording[draws].mean(axis=1)
    low, high = bias_corrected_interval(replicates[None, :], np.array([per_wording.mean()]))
    return float(low[0]), float(high[0])


def simulate_study(
    rng: np.random.Generator, n_items: int, n_wordings: int, shift_sd: float, mw_sd: float
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The paired table of one study (the columns ``differences_by`` reads) and the truths."""
    rows, truths = [], {}
    for index in range(n_items):
        item = f"q{index}"
        truth = float(rng.normal(0, shift_sd)) if shift_sd else 0.0
        truths[item] = truth
        level = rng.uniform(0.3, 0.7)
        proxies = rng.normal(0, 0.1, len(PROXIES))
        wordings = rng.normal(0, 0.05, n_wordings)
        model_wording = rng.normal(0, mw_sd, n_wordings)
        for w in range(n_wordings):
            for p, proxy in enumerate(PROXIES):
                for o, order in enumerate(ORDERS):
                    common = level + proxies[p] + wordings[w] + order
                    a = common + rng.normal(0, 0.04)
                    b = common + truth + model_wording[w] + rng.normal(0, 0.04)
                    rows.append((f"{item}-{w}-{p}-{o}", item, f"w{w}", proxy, a, b))
    pairs = pd.DataFrame(
        rows, columns=["prompt_id", "item_id", "wording", "proxy", "score_a", "score_b"]
    )
    pairs["difference"] = pairs["score_b"] - pairs["score_a"]
    return pairs, truths


def run_scenario(
    name: str, args: argparse.Namespace, rng: np.random.Generator
) -> list[dict[str, object]]:
    shift_sd, mw_sd = SCENARIOS[name]
    t_hits, t_widths, boot_hits, boot_widths, overall_hits, overall_widths = ([] for _ in range(6))
    excludes, rejects = [], []
    for _ in range(args.studies):
        pairs, truths = simulate_study(rng, args.items, args.wordings, shift_sd, mw_sd)
        table = differences_by(pairs, ["item_id"], ("a", "b"), 0, rng)
        groups = []
        for row in table.itertuples():
            truth = truths[str(row.item_id)]
            t_hits.append(row.low <= truth <= row.high)
            t_widths.append(row.high - row.low)
            excludes.append(row.low > 0 or row.high < 0)
            rejects.append(row.p < 0.05)
            per_wording = (
                pairs.loc[pairs["item_id"] == row.item_id]
                .groupby("wording")["difference"]
                .mean()
                .to_numpy()
            )
            groups.append(per_wording)
            low, high = old_bootstrap_interval(per_wording, args.bootstrap, rng)
            boot_hits.append(low <= truth <= high)
            boot_widths.append(high - low)
        low, high = mean_of_means_interval(groups)
        overall = float(np.mean(list(truths.values())))
        overall_hits.append(low <= overall <= high)
        overall_widths.append(high - low)
    excludes_, rejects_ = np.array(excludes), np.array(rejects)
    null_columns = (
        f"{excludes_.mean():.3f} / {rejects_.mean():.3f} / {int((excludes_ != rejects_).sum())}"
        if name == "null"
        else ""
    )
    return [
        _row(name, "item difference, t (printed)", t_hits, t_widths, null_columns),
        _row(name, "item difference, bootstrap (old)", boot_hits, boot_widths, ""),
        _row(name, "pair mean over items, t (printed)", overall_hits, overall_widths, ""),
    ]


def _row(
    scenario: str, interval_name: str, hits: list[bool], widths: list[float], null: str
) -> dict[str, object]:
    return {
        "scenario": scenario,
        "interval": interval_name,
        "coverage": f"{np.mean(hits):.3f}",
        "mean width": f"{np.mean(widths):.4f}",
        "n": len(hits),
        "null: excludes 0 / p < 0.05 / disagree": null,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--wordings", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows = [row for name in SCENARIOS for row in run_scenario(name, args, rng)]
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(
        f"\n{args.studies} studies x {args.items} items per scenario, {args.wordings} wordings; "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
