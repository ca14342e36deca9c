"""Coverage of every interval ``culture-probe analyze`` prints, by simulation of whole studies.

Each simulated study has ``--items`` items; each item crosses 6 culture proxies (axis ``region``)
x 4 paraphrases x 3 enumerators x 2 option orders, one response per cell, so the two-way split
sees 6 replicates (orders x enumerators) per proxy x wording cell and the N-way model every term.
Scenarios (standard deviations on the 0-1 score scale; per item, effects drawn afresh):

- ``null``: noise only (sd 0.05).
- ``culture``: culture effects (sd 0.05) and noise.
- ``order``: a fixed option-order effect of +-0.1 (true order share 0.80) and noise.
- ``interaction``: enumerator x order effects (sd 0.08, double-centred), culture (0.03),
  culture x paraphrase (0.04) and noise: the design's own interaction.
- ``misspecified``: skewed culture effects (centred exponential, sd 0.05), wording (0.03),
  Student-t(3) noise of sd 0.05, and 10% of the responses missing at random (an unbalanced
  design: the N-way model takes its Type I path, the two-way split drops cells).

Truths, with the estimands the tables name: a fixed term's variance is the mean square of its
realised, centred effects (sum alpha^2 / L); a random term's is its population variance; the
two-way split keeps the study's own proxies (s2_C = their realised variance, ddof 1) and counts
the orders and enumerators, which vary within its cells, in its residual. rho2(1)'s error is
s2_CP + s2_noise / n: effects the same for every culture are not error. A study-level truth is
the mean of its items' truths.

Printed per scenario and interval: the mean estimate, the mean truth, the coverage of the 95%
interval, its mean width and how many intervals were scored. "False claims" gives, on null
studies, the share of items whose culture F test rejects (p < 0.05 and after Benjamini-Hochberg
within the study), whose culture-share interval excludes 0, and whose N-way region share
interval excludes 0.

Run: nice python benchmarks/printed_intervals.py [--studies 200] [--items 10] [--draws 200]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from culture_probe.analysis._analyze import _f_interval
from culture_probe.analysis._factorial import (
    study_summary,
    unit_decomposition,
    with_design_columns,
)
from culture_probe.analysis._items import (
    benjamini_hochberg,
    bias_corrected_interval,
    decompose_units,
)
from culture_probe.analysis._summary import two_stage_aggregates

PROXIES, PARAPHRASES, ENUMERATORS, ORDERS = 6, 4, 3, 2
REPLICATES = ENUMERATORS * ORDERS
SCENARIOS = ("null", "culture", "order", "interaction", "misspecified")
NOISE = 0.05


@dataclass(frozen=True)
class Planted:
    culture: float = 0.0
    wording: float = 0.0
    culture_wording: float = 0.0
    order: float = 0.0
    enumerator_order: float = 0.0
    skewed: bool = False
    heavy_tails: bool = False
    missing: float = 0.0


PLANTED = {
    "null": Planted(),
    "culture": Planted(culture=0.05),
    "order": Planted(order=0.1),
    "interaction": Planted(culture=0.03, culture_wording=0.04, enumerator_order=0.08),
    "misspecified": Planted(culture=0.05, wording=0.03, skewed=True, heavy_tails=True, missing=0.1),
}


def simulate(
    planted: Planted, n_items: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tidy culture rows of ``n_items`` items and each item's true values."""
    shape = (PROXIES, PARAPHRASES, ENUMERATORS, ORDERS)
    c, p, e, o = (a.ravel() for a in np.indices(shape))
    frames, truths = [], []
    for item in range(n_items):
        culture = _effects(rng, PROXIES, planted.culture, planted.skewed)
        wording = rng.normal(0, planted.wording, PARAPHRASES)
        contrast = rng.normal(0, planted.culture_wording, (PROXIES, PARAPHRASES))
        order = np.array([planted.order, -planted.order])
        interaction = rng.normal(0, planted.enumerator_order, (ENUMERATORS, ORDERS))
        interaction = (
            interaction
            - interaction.mean(0, keepdims=True)
            - interaction.mean(1, keepdims=True)
            + interaction.mean()
        )
        noise = (
            rng.standard_t(3, len(c)) * NOISE / np.sqrt(3)
            if planted.heavy_tails
            else rng.normal(0, NOISE, len(c))
        )
        score = (
            0.5 + culture[c] + wording[p] + contrast[c, p] + order[o] + interaction[e, o] + noise
        )
        frame = pd.DataFrame(
            {
                "item_id": f"Q{item:05d}",
                "axis": "region",
                "proxy": np.char.add("C", c.astype(str)),
                "proxy_kind": "culture",
                "paraphrase": np.char.add("p", p.astype(str)),
                "framing": "imagine",
                "wording": np.char.add(np.char.add("p", p.astype(str)), "/imagine"),
                "enumerator": np.char.add("e", e.astype(str)),
                "order": np.where(o == 0, "canonical", "reversed"),
                "seed": 0,
                "language": "en",
                "score": score,
            }
        )
        if planted.missing:
            frame = frame.loc[rng.random(len(frame)) >= planted.missing]
        frames.append(frame)
        truths.append(_truth(item, planted, culture, order, interaction))
    return pd.concat(frames, ignore_index=True), pd.DataFrame(truths)


