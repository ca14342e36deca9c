"""How the answer is asked for: first-token choice, constrained choice, written and open answers
(docs/statistics.md, "Elicitation").

A study with several ``elicitation`` levels (:data:`culture_probe.columns.ELICITATION_LEVELS`) puts
every prompt cell to the model in each of them; the N-way decomposition
(:mod:`culture_probe.analysis._factorial`) fits the level as a fixed factor with its culture
interaction. ``elicitation_stats`` adds, per scope (the study, each item, each item x proxy) and
level, against the run's reference level (``first_token`` where the run has it):

- ``agreement``: the share of prompt cells (the same item, proxy, wording, order, format and
  language) whose answer at this level is the reference level's most likely option, with its
  Wilson (1927) interval over cells. For ``written`` against ``first_token`` this is the rate Wang
  et al. (2024, "My Answer is C") found below 40% on instruction-tuned models.
- ``js_shift``: the Jensen-Shannon distance (bits) between the level's pooled answer distribution
  and the reference level's, wordings weighing the same, with a percentile interval that
  resamples wordings (items, at study scope, each item giving one of its draws).
- ``refusal_rate``, ``abstention_rate``, ``invalid_rate``: outcomes, counted, never dropped.
- ``human_similarity``: with human data, the mean over proxies of AvgP (1 - JS distance to the
  people's distribution, :func:`~culture_probe.analysis._alignment.alignment_tables`) at this level,
  and ``human_similarity_change`` from the reference level.
- per item, the verdict: "elicitation-dominated" when the elicitation term is significant (F test
  of the fixed effect against its error mean square, Benjamini-Hochberg over items; on nominal
  items Light & Margolin's C test of its Gini variation) and its share of the answer variance
  (omega-squared style, ``factor_stats``; on nominal items the CATANOVA share) is larger than
  culture's (every proxy axis and axis interaction together); beside them the share of
  ``culture x elicitation``, how much the level changes the differences between cultures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis._claims import ALPHA
from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._factorial import (
    _affordable,
    _error_mean_square,
    _is_balanced,
    column_codes,
    combined_code,
    fit_balanced,
    fit_components,
    restricted_contributions,
    unit_terms,
    with_design_columns,
)
from culture_probe.analysis._information import js_distance
from culture_probe.analysis._items import CONFIDENCE, benjamini_hochberg, quiet
from culture_probe.analysis._summary import ORDINAL_MEASURE
from culture_probe.columns import CONTEXT_FACTORS, ELICITATION_LEVELS

FACTOR = "elicitation"
NOMINAL_MEASURE = "Gini variation (CATANOVA)"
DOMINATED = "elicitation-dominated"
SIGNIFICANT = "elicitation significant, culture as large"
NO_EFFECT = "no elicitation effect"
UNDETERMINED = "undetermined"
VERDICTS = (DOMINATED, SIGNIFICANT, NO_EFFECT, UNDETERMINED)
PROXY_KINDS = ("proxy", "proxy interaction")
#: outcome -> the column of its rate
OUTCOME_RATES = {
    "refused": "refusal_rate",
    "abstained": "abstention_rate",
    "invalid": "invalid_rate",
}
#: how a sentence names each level
LEVEL_NAMES = {
    "first_token": "the first-token choice",
    "constrained": "the constrained choice",
    "written": "the written answer",
    "open": "the open answer",
}
ELICITATION_COLUMNS = (
    "scope",
    *UNIT_COLUMNS,
    "proxy",
    "level",
    "reference_level",
    "n_responses",
    "n_answered",
    *OUTCOME_RATES.values(),
    "n_pairs",
    "agreement",
    "agreement_low",
    "agreement_high",
    "js_shift",
    "js_shift_low",
    "js_shift_high",
    "human_similarity",
    "human_similarity_change",
    "measure",
    "elicitation_share",
    "elicitation_share_low",
    "elicitation_share_high",
    "culture_share",
    "culture_x_elicitation_share",
    "test",
    "statistic",
    "df_effect",
    "df_error",
    "p_elicitation",
    "p_elicitation_bh",
    "verdict",
)


def levels_of(tidy: pd.DataFrame) -> list[str]:
    """The run's elicitation levels in the registry's order (others after them, sorted)."""
    if FACTOR not in tidy.columns:
        return []
    present = set(tidy[FACTOR].dropna().astype(str))
    known = [level for level in ELICITATION_LEVELS if level in present]
    return known + sorted(present - set(known))


def elicitation_table(
    tidy: pd.DataFrame,
    probs: np.ndarray,
    tables: dict[str, pd.DataFrame],
    reference: pd.DataFrame | None,
    n_bootstrap: int,
    seed: int,
) -> pd.DataFrame | None:
    """``elicitation_stats``: None for a run with fewer than two elicitation levels.

    Args:
        tidy: the tidy responses (every outcome; the culture proxies are used).
        probs: their probability matrix (NaN rows for refusals, abstentions, invalid answers).
        tables: the analysis tables so far (``factor_stats``, ``nominal_stats``).
        reference: human reference distributions, or None.
        n_bootstrap: wording resamples for the distance intervals.
        seed: random seed.
    """
    levels = levels_of(tidy)
    if len(levels) < 2:
        return None
    culture = (tidy["proxy_kind"] == "culture").to_numpy()
    rows = tidy.loc[culture].reset_index(drop=True)
    answers = probs[culture]
    rows["level_answer"] = level_answers(rows, answers)
    rows["agrees"] = agreement_flags(rows, answers, levels[0])
    rng = np.random.default_rng([seed, 31])
    frames = [
        _scope_table(rows, answers, levels, rng, n_bootstrap, scope) for scope in ("item", "proxy")
    ]
    study = _study_rows(rows, answers, levels, rng, n_bootstrap)
    table = pd.concat([study, *frames], ignore_index=True)
    if reference is not None:
        table = _with_human_similarity(table, tidy, probs, reference, levels, seed)
    table = _with_verdicts(table, rows, tables, seed)
    return table.reindex(columns=list(ELICITATION_COLUMNS))


def elicitation_summary(table: pd.DataFrame) -> dict[str, Any]:
    """The ``elicitation`` entry of ``summary.json``: the levels, and per axis the item verdicts
    and each level's study-scope agreement, distance and outcome rates."""
    study = table.loc[table["scope"] == "study"]
    out: dict[str, Any] = {"levels": list(dict.fromkeys(study["level"].astype(str)))}
    for axis, rows in table.groupby("axis", sort=True):
        items = rows.loc[(rows["scope"] == "item") & (rows["level"] == out["levels"][0])]
        out[str(axis)] = {
            "verdicts": {v: int((items["verdict"] == v).sum()) for v in VERDICTS},
            "item_verdicts": dict(zip(items["item_id"].astype(str), items["verdict"], strict=True)),
            "levels": {
                str(r["level"]): {
                    c: r[c]
                    for c in (
                        "agreement",
                        "agreement_low",
                        "agreement_high",
                        "n_pairs",
                        "js_shift",
                        "js_shift_low",
                        "js_shift_high",
                        *OUTCOME_RATES.values(),
                        "human_similarity",
                    )
                }
                for _, r in study.loc[study["axis"] == axis].iterrows()
            },
        }
    return out


