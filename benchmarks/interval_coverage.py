"""Coverage of the intervals ``culture-probe analyze`` prints, by simulation.

``--part units`` (the first two tables): single units, Kendall's W, culture share and rho2(1).

**Kendall's W.** Each simulated unit (an item on one axis) has C proxies with true effects of a
random size, and P wordings that each add independent noise to the proxy means. The truth is the
W that P wordings of this unit give on average, ((P - 1) rho + 1) / P, with rho the unit's
expected Spearman correlation between two wordings' proxy rankings (W is this function of the
mean correlation of its P wordings), estimated here from 1,000 fresh wordings of the same unit.
The table gives, per P, the coverage of the interval ``analyze`` prints (``concordance_interval``:
the noncentral F of the rank ANOVA), and beside it that of the wording bootstrap it replaced
(``paraphrase_bootstrap``'s replicates over pairs of distinct wordings, bias-corrected percentile
interval). The study columns check the mean W of studies of 5 units: the interval ``analyze``
prints (the Student-t interval over items on the log-odds scale, ``item_mean_interval``, as
``two_stage_aggregates`` prints it) on ``--mean-w-studies`` studies of fresh units of their own
(W only, no bootstrap, so that the coverage is known to a few tenths of a point), and the
two-stage bootstrap of the W replicates it replaced on the ``--units`` units grouped in fives.
The study's units are a sample of a population of units, and the truth is that population's mean
W (the mean over all the units simulated for that column).

**Culture share and rho2(1).** Cell means follow the random-effects model that the decomposition
assumes: proxy effects (sd 1), wording effects (sd 0.7), proxy-by-wording effects (sd 0.5) and 2
replicates a cell (sd 0.6). The proxies are the unit's own fixed set, as the bootstrap keeps them:
the true culture share is s2_C / (s2_C + 0.7^2 + 0.5^2 + 0.6^2) and the true rho2(1) is
s2_C / (s2_C + 0.5^2 + 0.6^2 / 2), with s2_C the variance of the unit's drawn proxy effects.
The rows "..., F interval" are the intervals ``analyze`` reports for rho2(1), which inverts the
culture F test (``rho2_interval``), and the culture share, from pivotal draws of every component
with its lower end tied to that test (``culture_share_interval``); the other rows are the wording
bootstrap's. CWI's interval (``cwi_interval``, the same draws) is checked in ``--part studies``,
where an interval unbounded above (``inf``) counts as covering an infinite truth.

**Every printed interval, on whole simulated studies** (``--part studies``).

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
  design: the N-way model takes its Type I path, the two-way split analyses unequal cells by
  unweighted means).

Truths, with the estimands the tables name: a fixed term's variance is the mean square of its
realised, centred effects (sum alpha^2 / L); a random term's is its population variance; the
two-way split keeps the study's own proxies (s2_C = their realised variance, ddof 1) and counts
the orders and enumerators, which vary within its cells, in its residual. rho2(1)'s error is
s2_CP + s2_noise / n, n the harmonic mean of the item's responses per proxy x wording cell (6, or
fewer where responses are missing: the n of the cell means the study has); effects the same for
every culture are not error.

A study-level interval resamples the study's items (docs/statistics.md, "Study-level
intervals"): its items are a sample of a population of items, and it covers that population's
value, not the mean of the 5 items it happened to draw (the two differ wherever items differ:
each item's own proxies, its own enumerator x order effects). Its truth is therefore taken over
all the scenario's items: a mean of item statistics (Kendall's W) has the mean of all items'
truths; a pooled one (the two-way and N-way shares and rho2(1), sums of components over sums of
totals) has the mean component over the mean total. Scoring such an interval against its own 5
items' mean counted the spread between items as error and read 98.5-100% where the items differ.

The study mean W, whose interval has no bootstrap, is also scored on ``--mean-w-studies``
studies of fresh items of each scenario (row ``mean_kendall_w, fresh studies``; W only), so that
its coverage is known to half a point where the study rows' binomial standard error is 1 point
on 600 studies.

Level effects (``factor_levels``): the truth of an order level is its planted effect (+-0.1 in
``order``, 0 elsewhere), of an enumerator level 0 (the enumerator x order effects are
double-centred). A level effect is the level's over the item's own proxies (no scenario plants a
culture x order or culture x enumerator effect, so that is the planted effect).

Printed per scenario and interval: the mean estimate, the mean truth, the coverage of the 95%
interval, its mean width and how many intervals were scored. "False claims" gives, on null
studies, the share of items whose culture F test rejects (p < 0.05 and after Benjamini-Hochberg
within the study), whose culture-share interval excludes 0, and whose N-way region share
interval excludes 0.

Run: nice python benchmarks/interval_coverage.py [--part all|units|studies] [--units 150]
[--bootstrap 400] [--mean-w-studies 4000] [--studies 200] [--items 5] [--draws 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis._analyze import _f_interval
from culture_probe.analysis._anova import (
    block_ranks,
    concordance_interval,
    culture_share_interval,
    friedman,
    item_statistics,
    paraphrase_bootstrap,
    rho2_interval,
)
from culture_probe.analysis._factorial import (
    level_table,
    study_summary,
    unit_decomposition,
    with_design_columns,
)
from culture_probe.analysis._items import (
    Decomposition,
    benjamini_hochberg,
    bias_corrected_interval,
    decompose_units,
    item_mean_interval,
)
from culture_probe.analysis._summary import two_stage_aggregates

PROXIES = 10
FRESH_WORDINGS = 1000
#: units per simulated study for the study mean of W
STUDY_ITEMS = 5
WORDINGS = (3, 4, 6, 12)
#: standard deviations of the variance-component model: proxy, wording, interaction, replicate
SD_PROXY, SD_WORDING, SD_INTERACTION, SD_REPLICATE = 1.0, 0.7, 0.5, 0.6
REPLICATES = 2


def true_concordance(effects: np.ndarray, wordings: int, rng: np.random.Generator) -> np.ndarray:
    """Each unit's expected W for ``wordings`` wordings: ((P - 1) rho + 1) / P, rho the mean
    Spearman correlation between two of its wordings over ``FRESH_WORDINGS`` fresh ones."""
    rho = np.empty(effects.shape[0])
    for unit, unit_effects in enumerate(effects):
        ranks = stats.rankdata(unit_effects + rng.normal(size=(PROXIES, FRESH_WORDINGS)), axis=0)
        centred = ranks - ranks.mean(axis=0)
        standard = centred / np.sqrt((centred**2).sum(axis=0))
        total = standard.sum(axis=1)
        rho[unit] = ((total**2).sum() - FRESH_WORDINGS) / (FRESH_WORDINGS * (FRESH_WORDINGS - 1))
    return np.asarray(((wordings - 1) * rho + 1) / wordings)


def coverage(
    replicates: np.ndarray, estimate: np.ndarray, truth: np.ndarray
) -> tuple[float, float]:
    low, high = bias_corrected_interval(replicates, estimate)
    return covered_share(low, high, truth)


def covered_share(low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    return float(np.mean((low <= truth) & (truth <= high))), float(np.mean(high - low))


def concordance_table(
    units: int, bootstrap: int, mean_w_studies: int, seed: int, rng: np.random.Generator
) -> None:
    print(
        "| wordings | W | true W | coverage | width | bootstrap: coverage | width "
        f"| study mean ({STUDY_ITEMS} units): coverage | width | studies "
        "| two-stage bootstrap: coverage | studies |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for wordings in WORDINGS:
        effects, means = simulate_units(units, wordings, rng)
        estimate = np.asarray(friedman(*block_ranks(means))["kendall_w"])
        truth = true_concordance(effects, wordings, rng)
        covered, width = covered_share(*concordance_interval(means, estimate, 0.95), truth)
        draws = rng.integers(0, wordings, size=(units, bootstrap, wordings))
        shipped = paraphrase_bootstrap(means, np.zeros_like(means), 1, draws)["kendall_w"]
        boot_covered, boot_width = coverage(shipped, estimate, truth)
        two_stage = two_stage_concordance(estimate, shipped, truth, rng)
        # Its own generator, so that the columns drawn from ``rng`` do not depend on its size.
        study_rng = np.random.default_rng([seed, wordings])
        study_covered, study_width = study_mean_concordance(mean_w_studies, wordings, study_rng)
        print(
            f"| {wordings} | {estimate.mean():.3f} | {truth.mean():.3f} | {covered:.1%} "
            f"| {width:.3f} | {boot_covered:.1%} | {boot_width:.3f} | {study_covered:.1%} "
            f"| {study_width:.3f} | {mean_w_studies} | {two_stage:.1%} | {units // STUDY_ITEMS} |"
        )


def simulate_units(
    units: int, wordings: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """True proxy effects of a random size per unit, shape (units, C, 1), and the cell means of
    ``wordings`` wordings that each add independent standard normal noise, (units, C, P)."""
    scale = rng.uniform(0.2, 1.5, size=(units, 1, 1))
    effects = rng.normal(size=(units, PROXIES, 1)) * scale
    return effects, effects + rng.normal(size=(units, PROXIES, wordings))


def study_mean_concordance(
    studies: int, wordings: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Coverage and mean width of the interval ``analyze`` prints for the mean W of a study of
    ``STUDY_ITEMS`` units (``item_mean_interval``, as ``two_stage_aggregates`` calls it), on
    ``studies`` studies of fresh units.

    The study's units are a sample of the population of units (effects of a random size), and the
    interval, which resamples them, is for that population's mean true W: the mean over all the
    units simulated here."""
    effects, means = simulate_units(studies * STUDY_ITEMS, wordings, rng)
    estimate = np.asarray(friedman(*block_ranks(means))["kendall_w"])
    true_mean = true_concordance(effects, wordings, rng).mean()
    # One column per study: item_mean_interval takes the mean over axis 0.
    _, low, high = item_mean_interval(estimate.reshape(studies, STUDY_ITEMS).T)
    return covered_share(low, high, np.full(studies, true_mean))


