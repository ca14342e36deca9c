"""Run the whole robustness analysis over a tidy responses table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from culture_probe.analysis._anova import (
    MAX_PARAPHRASES,
    culture_share_interval,
    cwi_interval,
    effective_degrees,
    rho2_interval,
)
from culture_probe.analysis._cells import cell_stats, wording_cells
from culture_probe.analysis._claims import Claim
from culture_probe.analysis._contrasts import baseline_contrasts
from culture_probe.analysis._controls import baseline_comparison, placebo_comparison
from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._elicitation import elicitation_summary, elicitation_table
from culture_probe.analysis._elicitation_claims import elicitation_claims
from culture_probe.analysis._factorial import factor_tables, summary_entries
from culture_probe.analysis._headline import factor_verdict, headline_claims, headline_sentences
from culture_probe.analysis._items import (
    CONFIDENCE,
    Decomposition,
    agreement_alphas,
    benjamini_hochberg,
    bias_corrected_interval,
    decompose_units,
    interval_extended,
)
from culture_probe.analysis._order import order_summary, pride_columns, reversal_table
from culture_probe.analysis._ranking import human_mean_scores, rank_agreement, rank_summary
from culture_probe.analysis._summary import (
    SIGNIFICANCE,
    clustered_mean,
    finite,
    measure_names,
    placebo_summary,
    two_stage_aggregates,
    verdict_counts,
    verdicts,
    within_cell_factors,
)
from culture_probe.analysis._three_way import order_columns
from culture_probe.analysis._tidy import TIDY_COLUMNS, probability_matrix, require_columns
from culture_probe.analysis._wording import flip_columns, wording_stats
from culture_probe.columns import in_table_order
from culture_probe.errors import InputError

INTERVAL_COLUMNS = ("cwi", "culture_share", "kendall_w", "rho2_1")
#: statistics whose interval comes from the mean squares' distributions (the culture F test, the
#: F test on the ranks for Kendall's W, or generalised pivots for CWI) instead of resampling
#: wordings; never widened beyond what their own rule says
F_INTERVALS = ("cwi", "culture_share", "kendall_w", "rho2_1")
#: the columns those intervals read
F_COLUMNS = (
    "ms_proxy",
    "ms_wording",
    "ms_interaction",
    "ms_residual",
    "ms_error",
    "df_proxy",
    "df_wording",
    "df_interaction",
    "df_residual",
    "df_error",
    "var_wording",
    "var_interaction",
    "var_residual",
)


@dataclass
class AnalysisResult:
    """What :func:`analyze` found.

    Attributes:
        tables: named tidy tables, written by the caller to ``stats/<name>.parquet``.
        summary: JSON-serialisable study-level aggregates, written to ``summary.json``.
        headline: plain-English sentences for the terminal and the report, one per claim.
        claims: the typed claims the headline is rendered from (``summary["claims"]``).
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)