def _effects(rng: np.random.Generator, n: int, sd: float, skewed: bool) -> np.ndarray:
    if skewed:
        return (rng.exponential(1.0, n) - 1.0) * sd
    return rng.normal(0, sd, n)


def _truth(
    item: int, planted: Planted, culture: np.ndarray, order: np.ndarray, interaction: np.ndarray
) -> dict[str, float]:
    """Per item: the N-way components and the two-way statistics' true values."""
    s2_noise = NOISE**2
    s2_culture_pop = planted.culture**2
    fixed_order = float((order**2).mean())
    fixed_interaction = float((interaction**2).mean())
    nway = {
        "region": s2_culture_pop,
        "paraphrase": planted.wording**2,
        "enumerator": 0.0,
        "order": fixed_order,
        "paraphrase x enumerator": 0.0,
        "paraphrase x order": 0.0,
        "enumerator x order": fixed_interaction,
        "culture x paraphrase": planted.culture_wording**2,
        "culture x enumerator": 0.0,
        "culture x order": 0.0,
        "residual": s2_noise,
    }
    total = sum(nway.values())
    within = (order[None, :] + interaction).ravel()  # the replicates of a proxy x wording cell
    s2_e = s2_noise + float(((within - within.mean()) ** 2).sum() / (REPLICATES - 1))
    s2_c = float(culture.var(ddof=1))
    s2_p, s2_cp = planted.wording**2, planted.culture_wording**2
    two_way_total = s2_c + s2_p + s2_cp + s2_e
    return {
        "item_id": f"Q{item:05d}",
        **{f"nway:{name}": value / total for name, value in nway.items()},
        "culture_share": s2_c / two_way_total,
        "wording_share": s2_p / two_way_total,
        "wording_contrast_share": s2_cp / two_way_total,
        "residual_share": s2_e / two_way_total,
        "rho2_1": s2_c / (s2_c + s2_cp + s2_noise / REPLICATES),
        "cwi": s2_c / (s2_p + s2_cp) if s2_p + s2_cp > 0 else np.inf,
    }


