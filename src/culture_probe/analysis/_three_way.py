"""Proxy x wording x order decomposition: how much of the answer follows the option order
(docs/statistics.md#culture-against-wording-the-variance-decomposition).

The two-factor decomposition (:mod:`culture_probe.analysis._anova`) treats the option orders of a
proxy x wording cell as replicates, so an answer that follows the position of the options lands in
its residual. Here the order is a third crossed factor and the responses within a proxy x wording
x order cell are the replicates, which puts a number on the order's share of the answer variance.
A cell's replicates are its seeds and its format variants (enumerator, separator, ...) together:
``n_cell_replicates`` counts them, ``n_seeds`` the distinct seeds among them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from culture_probe.analysis._design import UNIT_COLUMNS
from culture_probe.analysis._items import benjamini_hochberg

FACTORS = ("proxy", "wording", "order")
# Every term of the full factorial, as the factors it involves.
TERMS: dict[str, tuple[str, ...]] = {
    "proxy": ("proxy",),
    "wording": ("wording",),
    "order": ("order",),
    "proxy_wording": ("proxy", "wording"),
    "proxy_order": ("proxy", "order"),
    "wording_order": ("wording", "order"),
    "proxy_wording_order": ("proxy", "wording", "order"),
}
ORDER_TERMS = ("order", "proxy_order", "wording_order")


def three_way_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The proxy x wording x order decomposition of every item x axis with two orders or more.

    A balanced C x P x O design with n replicates per cell gives the usual sums of squares (equal to
    ``anova_lm`` on ``score ~ C(proxy) * C(wording) * C(order)``). The random-effects expected mean
    squares of the unrestricted model (Brennan 2001, "Generalizability Theory", §3.4) give the
    components: s2_CPO = (MS_CPO - MS_E) / n, s2_CO = (MS_CO - MS_CPO) / (n P), s2_PO =
    (MS_PO - MS_CPO) / (n C), s2_O = (MS_O - MS_CO - MS_PO + MS_CPO) / (n C P), and likewise for
    C, P and CP; all truncated at 0. With one replicate the three-way interaction and the
    within-cell noise are confounded: ``var_proxy_wording_order`` then holds both and ``var_seed``
    is NaN. ``var_seed`` is the within-cell variance: seed noise and format variants together.

    ``order_share`` = (s2_O + s2_CO + s2_PO) / total is the part of the answer variance that follows
    the option order; the confounded three-way term is left out of it, so seed noise is never
    counted as order. ``f_order`` = MS_O / MS_(order x cell) tests a shift by the order that holds
    over the proxy x wording cells (the randomized-block test with the cells as blocks, the
    denominator pooling CO, PO and CPO on (O - 1)(CP - 1) df).

    Args:
        rows: tidy responses of the culture proxies.

    Returns:
        One row per item x axis: ``n_orders``, ``n_cell_replicates`` (responses per proxy x
        wording x order cell), ``n_seeds`` (distinct seeds among them), ``ss_<term>`` and
        ``var_<term>`` for the terms in :data:`TERMS` and ``ss_seed``/``var_seed``,
        ``order_share``, ``f_order``, ``p_order``.
    """
    balanced = _balanced(rows)
    columns = [*UNIT_COLUMNS, "n_orders", "n_cell_replicates", "n_seeds", *_output_columns()]
    if balanced.empty:
        return pd.DataFrame(columns=columns)
    return _decompose(balanced)[columns]


def _output_columns() -> list[str]:
    names = [f"ss_{term}" for term in TERMS]
    names += ["ss_seed", *(f"var_{term}" for term in TERMS), "var_seed"]
    return [*names, "order_share", "f_order", "p_order"]