def analyze(
    tidy: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    n_bootstrap: int = 1000,
    n_permutations: int = 999,
    seed: int = 0,
) -> AnalysisResult:
    """Decompose the answers of a study into culture, wording, order and noise.

    Args:
        tidy: the tidy responses table (:func:`tidy_responses`).
        reference: optional human reference distributions (``item_id, proxy, option, share``).
        n_bootstrap: bootstrap resamples for every confidence interval.
        n_permutations: permutations for every permutation test.
        seed: random seed; the same inputs and seed give the same result.

    Returns:
        The tables, the summary and the headline.

    Example:
        >>> result = analyze(tidy_responses(plan, responses), n_bootstrap=2000)  # doctest: +SKIP
        >>> result.tables["item_stats"][["item_id", "axis", "cwi", "verdict"]]  # doctest: +SKIP
    """
    _check_arguments(tidy, n_bootstrap, n_permutations)
    from culture_probe.analysis._alignment import alignment_tables
    from culture_probe.analysis._information import information_table
    from culture_probe.analysis._position import position_bias

    probs = probability_matrix(tidy)
    _require_some_answer(tidy, probs)
    items = sorted(tidy["item_id"].astype(str).unique())
    item_codes = {item: code for code, item in enumerate(items)}
    kind = tidy["proxy_kind"]
    culture = tidy.loc[kind == "culture"]
    core = decompose_units(culture, item_codes, n_bootstrap, seed)
    placebo = decompose_units(tidy.loc[kind == "placebo"], item_codes, n_bootstrap, seed)
    cells = cell_stats(tidy, probs)
    controls = placebo_comparison(core, placebo)
    tables: dict[str, pd.DataFrame] = {"cell_stats": cells, "wording_cells": wording_cells(tidy)}
    culture_probs = probs[(kind == "culture").to_numpy()]
    tables["wording_stats"] = wording_stats(culture, culture_probs)
    extra = [flip_columns(tables["wording_stats"], cells)]
    if reference is not None:
        tables.update(alignment_tables(tidy, probs, reference, n_permutations, seed))
        per_wording, per_item = rank_agreement(
            tables["wording_cells"], human_mean_scores(reference, tidy)
        )
        tables["wording_stats"] = tables["wording_stats"].merge(
            per_wording, on=[*UNIT_COLUMNS, "wording"], how="left"
        )
        extra.append(per_item)
    item_table = _item_table(core, controls, tidy, probs, tables.get("alignment_summary"), extra)
    tables["item_stats"] = item_table
    tables["information"] = information_table(culture, culture_probs, n_permutations, seed)
    tables["position_bias"] = position_bias(tidy, probs).merge(
        pride_columns(tidy, probs), on=["item_id", "position"], how="left"
    )
    tables["controls"] = controls.merge(
        baseline_comparison(cells), on=list(UNIT_COLUMNS), how="outer"
    )
    tables["contrasts"] = baseline_contrasts(tidy, item_table)
    if "language" in tidy.columns and tidy["language"].nunique() > 1:
        from culture_probe.analysis._language import language_table

        tables["language_effect"] = language_table(tidy)
    # nominal items are decomposed on their option distributions (``nominal_stats``) instead
    (
        tables["factor_stats"],
        tables["factor_verdicts"],
        tables["factor_summary"],
        tables["factor_levels"],
    ) = factor_tables(tidy.loc[tidy["scale"] != "nominal"], item_codes, n_bootstrap, seed)
    if (tidy["scale"] == "nominal").any():
        from culture_probe.analysis._nominal import nominal_table

        tables["nominal_stats"] = nominal_table(culture, culture_probs)
    elicitation = elicitation_table(tidy, probs, tables, reference, n_bootstrap, seed)
    if elicitation is not None:
        tables["elicitation_stats"] = elicitation
    summary = _summary(item_table, core, tables, tidy, seed, n_bootstrap, n_permutations)
    summary["factors"] = _json_safe(
        summary_entries(
            tables["factor_summary"], tables["factor_verdicts"], tables["factor_levels"]
        )
    )
    claims = headline_claims(summary, tables)
    if elicitation is not None:
        summary["elicitation"] = _json_safe(elicitation_summary(elicitation))
        claims += elicitation_claims(elicitation, tables["factor_summary"])
    for axis, facts in summary["factors"].items():
        facts["verdict"] = factor_verdict(claims, axis) or facts["verdict"]
    summary["claims"] = _json_safe([claim.to_json() for claim in claims])
    # a table missing from the registry fails here rather than vanishing from the report
    headline = headline_sentences(claims, summary)
    return AnalysisResult(in_table_order(tables), summary, headline, claims)


def _check_arguments(tidy: pd.DataFrame, n_bootstrap: int, n_permutations: int) -> None:
    require_columns(tidy, TIDY_COLUMNS, where="tidy responses table")
    for name, value in (("n_bootstrap", n_bootstrap), ("n_permutations", n_permutations)):
        if value < 1:
            raise InputError(f"must be at least 1, got {value}", key=name)


def _require_some_answer(tidy: pd.DataFrame, probs: np.ndarray) -> None:
    """Refuse a table where no response has probabilities (every prompt refused or invalid)."""
    # with no distribution at all the matrix has no columns, and every row would count as finite
    answered = probs.shape[1] > 0 and bool(np.isfinite(probs).all(axis=1).any())
    if len(tidy) and not answered:
        outcomes = ", ".join(f"{n} {name}" for name, n in tidy["outcome"].value_counts().items())
        raise InputError(
            f"none of the {len(tidy)} responses has option probabilities ({outcomes})",
            path="responses.parquet",
            key="outcome",
            hint="the 'generated' column shows what the model or server sent; fix the cause and "
            "score again into a new --out",
        )


