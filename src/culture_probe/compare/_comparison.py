"""Compare runs of different models on the same plan: the tables, the summary and the headline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.arguments import (
    MIN_DIFFERENCE,
    N_BOOTSTRAP,
    N_PERMUTATIONS,
    RUNS,
    SEED,
    Argument,
    count,
    flag,
    number,
    path_list,
)
from culture_probe.compare._alignment import closeness_differences, per_model_alignment
from culture_probe.compare._claims import compare_claims
from culture_probe.compare._interaction import interaction_table, overall_tests
from culture_probe.compare._noise import combined_noise_floor, run_noise_floor
from culture_probe.compare._paired import (
    ALPHA,
    differences_by,
    mean_of_means_interval,
    mean_of_means_test,
    paired_scores,
)
from culture_probe.compare._plans import (
    ELICITATION,
    SharedPrompts,
    differing_levels,
    keyed_by_cell,
    shared_prompts,
)
from culture_probe.compare._ranking import pair_reversals, ranking_table, wording_means
from culture_probe.compare._runs import ComparedRun, RunLike, read_run, unique_labels
from culture_probe.errors import InputError

CULTURE = "culture"


@dataclass
class Comparison:
    """The comparison of two or more runs of the same plan (one model each).

    Attributes:
        runs: The runs compared, restricted to the prompts they share.
        tables: The tables, by name (see :func:`compare_runs`).
        summary: Counts, the overall tests per pair of models and the ``headline`` sentences.
    """

    runs: list[ComparedRun]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """The model labels, in the order the runs were given."""
        return [run.label for run in self.runs]

    def write_report(self, path: str | Path) -> Path:
        """Write the comparison as one self-contained HTML file; returns its path."""
        from culture_probe.compare._page import render_comparison_report

        return render_comparison_report(self, Path(path))

    def __repr__(self) -> str:
        return f"Comparison({', '.join(self.models)}; {self.summary.get('n_prompts', 0)} prompts)"


def compare(
    runs: Sequence[RunLike],
    *,
    shared_only: bool = False,
    min_difference: float = 0.0,
    n_bootstrap: int = 2000,
    n_permutations: int = 199,
    seed: int = 0,
) -> Comparison:
    """Compare runs of different models on the same prompts, read from their run directories.

    Args:
        runs: Two or more run directories, or objects with a ``.path`` to one (``cp.run``'s result).
        shared_only: Compare the prompts the runs share when their plans differ (else refuse).
        min_difference: The smallest difference of mean scores (on the 0-1 score scale) that
            matters: the tests of the differences then ask whether it is larger than this, not
            larger than 0 (e.g. 0.01 to let two builds of one model, whose rounding differs, count
            as equal).
        n_bootstrap: Bootstrap replicates (wordings resampled) for the intervals.
        n_permutations: Label permutations for the alignment's specificity tests.
        seed: Seeds the resampling.

    Returns:
        A :class:`Comparison`; ``comparison.tables["item_differences"]`` is the first to read.

    Raises:
        InputError: fewer than two runs, the same run twice, or a run folder that cannot be read.
        PlanMismatchError: the plans differ (study hash, templates, items, prompts) and
            ``shared_only`` is off.

    Example:
        >>> import culture_probe as cp  # doctest: +SKIP
        >>> comparison = cp.compare(["reports/values/a", "reports/values/b"])  # doctest: +SKIP
        >>> comparison.tables["item_differences"][["item_id", "difference", "low", "high"]]  # doctest: +SKIP
        >>> comparison.write_report("compare.html")  # doctest: +SKIP
    """
    runs = path_list(runs, RUNS)
    shared_only = flag(shared_only, Argument("shared_only", "--shared-only"))
    min_difference = number(min_difference, MIN_DIFFERENCE)
    n_bootstrap = count(n_bootstrap, N_BOOTSTRAP)
    n_permutations = count(n_permutations, N_PERMUTATIONS)
    seed = count(seed, SEED)
    if len(runs) < 2:
        raise InputError(f"compare needs at least two runs, got {len(runs)}")
    loaded = [read_run(run) for run in runs]
    paths = [run.path.resolve() for run in loaded]
    for index, path in enumerate(paths):
        if path in paths[:index]:
            raise InputError(
                "the same run is given twice; compare runs of different models", path=path
            )
    levels = differing_levels(loaded)
    if levels is not None:  # asked different ways: paired on the design cell
        loaded = [keyed_by_cell(run, level) for run, level in zip(loaded, levels, strict=True)]
    labels = unique_labels([run.label for run in loaded], [run.path for run in loaded])
    loaded = [
        ComparedRun(label, r.path, r.manifest, r.tidy, r.probs, r.reference)
        for label, r in zip(labels, loaded, strict=True)
    ]
    shared = shared_prompts(
        loaded, shared_only=shared_only, differing=None if levels is None else ELICITATION
    )
    return compare_runs(
        [run.restricted_to(shared.prompt_ids) for run in loaded],
        shared,
        min_difference=min_difference,
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        seed=seed,
        differing=None if levels is None else (ELICITATION, levels),
    )


def compare_runs(
    runs: Sequence[ComparedRun],
    shared: SharedPrompts,
    *,
    min_difference: float = 0.0,
    n_bootstrap: int = 2000,
    n_permutations: int = 199,
    seed: int = 0,
    differing: tuple[str, list[str]] | None = None,
) -> Comparison:
    """The comparison tables of runs that hold the same prompts (pure: no file is read).

    ``differing``: the design factor the runs differ in and each run's level (runs asked
    different ways), named in the summary (``differing_factor``, ``levels``) and the headline;
    None for runs of different models on one plan.

    Tables (``difference`` is always model b minus model a, for every pair a, b in the given order):

    ``item_differences`` (pair x item; culture proxies)
        ``model_a, model_b, n_prompts, n_wordings, mean_a, mean_b, difference, low, high, t, p,
        p_bh, significant``: the mean paired difference of scores, its 95% t interval over
        wordings (it excludes 0 exactly when p < 0.05), the test against the wording noise and
        Benjamini-Hochberg across items.
    ``proxy_differences`` (pair x item x axis x proxy; every kind of proxy)
        the same per proxy, BH across all rows.
    ``interaction`` (pair x item)
        the model effect against the wording noise and the model x wording interaction (F, p, BH).
    ``ranking`` (item)
        ``kendall_w`` of the models' order over wordings, Friedman test, ``reversal_probability``,
        ``within_noise`` (every pair within numeric noise), ``claimed`` (some pair's difference is
        ``significant`` in ``item_differences``: only these items enter the summary's means).
    ``pair_reversals`` (pair x item)
        wordings whose difference has the opposite sign to the overall one, and their share.
    ``alignment`` (model x item x axis x proxy; with human data)
        MaxP, AvgP, MinP, CPS of each model.
    ``alignment_by_item``, ``alignment_by_country`` (pair x ...; with human data)
        AvgP of b minus a, paired on wordings, its interval and which model is ``closer``.
    ``pairs`` (pair)
        the mean difference over items and its t interval, how many items differ, how many are
        within the pair's combined numeric ``noise_floor`` (NaN when a run did not measure one).
    ``runs`` (model)
        the run folder, backend, model hash, dtype, the run's numeric ``noise_floor`` (largest
        change of one score when only the batch changes; None when not measured) and how many
        prompts were compared and left out.
    """
    rng = np.random.default_rng([seed, 25])
    pairs = list(combinations(runs, 2))
    tables: dict[str, list[pd.DataFrame]] = {}
    pair_summaries = []
    floors = {}
    for a, b in pairs:
        labels = (a.label, b.label)
        floor = floors[labels] = combined_noise_floor(a, b)
        scores = paired_scores(a, b)
        culture = scores.loc[scores["proxy_kind"] == CULTURE]
        items = differences_by(
            culture, ["item_id"], labels, n_bootstrap, rng, min_difference, floor
        )
        tables.setdefault("item_differences", []).append(items)
        tables.setdefault("proxy_differences", []).append(
            differences_by(
                scores,
                ["item_id", "axis", "proxy"],
                labels,
                n_bootstrap,
                rng,
                min_difference,
                floor,
            )
        )
        interaction = interaction_table(scores, labels)
        tables.setdefault("interaction", []).append(interaction)
        pair_summaries.append(_pair_summary(culture, items, interaction, labels, floor))
    means = wording_means(runs)
    out = {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}
    out["pairs"] = pd.DataFrame(
        [{k: v for k, v in p.items() if k != "overall"} for p in pair_summaries]
    )
    out["pair_reversals"] = _mark_noise(pair_reversals(runs, means), floors)
    out["ranking"] = _ranked_items(
        ranking_table(runs), out["pair_reversals"], out["item_differences"]
    )
    out.update(_alignment_tables(runs, n_permutations, seed, n_bootstrap, rng))
    out["runs"] = _runs_table(runs, shared)
    summary = _summary(runs, shared, out, pair_summaries, min_difference, differing)
    return Comparison(list(runs), out, summary)


def _mark_noise(
    reversals: pd.DataFrame, floors: dict[tuple[str, str], float | None]
) -> pd.DataFrame:
    """``within_noise`` and ``noise_floor`` per item and pair of models."""
    if reversals.empty:
        return reversals.assign(
            noise_floor=pd.Series(dtype=float), within_noise=pd.Series(dtype=bool)
        )
    floor = [
        floors.get((a, b)) for a, b in zip(reversals["model_a"], reversals["model_b"], strict=True)
    ]
    reversals["noise_floor"] = pd.Series(floor, index=reversals.index, dtype=float)
    reversals["within_noise"] = reversals["noise_floor"].notna() & (
        reversals["difference"].abs() <= reversals["noise_floor"]
    )
    return reversals


def _ranked_items(
    ranking: pd.DataFrame, reversals: pd.DataFrame, differences: pd.DataFrame
) -> pd.DataFrame:
    """``within_noise``: every pair of models on the item is within numeric noise; ``claimed``:
    some pair differs on the item beyond that noise and significantly after Benjamini-Hochberg.

    Only claimed items enter the summary's W and reversal probability: where no difference
    between the models is claimed, an order of the models ranks noise (rounding, or wordings that
    move both models alike), and a W beside "no difference is claimed" would contradict it.
    """
    if ranking.empty:
        return ranking.assign(within_noise=pd.Series(dtype=bool), claimed=pd.Series(dtype=bool))
    noise = reversals.groupby("item_id")["within_noise"].all()
    ranking["within_noise"] = ranking["item_id"].map(noise).fillna(False).astype(bool)
    claimed = differences.groupby("item_id")["significant"].any()
    ranking["claimed"] = ranking["item_id"].map(claimed).fillna(False).astype(bool)
    return ranking


def _pair_summary(
    culture: pd.DataFrame,
    items: pd.DataFrame,
    interaction: pd.DataFrame,
    labels: tuple[str, str],
    floor: float | None,
) -> dict[str, Any]:
    groups = [
        group.groupby("wording", sort=True)["difference"].mean().to_numpy()
        for _, group in culture.groupby("item_id", sort=True)
    ]
    estimate = float(np.mean([group.mean() for group in groups])) if groups else np.nan
    low, high = mean_of_means_interval(groups)
    n_items = len(items)
    return {
        "model_a": labels[0],
        "model_b": labels[1],
        "mean_difference": estimate,
        "low": low,
        "high": high,
        "p": mean_of_means_test(groups),
        "min_wordings": int(items["n_wordings"].min()) if n_items else 0,
        "n_items": n_items,
        "n_items_different": int(items["significant"].sum()) if n_items else 0,
        "noise_floor": np.nan if floor is None else floor,
        "n_items_within_noise": int(items["within_noise"].sum()) if n_items else 0,
        "mean_within_noise": floor is not None and abs(estimate) <= floor,
        "n_items_b_higher": int((items["significant"] & (items["difference"] > 0)).sum())
        if n_items
        else 0,
        "n_items_interaction": int((interaction["p_interaction_bh"] < ALPHA).sum())
        if not interaction.empty
        else 0,
        "overall": overall_tests(culture),
    }


def _alignment_tables(
    runs: Sequence[ComparedRun],
    n_permutations: int,
    seed: int,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    summary, per_wording = per_model_alignment(runs, n_permutations, seed)
    if per_wording.empty:
        return {}
    by_item, by_country = [], []
    for a, b in combinations([run.label for run in runs], 2):
        item, country = closeness_differences(per_wording, (a, b), n_bootstrap, rng)
        by_item.append(item)
        by_country.append(country)
    return {
        "alignment": summary,
        "alignment_by_item": pd.concat(by_item, ignore_index=True),
        "alignment_by_country": pd.concat(by_country, ignore_index=True),
    }


def _runs_table(runs: Sequence[ComparedRun], shared: SharedPrompts) -> pd.DataFrame:
    rows = []
    for run in runs:
        backend = run.manifest.get("backend") or {}
        rows.append(
            {
                "model": run.label,
                "path": str(run.path),
                "backend": str(backend.get("backend", "")),
                "model_name": str(backend.get("model", "")),
                "model_hash": str(backend.get("model_hash", ""))[:16],
                "dtype": str(backend.get("dtype", "")),
                "run_key": str(run.manifest.get("run_key", "")),
                "noise_floor": run_noise_floor(run),
                "n_compared": len(run.tidy),
                "n_left_out": shared.left_out.get(str(run.path), 0),
            }
        )
    return pd.DataFrame(rows)


def _summary(
    runs: Sequence[ComparedRun],
    shared: SharedPrompts,
    tables: dict[str, pd.DataFrame],
    pairs: list[dict[str, Any]],
    min_difference: float,
    differing: tuple[str, list[str]] | None = None,
) -> dict[str, Any]:
    ranking = tables["ranking"]
    claimed = ranking.loc[ranking["claimed"]] if len(ranking) else ranking
    summary: dict[str, Any] = {
        "models": [run.label for run in runs],
        "runs": [str(run.path) for run in runs],
        "n_prompts": len(shared.prompt_ids),
        "min_difference": min_difference,
        "n_left_out": shared.n_left_out,
        "left_out": shared.left_out,
        "pairs": pairs,
        "mean_kendall_w": _mean(claimed, "kendall_w"),
        "mean_reversal_probability": _mean(claimed, "reversal_probability"),
        "n_ranking_items_within_noise": int(ranking["within_noise"].sum()) if len(ranking) else 0,
        "n_ranking_items_claimed": len(claimed),
        "differing_factor": None if differing is None else differing[0],
        "levels": {}
        if differing is None
        else {run.label: level for run, level in zip(runs, differing[1], strict=True)},
    }
    claims = compare_claims(summary, tables)
    summary["claims"] = [claim.to_json() for claim in claims]
    summary["headline"] = [claim.sentence for claim in claims]
    return summary


def _mean(frame: pd.DataFrame, column: str) -> float:
    if frame.empty or column not in frame.columns:
        return float("nan")
    return float(frame[column].mean())