def two_stage_concordance(
    estimate: np.ndarray, replicates: np.ndarray, truth: np.ndarray, rng: np.random.Generator
) -> float:
    """Coverage of the mean W over studies of ``STUDY_ITEMS`` of the given units by the two-stage
    bootstrap of the W replicates (items, then each item's wording replicates), which the
    Student-t interval over items replaced; the truth as :func:`study_mean_concordance`'s."""
    n_studies = len(estimate) // STUDY_ITEMS
    true_mean = truth.mean()
    hits = []
    for study in range(n_studies):
        rows = slice(study * STUDY_ITEMS, (study + 1) * STUDY_ITEMS)
        items = rng.integers(0, STUDY_ITEMS, size=(replicates.shape[1], STUDY_ITEMS))
        picks = rng.integers(0, replicates.shape[1], size=items.shape)
        combined = np.nanmean(replicates[rows][items, picks], axis=1)
        low, high = bias_corrected_interval(combined, np.asarray(estimate[rows].mean()))
        hits.append(low <= true_mean <= high)
    return float(np.mean(hits))


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
        # what analyze reports for rho2(1) and the culture share: intervals from MS_C / MS_CP
        reported = {
            "rho2_1": rho2_interval(estimates, wordings, 0.95),
            "culture_share": culture_share_interval(estimates, wordings, REPLICATES, 0.95),
        }
        for name, bounds in reported.items():
            covered, width = covered_share(*bounds, truths[name])
            print(
                f"| {wordings} | {name}, F interval | {np.nanmean(estimates[name]):.3f} "
                f"| {truths[name].mean():.3f} | - | {covered:.0%} | {width:.3f} |"
            )