def _item_table(
    core: Decomposition,
    controls: pd.DataFrame,
    tidy: pd.DataFrame,
    probs: np.ndarray,
    alignment_summary: pd.DataFrame | None,
    extra: list[pd.DataFrame],
) -> pd.DataFrame:
    table = core.table.copy()
    if table.empty:
        return table.assign(verdict=pd.Series(dtype=str))
    scales = tidy.groupby("item_id")["scale"].first()
    table.insert(2, "scale", table["item_id"].map(scales).to_numpy())
    table.insert(3, "measure", measure_names(table["scale"]))
    for name in INTERVAL_COLUMNS:
        if f"{name}_low" in table.columns:  # already computed from the cell means
            continue
        if name in F_INTERVALS:  # from the culture F test; never widened to hold the estimate
            low, high = _f_interval(table, name)
        else:
            low, high = bias_corrected_interval(core.replicates[name], table[name].to_numpy())
        table.insert(table.columns.get_loc(name) + 1, f"{name}_low", low)
        table.insert(table.columns.get_loc(name) + 2, f"{name}_high", high)
    table["intervals_extended"] = _extended_names(core, table)
    for test in ("proxy", "wording", "interaction"):
        table[f"p_{test}_bh"] = benjamini_hochberg(table[f"p_{test}"].to_numpy())
    culture_rows = tidy.loc[tidy["proxy_kind"] == "culture"]
    culture_probs = probs[(tidy["proxy_kind"] == "culture").to_numpy()]
    alphas = agreement_alphas(culture_rows, culture_probs, table)
    table = table.merge(alphas, on=list(UNIT_COLUMNS), how="left")
    table = table.merge(order_columns(culture_rows), on=list(UNIT_COLUMNS), how="left")
    reversal = reversal_table(culture_rows, culture_probs)
    for columns in (reversal, *extra):
        table = table.merge(columns, on=list(UNIT_COLUMNS), how="left")
    placebo_columns = [c for c in controls.columns if c not in (*UNIT_COLUMNS, "culture_var_proxy")]
    table = table.merge(
        controls[[*UNIT_COLUMNS, *placebo_columns]], on=list(UNIT_COLUMNS), how="left"
    )
    if alignment_summary is not None and not alignment_summary.empty:
        nsr = alignment_summary.groupby(list(UNIT_COLUMNS), observed=True)["nsr"].first()
        table = table.merge(nsr.reset_index(), on=list(UNIT_COLUMNS), how="left")
    table["verdict"] = verdicts(table)
    return table


