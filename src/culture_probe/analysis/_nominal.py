"""Measures for nominal items: options with no order, so no "expected ordinal position".

For an item whose options are categories (water / tea / wine or beer / ...), the answer is its
option distribution p (K probabilities). Three measures fit that scale:

- **CATANOVA** (Light & Margolin 1971, "An analysis of variance for categorical data"): the Gini
  variation of the answers, sum_i sum_k (p_ik - mean_k)^2, split over the same factors as the
  N-way model (:func:`culture_probe.analysis._factorial.unit_terms`) by sequential (Type I) sums
  of squares. It equals the sum over options of the per-option ANOVA sums of squares of the
  option probabilities; with one-hot answers it is Light and Margolin's split of n times the Gini
  index. ``share`` = SS_t / SS_total is the factor's share of the Gini variation (descriptive).
  The culture effect is tested: Light and Margolin's C = (n - 1)(K - 1) BSS / TSS for the joint
  proxy (BSS its Gini sum of squares between proxies, K the options) is chi2((I - 1)(K - 1)) under
  no effect with I proxies and one-hot answers (``p_chi2``); the answers here are distributions, so
  the p-value that claims read is a permutation test of C, proxies permuted within the cells of
  every other design factor (``p_permutation``, :func:`permutation_test`).
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
from scipy import special, stats

from culture_probe.analysis._claims import ALPHA, Claim, Condition, Figure, Source, Test
from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._factorial import (
    RESIDUAL,
    Term,
    term_codes,
    unit_terms,
    with_design_columns,
)
from culture_probe.analysis._information import js_distance
from culture_probe.analysis._items import benjamini_hochberg

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
    "c_statistic",
    "c_df",
    "p_chi2",
    "p_permutation",
    "p_permutation_bh",
)
#: permutations behind each item's ``p_permutation``
PERMUTATIONS = 999
#: distinct arrangements below which a permutation p-value cannot reach 0.05: the test is mute
MIN_ARRANGEMENTS = 20


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
    table = pd.concat(tables, ignore_index=True)
    for _, rows in table.groupby("axis", sort=True):  # BH over the axis's items, as F's is
        first = rows.drop_duplicates("item_id")
        adjusted = pd.Series(
            benjamini_hochberg(first["p_permutation"].to_numpy(dtype=np.float64)),
            index=first["item_id"].to_numpy(),
        )
        table.loc[rows.index, "p_permutation_bh"] = rows["item_id"].map(adjusted).to_numpy()
    return table.loc[:, list(NOMINAL_COLUMNS)]


def _unit_table(rows: pd.DataFrame, answers: np.ndarray) -> pd.DataFrame:
    axis = str(rows["axis"].iat[0])
    terms = unit_terms(rows, axis)
    df, ss = catanova(answers, term_codes(rows, terms))
    total = ss.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ms = np.where(df > 0, ss / df, np.nan)
        share = ss / total if total > 0 else np.full(len(ss), np.nan)
    strata = _strata(rows, terms)
    proxies = rows["proxy"].astype(str).to_numpy()
    c_value, c_df, p_chi2 = light_margolin_c(answers, proxies)
    seed = [int.from_bytes(str(rows["item_id"].iat[0]).encode()[:8].ljust(8, b"\0"), "little")]
    p_permutation = permutation_test(answers, proxies, strata, np.random.default_rng(seed))
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
            "c_statistic": c_value,
            "c_df": c_df,
            "p_chi2": p_chi2,
            "p_permutation": p_permutation,
            "p_permutation_bh": np.nan,
        }
    )


def light_margolin_c(answers: np.ndarray, groups: np.ndarray) -> tuple[float, float, float]:
    """Light and Margolin's (1971) C for the groups, its degrees of freedom and chi-square p.

    C = (n - 1)(K - 1) BSS / TSS, with TSS = sum_i sum_k (p_ik - mean_k)^2 and BSS = sum_g n_g
    sum_k (mean_gk - mean_k)^2 the Gini sums of squares of the n answers over K options and of the
    group means; C ~ chi2((I - 1)(K - 1)) with I groups when there is no group effect.

    Example:
        Two groups of one-hot answers over two options, (A, A, B) and (B, B, B): the mean is
        (1/3, 2/3), TSS = 2 (2 (2/3)^2 + 4 (1/3)^2) = 8/3, the group means (2/3, 1/3) and (0, 1)
        give BSS = 2 (3 (1/3)^2 + 3 (1/3)^2) = 4/3, and C = 5 x 1 x (1/2) = 2.5.

        >>> answers = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0, 1]], dtype=float)
        >>> c, df, _ = light_margolin_c(answers, np.array(["x", "x", "x", "y", "y", "y"]))
        >>> round(c, 12), df
        (2.5, 1.0)
    """
    n, n_options = answers.shape
    codes = np.unique(groups, return_inverse=True)[1]
    n_groups = int(codes.max()) + 1 if n else 0
    total = float(((answers - answers.mean(axis=0)) ** 2).sum())
    between = _between(answers, codes[None, :], n_groups)[0]
    df = float((n_groups - 1) * (n_options - 1))
    if total <= 0 or df <= 0:
        return float("nan"), df, float("nan")
    c_value = (n - 1) * (n_options - 1) * between / total
    return float(c_value), df, float(stats.chi2.sf(c_value, df))


def permutation_test(
    answers: np.ndarray, groups: np.ndarray, strata: np.ndarray, rng: np.random.Generator
) -> float:
    """p-value of C (:func:`light_margolin_c`) with the groups permuted within strata.

    Under no culture effect the proxies of one cell of the other design factors (a wording, an
    order, ...) are exchangeable, so their labels are shuffled within each such cell
    (:data:`PERMUTATIONS` times); TSS is the same in every permutation, so C orders them as BSS
    does. p = (1 + #{BSS* >= BSS}) / (1 + B). NaN where the cells allow fewer than
    :data:`MIN_ARRANGEMENTS` distinct arrangements: no p-value could reach 0.05.
    """
    codes = np.unique(groups, return_inverse=True)[1]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2 or _log_arrangements(codes, strata) < np.log(MIN_ARRANGEMENTS):
        return float("nan")
    order = np.argsort(strata, kind="stable")
    keys = strata[order][None, :] + rng.random((PERMUTATIONS, len(order)))
    shuffled = order[np.argsort(keys, axis=1)]  # row j of a stratum takes another row's label
    permuted = np.empty_like(shuffled)
    permuted[:, order] = codes[shuffled]
    observed = _between(answers, codes[None, :], n_groups)[0]
    drawn = _between(answers, permuted, n_groups)
    return float(
        (1 + np.sum(drawn >= observed - 1e-12 * max(observed, 1e-300))) / (1 + PERMUTATIONS)
    )


def _between(answers: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """BSS of each row of ``codes`` (shape (B, n)): sum_g n_g sum_k (mean_gk - mean_k)^2."""
    n_draws = codes.shape[0]
    cell = (np.arange(n_draws)[:, None] * n_groups + codes).ravel()  # (draw, group), flat
    size = n_draws * n_groups
    counts = np.bincount(cell, minlength=size).reshape(n_draws, n_groups).astype(np.float64)
    sums = np.stack(
        [
            np.bincount(cell, weights=np.tile(answers[:, k], n_draws), minlength=size)
            for k in range(answers.shape[1])
        ],
        axis=-1,
    ).reshape(n_draws, n_groups, -1)
    mean = answers.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts[..., None] > 0, sums / counts[..., None], mean)
    return np.asarray((counts[..., None] * (means - mean) ** 2).sum(axis=(1, 2)))


def _strata(rows: pd.DataFrame, terms: list[Term]) -> np.ndarray:
    """The cell of every row in the design factors other than the proxies (every context factor
    the model holds, from the registry), within which proxies are exchangeable."""
    columns = sorted({c for t in terms if t.kind == "context" for c in t.columns})
    if not columns:
        return np.zeros(len(rows), dtype=np.int64)
    return np.asarray(rows.groupby(columns, sort=True, observed=True).ngroup().to_numpy())


def _log_arrangements(codes: np.ndarray, strata: np.ndarray) -> float:
    """log of the distinct relabellings within strata: sum over strata of log multinomial."""
    total = 0.0
    for stratum in np.unique(strata):
        counts = np.bincount(codes[strata == stratum])
        total += float(special.gammaln(counts.sum() + 1) - special.gammaln(counts + 1).sum())
    return total


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
        claims.append(_culture_test(str(axis), rows))
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
    words = {
        "axis": axis,
        "leader": leader.replace(" x ", " × "),
        "items_are": "nominal item is" if n_items == 1 else "nominal items are",
    }
    template = (
        "On the {axis} axis, {n} {items_are} measured on their option distributions "
        "(Gini variation, CATANOVA): {leader} explains the most of it, "
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


def _culture_test(axis: str, rows: pd.DataFrame) -> Claim:
    """How many nominal items the permutation test of C finds a culture effect in, printed only
    where the test can reach p < 0.05 (enough distinct arrangements of the proxies)."""
    where = _where(axis, factor=RESIDUAL)
    per_item = rows.loc[rows["factor"] == RESIDUAL]
    tested = per_item["p_permutation"].notna()
    significant = per_item["p_permutation_bh"].lt(ALPHA)
    figures = {
        "n": Figure(
            int(tested.sum()),
            "count",
            Source(
                "nominal_stats", "item_id", (*where, Condition("p_permutation", "notna")), "count"
            ),
        ),
        "k": Figure(
            int(significant.sum()),
            "count",
            Source(
                "nominal_stats",
                "item_id",
                (*where, Condition("p_permutation_bh", "<", ALPHA)),
                "count",
            ),
        ),
    }
    test = Test(
        "Light and Margolin's C, proxies permuted within the other factors' cells, "
        "Benjamini-Hochberg adjusted",
        n=int(tested.sum()),
        n_significant=int(significant.sum()),
        min_n=None if tested.any() else 1,
    )
    method = (
        "Their culture effect is tested with Light and Margolin's C (proxies permuted within "
        "the cells of the other design factors)"
    )
    if not tested.any():
        figures["min_n"] = Figure(MIN_ARRANGEMENTS, "count")
        template = (
            method + ": no item has the {min_n} distinct arrangements of its proxies that a "
            "p-value below 0.05 needs, so none is tested."
        )
    elif significant.any():
        template = method + ": significant after Benjamini-Hochberg in {k} of {n} items."
    else:
        template = method + ": significant in none of the {n} items."
    return Claim(
        key=f"{axis}:nominal_culture_test",
        axis=axis,
        kind="count",
        subject="culture",
        quantity="items whose permutation test of C rejects no culture effect",
        measure=MEASURE,
        unit="items",
        template=template,
        figures=figures,
        words={"axis": axis},
        test=test,
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