STUDY_PROXIES, PARAPHRASES, ENUMERATORS, ORDERS = 6, 4, 3, 2
REPLICATES = ENUMERATORS * ORDERS
#: fresh wordings per item for its true Kendall's W
STUDY_FRESH = 400
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
    shape = (STUDY_PROXIES, PARAPHRASES, ENUMERATORS, ORDERS)
    c, p, e, o = (a.ravel() for a in np.indices(shape))
    frames, truths = [], []
    for item in range(n_items):
        culture = _effects(rng, STUDY_PROXIES, planted.culture, planted.skewed)
        wording = rng.normal(0, planted.wording, PARAPHRASES)
        contrast = rng.normal(0, planted.culture_wording, (STUDY_PROXIES, PARAPHRASES))
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
        truth = _truth(item, planted, culture, order, interaction, _cell_count(frame))
        truth["kendall_w"] = _true_concordance(planted, culture, order, interaction, rng)
        truths.append(truth)
    return pd.concat(frames, ignore_index=True), pd.DataFrame(truths)


def _true_concordance(
    planted: Planted,
    culture: np.ndarray,
    order: np.ndarray,
    interaction: np.ndarray,
    rng: np.random.Generator,
) -> float:
    """The item's expected Kendall's W over its PARAPHRASES wordings, its proxies fixed:
    ((P - 1) rho + 1) / P, rho the mean Spearman correlation between the proxy rankings of
    STUDY_FRESH fresh wordings, each cell the mean of its present responses as the analysis takes
    it. 1 / P exactly where no effect differs between proxies."""
    if not (planted.culture or planted.culture_wording):
        return 1.0 / PARAPHRASES
    shape = (STUDY_PROXIES, STUDY_FRESH, ENUMERATORS * ORDERS)
    within = np.broadcast_to((order[None, :] + interaction).ravel(), shape)
    noise = (
        rng.standard_t(3, shape) * NOISE / np.sqrt(3)
        if planted.heavy_tails
        else rng.normal(0, NOISE, shape)
    )
    present = rng.random(shape) >= planted.missing
    present[..., 0] |= ~present.any(axis=-1)  # the analysis needs every cell
    cells = np.where(present, within + noise, 0.0).sum(-1) / present.sum(-1)
    cells = cells + culture[:, None] + rng.normal(0, planted.culture_wording, shape[:2])
    ranks = stats.rankdata(cells, axis=0)
    centred = ranks - ranks.mean(axis=0)
    total = (centred / np.sqrt((centred**2).sum(axis=0))).sum(axis=1)
    rho = ((total**2).sum() - STUDY_FRESH) / (STUDY_FRESH * (STUDY_FRESH - 1))
    return float(((PARAPHRASES - 1) * rho + 1) / PARAPHRASES)


