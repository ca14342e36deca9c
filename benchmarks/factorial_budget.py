"""Variance shares from a budgeted fraction of a factorial grid against the full grid, by simulation.

Each simulated item crosses countries x religions x paraphrases x enumerators x separators x
orders (scaled down from the 40 x 6 x 8 x 4 x 3 x 2 of a real study so the whole benchmark runs in
a few minutes on two cores). Scores follow the random-effects model of
:mod:`culture_probe.analysis._factorial` with planted components (:data:`PLANTED`): every term the
analysis fits plus a residual. Per item, the N-way decomposition runs on the full grid and on
balanced fractions (:func:`culture_probe.budget.balanced_fraction`) of 25% and 10% of its cells.

Reported per factor and design:

- ``MAD vs full``: mean over items of |share(fraction) - share(full grid)|;
- ``coverage``: share of items whose 95% interval (generalised pivotal quantities) contains the
  planted share sigma2_t / sum sigma2; on the full grid this is the coverage on a balanced design;
- ``not estimable``: share of items where the fraction left the term no degrees of freedom.

Run: python benchmarks/factorial_budget.py [--items 120] [--draws 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from culture_probe.analysis._factorial import unit_decomposition
from culture_probe.budget import balanced_fraction

LEVELS = {
    "axis_region": 10,
    "axis_religion": 4,
    "paraphrase": 4,
    "enumerator": 3,
    "separator": 2,
    "order": 2,
}
#: planted variance components on the 0-1 answer scale
PLANTED = {
    "region": 0.040,
    "religion": 0.020,
    "region x religion": 0.005,
    "paraphrase": 0.015,
    "enumerator": 0.008,
    "separator": 0.004,
    "order": 0.010,
    "culture x paraphrase": 0.004,
    "culture x enumerator": 0.002,
    "culture x separator": 0.001,
    "culture x order": 0.002,
    "residual": 0.006,
}
FRACTIONS = (1.0, 0.25, 0.10)
AXIS_COLUMNS = ("axis_region", "axis_religion")


def grid() -> pd.DataFrame:
    """The full grid in the tidy layout the analysis reads (one culture row per cell)."""
    index = pd.MultiIndex.from_product([range(n) for n in LEVELS.values()], names=list(LEVELS))
    cells = index.to_frame(index=False)
    out = pd.DataFrame({c: cells[c].map(lambda v, c=c: f"{c[:3]}{v}") for c in LEVELS})
    out["item_id"], out["axis"], out["proxy_kind"] = "q", "region x religion", "culture"
    out["proxy"] = out["axis_region"] + "+" + out["axis_religion"]
    out["framing"], out["language"], out["seed"], out["instruction"], out["shots"] = (
        "imagine", "en", 0, "default", "0"
    )  # fmt: skip
    out["codes"] = list(cells.to_numpy())
    return out


def simulate(cells: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """One item's scores: an independent normal effect per level of every planted term."""
    codes = np.stack(cells["codes"].to_numpy())
    names = list(LEVELS)
    culture = codes[:, 0] * LEVELS["axis_religion"] + codes[:, 1]
    n_culture = LEVELS["axis_region"] * LEVELS["axis_religion"]
    score = np.sqrt(PLANTED["residual"]) * rng.normal(size=len(cells))
    score += np.sqrt(PLANTED["region"]) * rng.normal(size=LEVELS["axis_region"])[codes[:, 0]]
    score += np.sqrt(PLANTED["religion"]) * rng.normal(size=LEVELS["axis_religion"])[codes[:, 1]]
    score += np.sqrt(PLANTED["region x religion"]) * rng.normal(size=n_culture)[culture]
    for position, name in enumerate(names[2:], start=2):
        levels = LEVELS[name]
        score += np.sqrt(PLANTED[name]) * rng.normal(size=levels)[codes[:, position]]
        joint = rng.normal(size=(n_culture, levels))[culture, codes[:, position]]
        score += np.sqrt(PLANTED[f"culture x {name}"]) * joint
    return np.asarray(score)


def run(n_items: int, n_draws: int, seed: int) -> pd.DataFrame:
    cells = grid()
    truth = pd.Series(PLANTED) / sum(PLANTED.values())
    records = []
    for item in range(n_items):
        rng = np.random.default_rng([seed, item])
        rows = cells.assign(score=simulate(cells, rng))
        full = None
        for fraction in FRACTIONS:
            n = round(len(rows) * fraction)
            drawn = rows if fraction == 1.0 else balanced_fraction(rows, list(LEVELS), n, item)
            fit = unit_decomposition(drawn, "q", "region x religion", n_draws, rng)
            assert fit is not None
            table = fit.table.set_index("factor")
            if full is None:
                full = table["share"]
            for factor in PLANTED:
                row = table.loc[factor]
                estimable = row["df"] > 0 and np.isfinite(row["share"])
                # The residual of a fraction also holds the terms it cannot estimate.
                comparable = estimable and (factor != "residual" or (table["df"] > 0).all())
                records.append(
                    {
                        "fraction": fraction,
                        "factor": factor,
                        "estimable": estimable,
                        "abs_diff": abs(row["share"] - full[factor]) if estimable else np.nan,
                        "covered": (
                            row["share_low"] <= truth[factor] <= row["share_high"]
                            if comparable
                            else np.nan
                        ),
                        "width": row["share_high"] - row["share_low"] if estimable else np.nan,
                    }
                )
    return pd.DataFrame(records)


def report(results: pd.DataFrame) -> str:
    truth = pd.Series(PLANTED) / sum(PLANTED.values())
    grouped = results.groupby(["factor", "fraction"], sort=False)
    table = grouped.agg(
        mad=("abs_diff", "mean"),
        coverage=("covered", "mean"),
        width=("width", "mean"),
        not_estimable=("estimable", lambda v: 1 - v.mean()),
    ).unstack("fraction")
    lines = [
        "| factor | planted share | MAD 25% | MAD 10% | coverage full | coverage 25% "
        "| coverage 10% | width full / 25% / 10% | not estimable 10% |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for factor in PLANTED:
        row = table.loc[factor]
        widths = " / ".join(f"{row[('width', f)]:.3f}" for f in FRACTIONS)
        lines.append(
            f"| {factor} | {truth[factor]:.3f} | {row[('mad', 0.25)]:.3f} | "
            f"{row[('mad', 0.1)]:.3f} | {row[('coverage', 1.0)]:.0%} | "
            f"{row[('coverage', 0.25)]:.0%} | {row[('coverage', 0.1)]:.0%} | {widths} | "
            f"{row[('not_estimable', 0.1)]:.0%} |"
        )
    overall = results.groupby("fraction")["covered"].mean()
    lines.append(
        "| all factors | | {:.3f} | {:.3f} | {:.1%} | {:.1%} | {:.1%} | | |".format(
            results.loc[results["fraction"] == 0.25, "abs_diff"].mean(),
            results.loc[results["fraction"] == 0.1, "abs_diff"].mean(),
            overall[1.0],
            overall[0.25],
            overall[0.1],
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    results = run(args.items, args.draws, args.seed)
    cells = int(np.prod(list(LEVELS.values())))
    print(f"grid {' x '.join(map(str, LEVELS.values()))} = {cells} cells, {args.items} items")
    print(report(results))
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