def _balanced(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of a full C x P x O crossing per unit, n replicates per cell (wordings short of a cell
    go)."""
    frame = rows.loc[rows["score"].notna(), [*UNIT_COLUMNS, *FACTORS, "seed", "score"]].copy()
    for column in (*UNIT_COLUMNS, *FACTORS):
        frame[column] = frame[column].astype(str)
    frame["unit"] = frame.groupby(list(UNIT_COLUMNS), sort=True).ngroup()
    frame = frame.sort_values(["unit", *FACTORS, "seed"], kind="stable")
    cell = ["unit", *FACTORS]
    counts = frame.groupby(cell).size().rename("count").reset_index()
    counts["proxy_order"] = counts["proxy"] + "\x1f" + counts["order"]
    needed = counts.groupby("unit")["proxy_order"].transform("nunique")
    present = counts.groupby(["unit", "wording"])["proxy_order"].transform("nunique")
    counts = counts.loc[present == needed]
    sizes = counts.groupby("unit").agg(
        n_proxies=("proxy", "nunique"),
        n_wordings=("wording", "nunique"),
        n_orders=("order", "nunique"),
        n_cells=("count", "size"),
        n_cell_replicates=("count", "min"),
    )
    full = sizes["n_cells"] == sizes["n_proxies"] * sizes["n_wordings"] * sizes["n_orders"]
    usable = full & sizes[["n_proxies", "n_wordings", "n_orders"]].ge(2).all(axis=1)
    frame = frame.merge(counts[cell], on=cell, how="inner")
    # a merge on the column, not join(on=): pandas' inner join can hand back "unit" as the index
    # too, which breaks the groupby below when some units are not usable
    frame = frame.merge(sizes.loc[usable].reset_index(), on="unit", how="inner")
    frame["replicate"] = frame.groupby(cell).cumcount()
    frame = frame.loc[frame["replicate"] < frame["n_cell_replicates"]].reset_index(drop=True)
    frame["n_seeds"] = frame.groupby("unit")["seed"].transform("nunique")
    return frame


def _decompose(frame: pd.DataFrame) -> pd.DataFrame:
    # In a balanced design each term's effect is an inclusion-exclusion of marginal means, and its
    # sum of squares is the sum of the squared effect over all rows.
    means: dict[tuple[str, ...], pd.Series] = {(): frame.groupby("unit")["score"].transform("mean")}
    for factors in TERMS.values():
        means[factors] = frame.groupby(["unit", *factors])["score"].transform("mean")
    squared = pd.DataFrame({"unit": frame["unit"]})
    for term, factors in TERMS.items():
        effect = sum(
            (-1) ** (len(factors) - len(subset)) * means[subset] for subset in _subsets(factors)
        )
        squared[f"ss_{term}"] = np.asarray(effect) ** 2
    squared["ss_seed"] = (frame["score"] - means[FACTORS]) ** 2
    units = squared.groupby("unit").sum()
    first = frame.groupby("unit").first()
    sizes = ["n_proxies", "n_wordings", "n_orders", "n_cell_replicates", "n_seeds"]
    table = first[[*UNIT_COLUMNS, *sizes]].join(units)
    return _components(table).reset_index(drop=True)


def _subsets(factors: tuple[str, ...]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = [()]
    for factor in factors:
        found += [(*subset, factor) for subset in found]
    return found


def _components(table: pd.DataFrame) -> pd.DataFrame:
    sizes = {
        "proxy": table["n_proxies"].to_numpy(dtype=np.float64),
        "wording": table["n_wordings"].to_numpy(dtype=np.float64),
        "order": table["n_orders"].to_numpy(dtype=np.float64),
    }
    n = table["n_cell_replicates"].to_numpy(dtype=np.float64)
    ms: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for term, factors in TERMS.items():
            df = np.prod([sizes[f] - 1 for f in factors], axis=0)
            ms[term] = table[f"ss_{term}"].to_numpy() / df
        df_seed = sizes["proxy"] * sizes["wording"] * sizes["order"] * (n - 1)
        ms_seed = np.where(df_seed > 0, table["ss_seed"].to_numpy() / df_seed, np.nan)
    ms_e = np.nan_to_num(ms_seed)
    variance = {"proxy_wording_order": (ms["proxy_wording_order"] - ms_e) / n}
    for term, factors in TERMS.items():
        if len(factors) == 2:
            (missing,) = set(FACTORS) - set(factors)
            variance[term] = (ms[term] - ms["proxy_wording_order"]) / (n * sizes[missing])
    for factor in FACTORS:
        pairs = [t for t, f in TERMS.items() if len(f) == 2 and factor in f]
        others = np.prod([sizes[f] for f in FACTORS if f != factor], axis=0)
        numerator = ms[factor] - ms[pairs[0]] - ms[pairs[1]] + ms["proxy_wording_order"]
        variance[factor] = numerator / (n * others)
    for term in TERMS:
        table[f"var_{term}"] = np.maximum(variance[term], 0.0)
    table["var_seed"] = ms_seed
    total = table[[f"var_{term}" for term in TERMS]].sum(axis=1) + np.nan_to_num(ms_seed)
    order_part = table[[f"var_{term}" for term in ORDER_TERMS]].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["order_share"] = np.where(total > 0, order_part / total, np.nan)
    table["f_order"], table["p_order"] = _order_test(table, sizes)
    return table


def _order_test(table: pd.DataFrame, sizes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n_cells = sizes["proxy"] * sizes["wording"]
    df_order = sizes["order"] - 1
    df_error = df_order * (n_cells - 1)
    error = sum(table[f"ss_{t}"].to_numpy() for t in ("proxy_order", "wording_order"))
    error = error + table["ss_proxy_wording_order"].to_numpy()
    ss_order = table["ss_order"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (ss_order / df_order) / (error / df_error)
    ratio = np.where((ss_order == 0) & (error == 0), np.nan, ratio)
    return ratio, stats.f.sf(ratio, df_order, df_error)


ITEM_COLUMNS = (
    "n_orders",
    "n_cell_replicates",
    "n_seeds",
    "ss_order",
    "ss_proxy_order",
    "ss_wording_order",
    "ss_proxy_wording_order",
    "ss_seed",
    "var_order",
    "var_proxy_order",
    "var_wording_order",
    "var_proxy_wording_order",
    "var_seed",
    "order_share",
    "non_order_share",
    "f_order",
    "p_order",
    "p_order_bh",
)


def order_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """The order columns of ``item_stats``: the order terms, ``order_share`` and the order test.

    ``non_order_share`` = (s2_C + s2_P + s2_CP) / total is what culture, wording and their
    interaction explain in the same three-factor decomposition, the yardstick of the
    "order-dominated" verdict; ``p_order_bh`` is ``p_order`` adjusted by Benjamini-Hochberg over
    the items.
    """
    table = three_way_table(rows)
    parts = table[["var_proxy", "var_wording", "var_proxy_wording"]].sum(axis=1)
    total = parts + table[[f"var_{t}" for t in ORDER_TERMS]].sum(axis=1)
    total = total + table["var_proxy_wording_order"] + table["var_seed"].fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["non_order_share"] = np.where(total > 0, parts / total, np.nan)
    p_values = table["p_order"].to_numpy(dtype=np.float64)
    table["p_order_bh"] = benjamini_hochberg(p_values)
    return table[[*UNIT_COLUMNS, *ITEM_COLUMNS]]