# --- answers and agreement ------------------------------------------------------------------------


def level_answers(rows: pd.DataFrame, answers: np.ndarray) -> np.ndarray:
    """The option each response chose: its ``answer`` (the sampled label of a constrained
    choice, the parsed or mapped option of a written or open one) where it has one, else the
    most likely option; -1 without a distribution."""
    has_distribution = np.isfinite(answers).all(axis=1) & (answers.shape[1] > 0)
    with quiet():
        likeliest = np.where(has_distribution, np.nanargmax(np.nan_to_num(answers, nan=-1), 1), -1)
    if "answer" not in rows.columns:
        return np.asarray(likeliest)
    given = pd.to_numeric(rows["answer"], errors="coerce").fillna(-1).to_numpy(dtype=np.int64)
    return np.asarray(np.where(has_distribution & (given >= 0), given, likeliest))


def cell_columns(rows: pd.DataFrame, reference_level: str) -> list[str]:
    """The columns that make a prompt cell, every design column but the elicitation level; the
    seed only where the reference level was scored under several (a log-probability score has
    one)."""
    context = [c for c in CONTEXT_FACTORS if c in rows.columns and c != FACTOR]
    base = ["item_id", "axis", "proxy", "wording", *context]
    seeds = rows.loc[rows[FACTOR] == reference_level, "seed"].nunique() if "seed" in rows else 0
    return [c for c in dict.fromkeys(base) if c != "seed" or seeds > 1]


