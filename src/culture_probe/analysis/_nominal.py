"""Measures for nominal items: options with no order, so no "expected ordinal position".

For an item whose options are categories (water / tea / wine or beer / ...), the answer is its
option distribution p (K probabilities). Three measures fit that scale:

- **CATANOVA** (Light & Margolin 1971, "An analysis of variance for categorical data"): the Gini
  variation of the answers, sum_i sum_k (p_ik - mean_k)^2, split over the same factors as the
  N-way model (:func:`culture_probe.analysis._factorial.unit_terms`) by sequential (Type I) sums
  of squares. It equals the sum over options of the per-option ANOVA sums of squares of the
  option probabilities; with one-hot answers it is Light and Margolin's split of n times the Gini
  index. ``share`` = SS_t / SS_total is the factor's share of the Gini variation (descriptive).
- **Jensen-Shannon distance** (base 2, in bits; Lin 1991) between the mean distributions of two
  proxies under one wording, averaged over pairs and wordings, beside the same between two
  wordings for one proxy.
- **Modal agreement**: the share of pairs of proxies (under one wording) whose most likely answer
  is the same, and of pairs of wordings (for one proxy).

``nominal_stats`` has one row per item x axis x factor (the residual last), in the shape of
``factor_stats``, with ``measure`` saying which measure each number is on.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from culture_probe.analysis._claims import Claim, Condition, Figure, Source
from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._factorial import RESIDUAL, term_codes, unit_terms, with_design_columns
from culture_probe.analysis._information import js_distance

MEASURE = "Gini variation (CATANOVA)"
NOMINAL_COLUMNS = (
    *UNIT_COLUMNS,
    "measure",
    "factor",
    "kind",
    "columns",
    "df",
    "ss",
    "ms",
    "share",
    "gini_variation",
    "n_rows",
    "n_options",
    "js_between_proxies",
    "js_between_wordings",
    "modal_agreement_proxies",
    "modal_agreement_wordings",
)


def nominal_table(culture: pd.DataFrame, probs: np.ndarray) -> pd.DataFrame:
    """``nominal_stats`` for the nominal items of the culture rows.

    Args:
        culture: tidy culture rows (every scale; the nominal ones are used).
        probs: their probability matrix.
    """
    nominal = (culture["scale"] == "nominal").to_numpy() & np.isfinite(probs).all(axis=1)
    rows = with_design_columns(culture.loc[nominal]).reset_index(drop=True)
    answers = probs[nominal]
    tables = []
    for _, unit in rows.groupby(list(UNIT_COLUMNS), sort=True):
        index = unit.index.to_numpy()
        n_options = int(unit["n_options"].iat[0]) if "n_options" in unit else answers.shape[1]
        tables.append(_unit_table(unit.reset_index(drop=True), answers[index][:, :n_options]))
    if not tables:
        return pd.DataFrame(columns=list(NOMINAL_COLUMNS))
    return pd.concat(tables, ignore_index=True).loc[:, list(NOMINAL_COLUMNS)]


def _unit_table(rows: pd.DataFrame, answers: np.ndarray) -> pd.DataFrame:
    axis = str(rows["axis"].iat[0])
    terms = unit_terms(rows, axis)
    df, ss = catanova(answers, term_codes(rows, terms))
    total = ss.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ms = np.where(df > 0, ss / df, np.nan)
        share = ss / total if total > 0 else np.full(len(ss), np.nan)
    between_proxies, between_wordings = _js_distances(rows, answers)
    agree_proxies, agree_wordings = _modal_agreement(rows, answers)
    return pd.DataFrame(
        {
            "item_id": rows["item_id"].iat[0],
            "axis": axis,
            "measure": MEASURE,
            "factor": [*(t.name for t in terms), RESIDUAL],
            "kind": [*(t.kind for t in terms), RESIDUAL],
            "columns": [*(":".join(t.columns) for t in terms), ""],
            "df": df,
            "ss": ss,
            "ms": ms,
            "share": share,
            "gini_variation": total / len(rows),
            "n_rows": len(rows),
            "n_options": answers.shape[1],
            "js_between_proxies": between_proxies,
            "js_between_wordings": between_wordings,
            "modal_agreement_proxies": agree_proxies,
            "modal_agreement_wordings": agree_wordings,
        }
    )


def catanova(answers: np.ndarray, codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sequential degrees of freedom and sums of squares of the Gini variation, residual last.

    Each term's sum of squares is the drop in the residual sum of squares of all option columns
    together when its dummy columns join the model (Type I), which is the sum over options of the
    per-option ANOVA sums of squares (Light & Margolin 1971).

    Args:
        answers: option distributions, shape (n, K).
        codes: per term, the level code of every answer, shape (n,).

    Returns:
        ``(df, ss)``, one entry per term and the residual last.
    """
    n = len(answers)
    design = np.ones((n, 1))
    rank, rss = 1, _rss(design, answers)
    df, ss = [], []
    for code in codes:
        dummy = np.eye(int(code.max()) + 1)[code]
        design = np.hstack([design, dummy])
        new_rank = int(np.linalg.matrix_rank(design))
        new_rss = _rss(design, answers)
        df.append(new_rank - rank)
        ss.append(max(rss - new_rss, 0.0))
        rank, rss = new_rank, new_rss
    return np.array([*df, n - rank], dtype=np.float64), np.array([*ss, rss])


def _rss(design: np.ndarray, answers: np.ndarray) -> float:
    coefficients, *_ = np.linalg.lstsq(design, answers, rcond=None)
    return float(((answers - design @ coefficients) ** 2).sum())