def _f_interval(table: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The noncentral-F interval of rho2(1), of the culture share or of Kendall's W, or CWI's
    pivotal interval (docs/statistics.md)."""
    if name == "kendall_w":  # from the cell means, in item_statistics (concordance_interval)
        return table["kendall_w_low"].to_numpy(), table["kendall_w_high"].to_numpy()
    parts = {column: table[column].to_numpy(dtype=np.float64) for column in F_COLUMNS}
    wordings = table["n_wordings"].to_numpy()
    replicates = table["n_replicates"].to_numpy(dtype=np.float64)
    kurtosis = table["error_kurtosis"] if "error_kurtosis" in table else np.zeros(len(table))
    parts = effective_degrees(parts, np.asarray(kurtosis, dtype=np.float64), replicates)
    if name == "cwi":
        return cwi_interval(parts, replicates, CONFIDENCE)
    if name == "rho2_1":
        return rho2_interval(parts, wordings, CONFIDENCE)
    return culture_share_interval(parts, wordings, replicates, CONFIDENCE)


def _extended_names(core: Decomposition, table: pd.DataFrame) -> list[str]:
    """Per unit, the statistics whose interval was widened to reach its estimate (comma list); for
    the F-based intervals, which are never widened, those whose interval misses the estimate."""
    flags = {
        name: interval_extended(core.replicates[name], table[name].to_numpy())
        for name in INTERVAL_COLUMNS
        if name not in F_INTERVALS
    }
    for name in F_INTERVALS:
        estimate = table[name].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            flags[name] = (estimate < table[f"{name}_low"].to_numpy() - 1e-12) | (
                estimate > table[f"{name}_high"].to_numpy() + 1e-12
            )
    return [
        ",".join(name for name in INTERVAL_COLUMNS if bool(flags[name][row]))
        for row in range(len(table))
    ]


def _summary(
    item_table: pd.DataFrame,
    core: Decomposition,
    tables: dict[str, pd.DataFrame],
    tidy: pd.DataFrame,
    seed: int,
    n_bootstrap: int,
    n_permutations: int,
) -> dict[str, Any]:
    axes: dict[str, Any] = {}
    # the expected ordinal position means nothing for options without an order: nominal items
    # are summarised on their option distributions instead (``nominal_stats``)
    ordinal = item_table.loc[item_table["scale"] != "nominal"] if len(item_table) else item_table
    for axis, rows in ordinal.groupby("axis", sort=True):
        positions = rows.index.to_numpy()
        replicates = {name: values[positions] for name, values in core.replicates.items()}
        axes[str(axis)] = _axis_summary(rows, replicates, tables, tidy, str(axis), seed)
    counts = verdict_counts(item_table) if not item_table.empty else {}
    return {
        "n_responses": len(tidy),
        "n_items": int(tidy["item_id"].nunique()),
        "n_units": len(item_table),
        "rows_dropped_to_balance": core.rows_dropped,
        "n_bootstrap": n_bootstrap,
        "n_permutations": n_permutations,
        "seed": seed,
        "verdicts": counts,
        "has_placebo": bool((tidy["proxy_kind"] == "placebo").any()),
        "has_baseline": bool((tidy["proxy_kind"] == "baseline").any()),
        "has_reference": "alignment" in tables,
        "axes": axes,
    }


def _axis_summary(
    rows: pd.DataFrame,
    replicates: dict[str, np.ndarray],
    tables: dict[str, pd.DataFrame],
    tidy: pd.DataFrame,
    axis: str,
    seed: int,
) -> dict[str, Any]:
    cells = tables["cell_stats"]
    cells = cells.loc[(cells["axis"] == axis) & (cells["proxy_kind"] == "culture")]
    culture = tidy.loc[(tidy["axis"] == axis) & (tidy["proxy_kind"] == "culture")]
    proxy_means = {
        str(proxy): clustered_mean(
            group["score"].to_numpy(dtype=np.float64), group["item_id"].to_numpy()
        )
        for proxy, group in culture.groupby("proxy", sort=True)
    }
    out: dict[str, Any] = {
        "n_items": len(rows),
        "verdicts": verdict_counts(rows),
        "aggregates": two_stage_aggregates(rows, replicates, seed),
        "share_bh_significant_culture": float(rows["p_proxy_bh"].lt(0.05).mean()),
        **_paraphrases_needed(rows),
        "wording_spread": _clustered(cells, "wording_spread"),
        "wording_flip_rate": _clustered(cells, "wording_flip_rate"),
        "order_flip_rate": _clustered(cells, "order_flip_rate"),
        "refusal_rate": _clustered(cells, "refusal_rate"),
        "share_beating_placebo": rows["beats_placebo"].astype("float64").mean(),
        "n_culture_significant": int(rows["p_proxy_bh"].lt(SIGNIFICANCE).sum()),
        "n_wording_significant": int(rows["p_wording_bh"].lt(SIGNIFICANCE).sum()),
        "n_contrast_significant": int(rows["p_interaction_bh"].lt(SIGNIFICANCE).sum()),
        "within_cell_factors": within_cell_factors(culture),
        "placebo": placebo_summary(rows),
        "proxy_flip_rate": _clustered(rows, "proxy_flip_rate"),
        "median_cow_ratio": _median(rows["cow_ratio"]),
        "order": order_summary(rows, tables["position_bias"]),
        "significant_baseline_contrasts": _significant_contrasts(tables["contrasts"], axis),
        "human_rank_agreement": rank_summary(
            rows, tables["wording_stats"].loc[tables["wording_stats"]["axis"] == axis]
        ),
        "proxy_means": proxy_means,
    }
    safe: dict[str, Any] = _json_safe(out)
    return safe


def _paraphrases_needed(rows: pd.DataFrame) -> dict[str, Any]:
    """The median wordings needed for Erho2 >= 0.8, an unreachable item counting as infinitely
    many; None with ``..._reachable`` False and a note when the median itself is out of reach."""
    needed = rows["paraphrases_needed_for_0_8"].to_numpy(dtype=np.float64)
    known = rows["var_proxy"].notna().to_numpy()
    reachable = rows["paraphrases_reachable"].astype(bool).to_numpy()
    values = np.where(reachable, needed, np.inf)[known]
    median = float(np.median(values)) if len(values) else float("nan")
    out: dict[str, Any] = {
        "median_paraphrases_needed_for_0_8": median if np.isfinite(median) else None,
        "median_paraphrases_needed_for_0_8_reachable": bool(np.isfinite(median)),
        "share_items_reaching_0_8": float(reachable[known].mean()) if len(values) else None,
    }
    if len(values) and not np.isfinite(median):
        out["median_paraphrases_needed_for_0_8_note"] = (
            f"more than {MAX_PARAPHRASES} (unreachable) for most items"
        )
    return out


def _significant_contrasts(contrasts: pd.DataFrame, axis: str) -> dict[str, int]:
    rows = contrasts.loc[contrasts["axis"] == axis]
    return {"n_contrasts": len(rows), "n_significant": int(rows["significant"].sum())}


def _clustered(cells: pd.DataFrame, column: str) -> dict[str, float]:
    return clustered_mean(cells[column].to_numpy(dtype=np.float64), cells["item_id"].to_numpy())


def _median(values: pd.Series) -> float:
    # An infinite ratio (the wording never flips the answer) counts; only missing ones are left out.
    present = values.astype("float64").dropna()
    return float(present.median()) if len(present) else float("nan")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return finite(value)