def agreement_flags(rows: pd.DataFrame, answers: np.ndarray, reference_level: str) -> pd.Series:
    """Per response, whether its answer is the reference level's most likely option on the same
    prompt cell (1.0 or 0.0); NaN at the reference level itself, without an answer, or where the
    cell was not put at the reference level."""
    keys = cell_columns(rows, reference_level)
    cell = pd.MultiIndex.from_frame(rows[keys].astype(str))
    at_reference = (rows[FACTOR] == reference_level).to_numpy()
    has_distribution = np.isfinite(answers).all(axis=1)
    likeliest = np.nanargmax(np.nan_to_num(answers, nan=-1), axis=1) if answers.size else []
    first = pd.Series(np.asarray(likeliest)[at_reference & has_distribution])
    first.index = cell[at_reference & has_distribution]
    first = first[~first.index.duplicated()]
    partner = first.reindex(cell).to_numpy(dtype=np.float64)
    answered = rows["level_answer"].to_numpy() >= 0
    usable = answered & np.isfinite(partner) & ~at_reference
    flags = np.where(usable, (rows["level_answer"].to_numpy() == partner).astype(float), np.nan)
    return pd.Series(flags, index=rows.index)


def wilson_interval(successes: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a proportion at 95% (Wilson 1927); NaN where n is 0."""
    z = stats.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    # at 0 or n successes the bound is exactly 0 or 1, not a rounding error away from it
    low = np.where(successes == 0, 0.0, centre - half)
    high = np.where(successes == n, 1.0, centre + half)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


# --- per scope and level ---------------------------------------------------------------------------


def _scope_table(
    rows: pd.DataFrame,
    answers: np.ndarray,
    levels: list[str],
    rng: np.random.Generator,
    n_bootstrap: int,
    scope: str,
) -> pd.DataFrame:
    keys = [*UNIT_COLUMNS, "proxy"] if scope == "proxy" else list(UNIT_COLUMNS)
    records = []
    for values, group in rows.groupby(keys, sort=True):
        names = dict(zip(keys, values, strict=True))
        shift, low, high, _ = js_shifts(
            group, answers[group.index.to_numpy()], levels, rng, n_bootstrap
        )
        for index, level in enumerate(levels):
            records.append(
                {
                    "scope": scope,
                    **names,
                    **_level_counts(group, level, levels[0]),
                    "js_shift": shift[index],
                    "js_shift_low": low[index],
                    "js_shift_high": high[index],
                }
            )
    frame = pd.DataFrame(records)
    if "proxy" not in frame.columns:
        frame["proxy"] = ""
    return frame


def _level_counts(group: pd.DataFrame, level: str, reference_level: str) -> dict[str, Any]:
    at_level = group.loc[group[FACTOR] == level]
    outcomes = at_level["outcome"].astype(str)
    n = len(at_level)
    flags = at_level["agrees"].dropna()
    agreed = float(flags.sum())
    low, high = wilson_interval(np.array([agreed]), np.array([len(flags)]))
    return {
        "level": level,
        "reference_level": reference_level,
        "n_responses": n,
        "n_answered": int((at_level["level_answer"] >= 0).sum()),
        **{
            column: float((outcomes == o).mean()) if n else np.nan
            for o, column in OUTCOME_RATES.items()
        },
        "n_pairs": len(flags),
        "agreement": agreed / len(flags) if len(flags) else np.nan,
        "agreement_low": low[0],
        "agreement_high": high[0],
    }


def js_shifts(
    group: pd.DataFrame,
    answers: np.ndarray,
    levels: list[str],
    rng: np.random.Generator,
    n_bootstrap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per level, the Jensen-Shannon distance (bits) of its pooled answer distribution from the
    reference level's (the first), wordings weighing the same; its 95% percentile interval and the
    draws, wordings resampled with replacement.

    Returns:
        ``(distance, low, high, draws)``, ``draws`` of shape (n_bootstrap, levels).
    """
    wordings = sorted(group["wording"].astype(str).unique())
    width = answers.shape[1]
    cube = np.full((len(levels), len(wordings), width), np.nan)
    answered = np.isfinite(answers).all(axis=1)
    level_of = group[FACTOR].astype(str).to_numpy()
    wording_of = group["wording"].astype(str).to_numpy()
    for li, level in enumerate(levels):
        for wi, wording in enumerate(wordings):
            chosen = answered & (level_of == level) & (wording_of == wording)
            if chosen.any():
                cube[li, wi] = answers[chosen].mean(axis=0)
    with quiet():
        pooled = np.nanmean(cube, axis=1)
        distance = js_distance(pooled, pooled[:1])
        drawn = rng.integers(0, len(wordings), size=(n_bootstrap, len(wordings)))
        resampled = np.nanmean(cube[:, drawn], axis=2)  # (levels, draws, width)
        draws = js_distance(resampled, resampled[:1]).T
        low = np.nanpercentile(draws, 100 * (1 - CONFIDENCE) / 2, axis=0)
        high = np.nanpercentile(draws, 100 * (1 + CONFIDENCE) / 2, axis=0)
    return distance, low, high, draws


def _study_rows(
    rows: pd.DataFrame,
    answers: np.ndarray,
    levels: list[str],
    rng: np.random.Generator,
    n_bootstrap: int,
) -> pd.DataFrame:
    """Per axis and level: agreement over every cell of the axis (Wilson), rates over every
    response, and the mean distance over items with a two-stage interval (:func:`_two_stage`)."""
    records = []
    for axis, group in rows.groupby("axis", sort=True):
        shifts, draws = [], []
        for _, unit in group.groupby("item_id", sort=True):
            shift, _, _, unit_draws = js_shifts(
                unit, answers[unit.index.to_numpy()], levels, rng, n_bootstrap
            )
            shifts.append(shift)
            draws.append(unit_draws)
        low, high = _two_stage(np.stack(draws), rng)
        with quiet():
            mean_shift = np.nanmean(np.stack(shifts), axis=0)
        for index, level in enumerate(levels):
            records.append(
                {
                    "scope": "study",
                    "item_id": "",
                    "axis": axis,
                    "proxy": "",
                    **_level_counts(group, level, levels[0]),
                    "js_shift": mean_shift[index],
                    "js_shift_low": low[index],
                    "js_shift_high": high[index],
                }
            )
    return pd.DataFrame(records)


def _two_stage(draws: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The 95% percentile interval of the mean over items, per level, resampling both what is
    random: each draw takes items with replacement and, for each, one of that item's own
    wording-resampled draws, so that a study of few items still carries its wordings' spread.

    Args:
        draws: shape (items, draws, levels), each item's wording-bootstrap distances.
    """
    n_items, n_draws, _ = draws.shape
    items = rng.integers(0, n_items, size=(n_draws, n_items))
    within = rng.integers(0, n_draws, size=(n_draws, n_items))
    with quiet():
        means = np.nanmean(draws[items, within], axis=1)  # (draws, levels)
        tail = 100 * (1 - CONFIDENCE) / 2
        return np.nanpercentile(means, tail, axis=0), np.nanpercentile(means, 100 - tail, axis=0)


# --- alignment with people, per level ----------------------------------------------------------


def _with_human_similarity(
    table: pd.DataFrame,
    tidy: pd.DataFrame,
    probs: np.ndarray,
    reference: pd.DataFrame,
    levels: list[str],
    seed: int,
) -> pd.DataFrame:
    """AvgP per level from the run's own alignment code, averaged over proxies (item scope) and
    over items (study scope); the change from the reference level."""
    from culture_probe.analysis._alignment import alignment_tables

    parts = []
    for level in levels:
        chosen = (tidy[FACTOR] == level).to_numpy()
        summary = alignment_tables(tidy.loc[chosen], probs[chosen], reference, 1, seed)[
            "alignment_summary"
        ]
        parts.append(summary.assign(level=level)[[*UNIT_COLUMNS, "proxy", "level", "avg_p"]])
    found = pd.concat(parts, ignore_index=True)
    if found.empty:
        return table
    by_item = found.groupby([*UNIT_COLUMNS, "level"], as_index=False)["avg_p"].mean()
    by_study = by_item.groupby(["axis", "level"], as_index=False)["avg_p"].mean()
    lookups = {
        "proxy": found.set_index([*UNIT_COLUMNS, "proxy", "level"])["avg_p"],
        "item": by_item.set_index([*UNIT_COLUMNS, "level"])["avg_p"],
        "study": by_study.set_index(["axis", "level"])["avg_p"],
    }
    keys = {"proxy": [*UNIT_COLUMNS, "proxy"], "item": list(UNIT_COLUMNS), "study": ["axis"]}
    similarity = np.full(len(table), np.nan)
    change = np.full(len(table), np.nan)
    for scope, lookup in lookups.items():
        at = (table["scope"] == scope).to_numpy()
        index = pd.MultiIndex.from_frame(table.loc[at, [*keys[scope], "level"]])
        base = pd.MultiIndex.from_frame(table.loc[at, [*keys[scope], "reference_level"]])
        own = lookup.reindex(index).to_numpy(dtype=np.float64)
        similarity[at] = own
        change[at] = own - lookup.reindex(base).to_numpy(dtype=np.float64)
    return table.assign(human_similarity=similarity, human_similarity_change=change)


# --- the verdict ----------------------------------------------------------------------------------


def _with_verdicts(
    table: pd.DataFrame, rows: pd.DataFrame, tables: dict[str, pd.DataFrame], seed: int
) -> pd.DataFrame:
    """Each item's test, shares and verdict, on every row of the item (BH over items)."""
    scored = with_design_columns(rows.loc[rows["score"].notna()])
    records = []
    for (item, axis), unit in scored.groupby(list(UNIT_COLUMNS), sort=True):
        if (unit["scale"] == "nominal").any():
            record = _nominal_test(tables.get("nominal_stats"), str(item), str(axis))
        else:
            record = _ordinal_test(unit, tables.get("factor_stats"), str(item), str(axis))
        records.append({"item_id": item, "axis": axis, **record})
    tests = pd.DataFrame(records)
    if tests.empty:
        return table
    p = tests["p_elicitation"].to_numpy(dtype=np.float64)
    adjusted = np.full(len(p), np.nan)
    known = np.isfinite(p)
    adjusted[known] = benjamini_hochberg(p[known])
    tests["p_elicitation_bh"] = adjusted
    tests["verdict"] = [_verdict(row) for row in tests.itertuples()]
    table = table.merge(tests, on=list(UNIT_COLUMNS), how="left")
    outside = table["scope"] != "item"
    table.loc[outside, [c for c in tests.columns if c not in UNIT_COLUMNS]] = np.nan
    return table


def _verdict(row: Any) -> str:
    if not np.isfinite(row.p_elicitation_bh):
        return UNDETERMINED
    if row.p_elicitation_bh >= ALPHA:
        return NO_EFFECT
    culture = row.culture_share if np.isfinite(row.culture_share) else 0.0
    return DOMINATED if row.elicitation_share > culture else SIGNIFICANT


def _ordinal_test(
    unit: pd.DataFrame, factors: pd.DataFrame | None, item: str, axis: str
) -> dict[str, Any]:
    """The F test of the elicitation term against its error mean square (what the random facets
    and their interactions with the level add, the proxies' among them, on Satterthwaite degrees
    of freedom), and the shares from ``factor_stats``. The level effects in ``factor_levels``
    take each level's own spread over wordings instead: the levels' noise differs (a sampled
    written answer against first-token probabilities), which one pooled F test cannot follow."""
    out: dict[str, Any] = {"measure": ORDINAL_MEASURE, "test": "F (fixed effect, Satterthwaite)"}
    out.update(_shares(factors, item, axis))
    terms, fit = _fit(unit, axis)
    names = [term.name for term in terms]
    if FACTOR not in names or fit.df[names.index(FACTOR)] <= 0:
        return {**out, "p_elicitation": np.nan}
    index = names.index(FACTOR)
    error, df_error = _error_mean_square(fit, index)
    statistic = fit.ms[index] / error if error > 0 else np.nan
    p = float(stats.f.sf(statistic, fit.df[index], df_error)) if np.isfinite(statistic) else np.nan
    return {
        **out,
        "statistic": statistic,
        "df_effect": fit.df[index],
        "df_error": df_error,
        "p_elicitation": p,
    }


def _fit(unit: pd.DataFrame, axis: str) -> tuple[list[Any], Any]:
    """The unit's N-way fit, as :func:`~culture_probe.analysis._factorial.unit_decomposition`
    makes it (balanced cells from marginal means, else Type I with the affordable terms)."""
    terms = unit_terms(unit, axis)
    columns = sorted({c for t in terms for c in t.columns})
    by_column = column_codes(unit, columns)
    codes = [combined_code(by_column, t.columns) for t in terms]
    scores = unit["score"].to_numpy(dtype=np.float64)
    if _is_balanced(by_column, columns):
        grid = np.column_stack([by_column[c] for c in columns])
        sets = [tuple(columns.index(c) for c in t.columns) for t in terms]
        return terms, fit_balanced(scores, grid, sets, restricted_contributions(terms))
    affordable = _affordable(terms, codes, len(unit))
    codes = [code for term, code in zip(terms, codes, strict=True) if term in affordable]
    return affordable, fit_components(scores, codes, restricted_contributions(affordable))


def _shares(factors: pd.DataFrame | None, item: str, axis: str) -> dict[str, Any]:
    if factors is None or factors.empty:
        return {"elicitation_share": np.nan, "culture_share": np.nan}
    rows = factors.loc[(factors["item_id"] == item) & (factors["axis"] == axis)]
    own = rows.loc[rows["factor"] == FACTOR]
    culture = rows.loc[rows["kind"].isin(PROXY_KINDS), "share"]
    if own.empty:
        return {"elicitation_share": np.nan, "culture_share": float(culture.sum())}
    interaction = rows.loc[rows["factor"] == f"culture x {FACTOR}", "share"]
    return {
        "elicitation_share": float(own["share"].iat[0]),
        "elicitation_share_low": float(own["share_low"].iat[0]),
        "elicitation_share_high": float(own["share_high"].iat[0]),
        "culture_share": float(culture.sum(min_count=1)),
        "culture_x_elicitation_share": float(interaction.iat[0]) if len(interaction) else np.nan,
    }


def _nominal_test(nominal: pd.DataFrame | None, item: str, axis: str) -> dict[str, Any]:
    """Light & Margolin's (1971) C = (N - 1)(K - 1) SS_elicitation / SS_total, chi-square on
    df (K - 1) under no effect, on the Gini variation split of ``nominal_stats``; the shares are
    that split's (descriptive, no interval)."""
    out: dict[str, Any] = {"measure": NOMINAL_MEASURE, "test": "C (CATANOVA, chi-square)"}
    if nominal is None or nominal.empty:
        return {**out, "p_elicitation": np.nan}
    rows = nominal.loc[(nominal["item_id"] == item) & (nominal["axis"] == axis)]
    own = rows.loc[rows["factor"] == FACTOR]
    culture = float(rows.loc[rows["kind"].isin(PROXY_KINDS), "share"].sum())
    if own.empty or not float(own["df"].iat[0]) > 0:
        return {**out, "culture_share": culture, "p_elicitation": np.nan}
    total = float(rows["ss"].sum())
    n, k = float(own["n_rows"].iat[0]), float(own["n_options"].iat[0])
    statistic = (n - 1) * (k - 1) * float(own["ss"].iat[0]) / total if total > 0 else np.nan
    df = float(own["df"].iat[0]) * (k - 1)
    return {
        **out,
        "elicitation_share": float(own["share"].iat[0]),
        "culture_share": culture,
        "statistic": statistic,
        "df_effect": df,
        "p_elicitation": float(stats.chi2.sf(statistic, df)) if np.isfinite(statistic) else np.nan,
    }