class Tally:
    """Coverage counts per (level, interval)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)

    def add(self, level: str, name: str, estimate, low, high, truth) -> None:  # type: ignore[no-untyped-def]
        values = np.broadcast_arrays(
            *(np.atleast_1d(np.asarray(v, float)) for v in (estimate, low, high, truth))
        )
        self.rows[(level, name)].append(np.stack(values))

    def table(self, scenario: str) -> list[str]:
        lines = []
        for (level, name), parts in self.rows.items():
            estimate, low, high, truth = np.concatenate(parts, axis=1)
            usable = np.isfinite(low) & np.isfinite(high) & np.isfinite(truth)
            if not usable.any():
                continue
            covered = (low[usable] <= truth[usable] + 1e-12) & (
                truth[usable] <= high[usable] + 1e-12
            )
            lines.append(
                f"| {scenario} | {level} | {name} | {np.nanmean(estimate[usable]):.3f} | "
                f"{truth[usable].mean():.3f} | {covered.mean():.1%} | "
                f"{(high - low)[usable].mean():.3f} | {int(usable.sum())} |"
            )
        return lines


def run_scenario(
    scenario: str, args: argparse.Namespace, rng: np.random.Generator
) -> tuple[list[str], dict[str, float]]:
    """All studies of a scenario: simulated and decomposed at once, summarised study by study."""
    tally = Tally()
    claims: dict[str, list[float]] = defaultdict(list)
    n_items = args.studies * args.items
    tidy, truth = simulate(PLANTED[scenario], n_items, rng)
    truth = truth.set_index("item_id")
    items = sorted(tidy["item_id"].unique())
    codes = {item: code for code, item in enumerate(items)}
    study_of = {item: code // args.items for code, item in enumerate(items)}
    seed = int(rng.integers(1 << 31))
    two_way(tally, claims, tidy, truth, codes, study_of, args, seed)
    nway(tally, claims, tidy, truth, study_of, args, seed)
    false_claims = {name: float(np.mean(values)) for name, values in claims.items()}
    return tally.table(scenario), false_claims


def two_way(tally, claims, tidy, truth, codes, study_of, args, seed) -> None:  # type: ignore[no-untyped-def]
    core = decompose_units(tidy, codes, args.draws, seed)
    table = core.table.assign(beats_placebo=np.nan, order_share=np.nan)
    true = truth.loc[table["item_id"]]
    for name in ("culture_share", "rho2_1"):
        low, high = _f_interval(table, name)
        tally.add("item", name, table[name], low, high, true[name])
    low, high = bias_corrected_interval(core.replicates["cwi"], table["cwi"].to_numpy())
    tally.add("item", "cwi", table["cwi"], low, high, true["cwi"])
    p = table["p_proxy"].to_numpy()
    claims["F test p < 0.05"] += list(p < 0.05)
    low, _ = _f_interval(table, "culture_share")
    claims["culture share interval excludes 0"] += list(low > 0)
    studies = table["item_id"].map(study_of).to_numpy()
    for study in np.unique(studies):
        rows = np.flatnonzero(studies == study)
        part = table.iloc[rows].reset_index(drop=True)
        claims["F test, BH within the study"] += list(benjamini_hochberg(p[rows]) < 0.05)
        replicates = {name: values[rows] for name, values in core.replicates.items()}
        aggregates = two_stage_aggregates(part, replicates, seed + int(study))
        for name, column in (
            ("mean_culture_share", "culture_share"),
            ("mean_wording_share", "wording_share"),
            ("mean_wording_contrast_share", "wording_contrast_share"),
            ("mean_residual_share", "residual_share"),
            ("mean_rho2_1", "rho2_1"),
        ):
            value = aggregates[name]
            true_mean = truth.loc[part["item_id"], column].mean()
            tally.add(
                "study", name, value["estimate"], value["ci_low"], value["ci_high"], true_mean
            )


def nway(tally, claims, tidy, truth, study_of, args, seed) -> None:  # type: ignore[no-untyped-def]
    frame = with_design_columns(tidy)
    fits: dict[int, list] = defaultdict(list)  # type: ignore[type-arg]
    for item, rows in frame.groupby("item_id", sort=True):
        rng = np.random.default_rng([seed, int(str(item)[1:])])
        fit = unit_decomposition(rows, str(item), "region", args.draws, rng)
        if fit is None:
            continue
        fits[study_of[item]].append(fit)
        table = fit.table
        true = np.array([truth.loc[item].get(f"nway:{name}", np.nan) for name in table["factor"]])
        for row in range(len(table)):
            tally.add(
                "item",
                f"N-way {table['factor'].iat[row]} ({table['effect'].iat[row]})",
                table["share"].iat[row],
                table["share_low"].iat[row],
                table["share_high"].iat[row],
                true[row],
            )
        region = table.loc[table["factor"] == "region"]
        claims["N-way region interval excludes 0"].append(float(region["share_low"].iat[0] > 0))
    for study, group in fits.items():
        summary = study_summary(group, args.draws, seed + study)
        items = [fit.table["item_id"].iat[0] for fit in group]
        for _, row in summary.iterrows():
            column = f"nway:{row['factor']}"
            if column in truth.columns:
                tally.add(
                    "study",
                    f"N-way {row['factor']} ({row['effect']})",
                    row["share"],
                    row["share_low"],
                    row["share_high"],
                    truth.loc[items, column].mean(),
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.studies} studies x {args.items} items per scenario, {args.draws} draws, "
        f"seed {args.seed}"
    )
    print("| scenario | level | interval | estimate | truth | coverage | width | n |")
    print("|---|---|---|---|---|---|---|---|")
    false_claims = {}
    for scenario in args.scenarios.split(","):
        start = time.time()
        lines, claims = run_scenario(scenario, args, rng)
        print("\n".join(lines), flush=True)
        if scenario == "null":
            false_claims = claims
        print(f"<!-- {scenario}: {time.time() - start:.0f} s -->", flush=True)
    print("\nFalse claims on null studies (share of items):\n")
    print("| claim | rate |\n|---|---|")
    for name, rate in false_claims.items():
        print(f"| {name} | {rate:.1%} |")


if __name__ == "__main__":
    main()