def _cell_count(frame: pd.DataFrame) -> float:
    """The harmonic mean of the responses per proxy x wording cell: the n of the cell means the
    analysis has (unweighted means; REPLICATES where nothing is missing)."""
    counts = frame.groupby(["proxy", "paraphrase"]).size().to_numpy(dtype=np.float64)
    return float(len(counts) / (1.0 / counts).sum())


def _effects(rng: np.random.Generator, n: int, sd: float, skewed: bool) -> np.ndarray:
    if skewed:
        return (rng.exponential(1.0, n) - 1.0) * sd
    return rng.normal(0, sd, n)


def _truth(
    item: int,
    planted: Planted,
    culture: np.ndarray,
    order: np.ndarray,
    interaction: np.ndarray,
    cell_count: float,
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
    levels = {"level:order:canonical": order[0], "level:order:reversed": order[1]}
    levels.update({f"level:enumerator:e{e}": 0.0 for e in range(ENUMERATORS)})
    return {
        "item_id": f"Q{item:05d}",
        **{f"nway:{name}": value / total for name, value in nway.items()},
        **{f"nway_component:{name}": value for name, value in nway.items()},
        "nway_total": total,
        **levels,
        "two_way_total": two_way_total,
        "two_way:culture_share": s2_c,
        "two_way:wording_share": s2_p,
        "two_way:wording_contrast_share": s2_cp,
        "two_way:residual_share": s2_e,
        "culture_share": s2_c / two_way_total,
        "wording_share": s2_p / two_way_total,
        "wording_contrast_share": s2_cp / two_way_total,
        "residual_share": s2_e / two_way_total,
        "rho2_1": s2_c / (s2_c + s2_cp + s2_noise / cell_count),
        # the study's rho2(1) pools these over items
        "rho2_signal": s2_c,
        "rho2_total": s2_c + s2_cp + s2_noise / cell_count,
        # undefined (NaN) where neither culture nor wording varies; unbounded where only culture does
        "cwi": s2_c / (s2_p + s2_cp) if s2_p + s2_cp > 0 else (np.inf if s2_c > 0 else np.nan),
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
            # an infinite bound ("unbounded above") or truth counts; a NaN one has no interval
            usable = ~np.isnan(low) & ~np.isnan(high) & ~np.isnan(truth)
            if not usable.any():
                continue
            finite = usable & np.isfinite(high - low)
            covered = (low[usable] <= truth[usable] + 1e-12) & (
                truth[usable] <= high[usable] + 1e-12
            )
            lines.append(
                f"| {scenario} | {level} | {name} | {np.nanmean(estimate[usable]):.3f} | "
                f"{truth[usable].mean():.3f} | {covered.mean():.1%} | "
                f"{_width(high - low, finite, usable)} | {int(usable.sum())} |"
            )
        return lines


def _width(widths: np.ndarray, finite: np.ndarray, usable: np.ndarray) -> str:
    """Mean width of the bounded intervals, and how many were unbounded above."""
    text = f"{widths[finite].mean():.3f}" if finite.any() else "-"
    unbounded = int(usable.sum() - finite.sum())
    return f"{text} ({unbounded} unbounded)" if unbounded else text


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
    fresh = np.random.default_rng([args.seed, SCENARIOS.index(scenario), 30])
    fresh_study_mean_concordance(tally, scenario, args, fresh)
    false_claims = {name: float(np.mean(values)) for name, values in claims.items()}
    return tally.table(scenario), false_claims


def decompose_studies(tidy, codes, study_of, draws, seed) -> Decomposition:  # type: ignore[no-untyped-def]
    """``decompose_units`` study by study, as ``analyze`` sees one study: what a study pools (the
    errors' kurtosis) is pooled over its own items only."""
    parts = [
        decompose_units(rows, codes, draws, seed)
        for _, rows in tidy.groupby(tidy["item_id"].map(study_of), sort=True)
    ]
    table = pd.concat([part.table for part in parts], ignore_index=True)
    replicates = {
        name: np.concatenate([part.replicates[name] for part in parts])
        for name in parts[0].replicates
    }
    return Decomposition(table, replicates, sum(part.rows_dropped for part in parts))


def two_way(tally, claims, tidy, truth, codes, study_of, args, seed) -> None:  # type: ignore[no-untyped-def]
    core = decompose_studies(tidy, codes, study_of, args.draws, seed)
    table = core.table.assign(beats_placebo=np.nan, order_share=np.nan)
    true = truth.loc[table["item_id"]]
    for name in ("culture_share", "rho2_1", "cwi", "kendall_w"):
        low, high = _f_interval(table, name)
        tally.add("item", name, table[name], low, high, true[name])
    low, _ = _f_interval(table, "kendall_w")
    claims["Kendall's W interval excludes 1 / P (chance)"] += list(low > 1 / PARAPHRASES + 1e-9)
    # the study's items are a sample of the scenario's items, and every study-level interval
    # resamples them: its truth is the population's (the mean over all the scenario's items)
    population = truth.mean(numeric_only=True)
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
            true = population[column]
            if column == "rho2_1":  # components pooled over items
                true = population["rho2_signal"] / population["rho2_total"]
            elif f"two_way:{column}" in population.index:  # the shares too
                true = population[f"two_way:{column}"] / population["two_way_total"]
            tally.add("study", name, value["estimate"], value["ci_low"], value["ci_high"], true)
        value = aggregates["mean_kendall_w"]
        tally.add(
            "study",
            "mean_kendall_w",
            value["estimate"],
            value["ci_low"],
            value["ci_high"],
            population["kendall_w"],
        )


def fresh_study_mean_concordance(
    tally: Tally, scenario: str, args: argparse.Namespace, rng: np.random.Generator
) -> None:
    """The study mean W's interval (``item_mean_interval``, as ``two_stage_aggregates`` calls it)
    on ``--mean-w-studies`` studies of ``--items`` fresh items of the scenario; the truth is the
    mean over all of them. Its own generator leaves the other rows' draws as they were."""
    if args.mean_w_studies < 1:
        return
    n_items = args.mean_w_studies * args.items
    tidy, truth = simulate(PLANTED[scenario], n_items, rng)
    codes = {item: code for code, item in enumerate(sorted(tidy["item_id"].unique()))}
    table = decompose_units(tidy, codes, 1, 0).table
    study = table["item_id"].map(codes).to_numpy() // args.items
    estimates = np.full((args.items, args.mean_w_studies), np.nan)
    for column in range(args.mean_w_studies):
        values = table["kendall_w"].to_numpy(dtype=np.float64)[study == column]
        estimates[: len(values), column] = values
    estimate, low, high = item_mean_interval(estimates)
    true_mean = truth["kendall_w"].mean()
    tally.add("study", "mean_kendall_w, fresh studies", estimate, low, high, true_mean)


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
        for _, level in fit.levels.iterrows():
            name = f"level:{level['factor']}:{level['level']}"
            tally.add(
                "item",
                f"level effect, {level['factor']}",
                level["effect"],
                level["effect_low"],
                level["effect_high"],
                truth.loc[item].get(name, np.nan),
            )
    # the pooled share's population truth: mean component over mean total, all items
    population = truth.mean(numeric_only=True)
    for study, group in fits.items():
        summary = study_summary(group, args.draws, seed + study)
        levels = level_table(group)
        for _, level in levels.loc[levels["scope"] == "study"].iterrows():
            column = f"level:{level['factor']}:{level['level']}"
            tally.add(
                "study",
                f"level effect, {level['factor']}",
                level["effect"],
                level["effect_low"],
                level["effect_high"],
                population[column],
            )
        for _, row in summary.iterrows():
            column = f"nway_component:{row['factor']}"
            if column in truth.columns:
                tally.add(
                    "study",
                    f"N-way {row['factor']} ({row['effect']})",
                    row["share"],
                    row["share_low"],
                    row["share_high"],
                    population[column] / population["nway_total"],
                )


def units_part(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    print(f"{args.units} units x {PROXIES} proxies, {args.bootstrap} resamples, seed {args.seed}")
    concordance_table(args.units, args.bootstrap, args.mean_w_studies, args.seed, rng)
    print()
    components_table(args.units, args.bootstrap, rng)


def studies_part(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.studies} studies x {args.items} items per scenario, {args.draws} draws, "
        f"seed {args.seed}"
    )
    print("| scenario | level | interval | estimate | truth | coverage | width | n |")
    print("|---|---|---|---|---|---|---|---|")
    false_claims: dict[str, float] = {}
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=("all", "units", "studies"), default="all")
    parser.add_argument("--units", type=int, default=150)
    parser.add_argument("--bootstrap", type=int, default=400)
    parser.add_argument(
        "--mean-w-studies",
        type=int,
        default=4000,
        help="studies of fresh units (--part units) and of fresh items of each scenario (--part "
        "studies) for the coverage of the study mean W's interval",
    )
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    if args.part in ("all", "units"):
        units_part(args)
        print()
    if args.part in ("all", "studies"):
        studies_part(args)


if __name__ == "__main__":
    main()