def _cell_means(rows: pd.DataFrame, answers: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """Mean distribution per proxy x wording, shape (proxies, wordings, K); NaN where absent."""
    proxies = sorted(rows["proxy"].astype(str).unique())
    wordings = sorted(rows["wording"].astype(str).unique())
    means = (
        pd.DataFrame(answers)
        .groupby([rows["proxy"].astype(str).to_numpy(), rows["wording"].astype(str).to_numpy()])
        .mean()
    )
    cube = np.full((len(proxies), len(wordings), answers.shape[1]), np.nan)
    for (proxy, wording), values in means.iterrows():
        cube[proxies.index(str(proxy)), wordings.index(str(wording))] = values.to_numpy()
    return cube, proxies, wordings


def _js_distances(rows: pd.DataFrame, answers: np.ndarray) -> tuple[float, float]:
    cube, _, _ = _cell_means(rows, answers)
    return _mean_pair_value(cube, js_distance), _mean_pair_value(
        cube.transpose(1, 0, 2), js_distance
    )


def _modal_agreement(rows: pd.DataFrame, answers: np.ndarray) -> tuple[float, float]:
    cube, _, _ = _cell_means(rows, answers)

    def same(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.asarray(p.argmax(axis=-1) == q.argmax(axis=-1), dtype=np.float64)

    return _mean_pair_value(cube, same), _mean_pair_value(cube.transpose(1, 0, 2), same)


def _mean_pair_value(cube: np.ndarray, measure: object) -> float:
    """Mean over the second axis and over pairs along the first of ``measure(a, b)``."""
    values = []
    for left, right in combinations(range(cube.shape[0]), 2):
        a, b = cube[left], cube[right]
        present = ~(np.isnan(a).any(axis=-1) | np.isnan(b).any(axis=-1))
        if present.any():
            values.append(measure(a[present], b[present]))  # type: ignore[operator]
    return float(np.concatenate(values).mean()) if values else float("nan")


def nominal_claims(table: pd.DataFrame) -> list[Claim]:
    """Per axis: the leading factor of the Gini variation, and the distances and agreement."""
    claims = []
    for axis, rows in table.groupby("axis", sort=True):
        factors = rows.loc[rows["kind"] != RESIDUAL]
        if factors.empty:
            continue
        means = factors.groupby("factor", sort=False)["share"].mean().sort_values(ascending=False)
        claims.append(_leader(str(axis), rows, means))
        claims.append(_distances(str(axis), rows))
    return claims


def _where(axis: str, **equal: str) -> tuple[Condition, ...]:
    return (Condition("axis", "==", axis), *(Condition(k, "==", v) for k, v in equal.items()))


def _leader(axis: str, rows: pd.DataFrame, means: pd.Series) -> Claim:
    leader = str(means.index[0])
    n_items = rows["item_id"].nunique()
    figures = {
        "n": Figure(
            n_items,
            "count",
            Source("nominal_stats", "item_id", _where(axis, factor=RESIDUAL), "count"),
        ),
        "estimate": Figure(
            float(means.iloc[0]),
            "percent",
            Source("nominal_stats", "share", _where(axis, factor=leader), "mean"),
        ),
        "rest": Figure(
            float(rows.loc[rows["factor"] == RESIDUAL, "share"].mean()),
            "percent",
            Source("nominal_stats", "share", _where(axis, factor=RESIDUAL), "mean"),
        ),
    }
    words = {"axis": axis, "leader": leader.replace(" x ", " × ")}
    template = (
        "On the {axis} axis, {n} nominal items are measured on their option distributions "
        "(Gini variation, CATANOVA; descriptive, no test): {leader} explains the most of it, "
        "{estimate} on average"
    )
    if len(means) > 1:
        second = str(means.index[1])
        figures["second"] = Figure(
            float(means.iloc[1]),
            "percent",
            Source("nominal_stats", "share", _where(axis, factor=second), "mean"),
        )
        words["second_name"] = second.replace(" x ", " × ")
        template += ", then {second_name} {second}"
    template += "; the rest, within the modelled cells, holds {rest}."
    return Claim(
        key=f"{axis}:nominal_leading_factor",
        axis=axis,
        kind="largest",
        subject=leader,
        quantity="share of the Gini variation, sequential sums of squares",
        measure=MEASURE,
        unit="share",
        template=template,
        figures=figures,
        words=words,
    )


def _distances(axis: str, rows: pd.DataFrame) -> Claim:
    where = _where(axis, factor=RESIDUAL)
    per_item = rows.loc[rows["factor"] == RESIDUAL]
    figures = {
        name: Figure(
            float(per_item[column].mean()), style, Source("nominal_stats", column, where, "mean")
        )
        for name, column, style in (
            ("js_proxies", "js_between_proxies", "decimal"),
            ("js_wordings", "js_between_wordings", "decimal"),
            ("agree_proxies", "modal_agreement_proxies", "percent"),
            ("agree_wordings", "modal_agreement_wordings", "percent"),
        )
    }
    return Claim(
        key=f"{axis}:nominal_distances",
        axis=axis,
        kind="agreement",
        subject="answer distributions of the nominal items",
        quantity="mean Jensen-Shannon distance (bits) and modal agreement over pairs",
        measure="option distribution (Jensen-Shannon distance, modal answer)",
        unit="bits",
        template=(
            "On those nominal items, two {axis} proxies under one wording answer a mean "
            "Jensen-Shannon distance of {js_proxies} bits apart and two wordings for one proxy "
            "{js_wordings} bits; the most likely answer is the same for {agree_proxies} of "
            "proxy pairs and {agree_wordings} of wording pairs."
        ),
        figures=figures,
        words={"axis": axis},
    )
