"""Information decomposition of the answer distribution (docs/statistics.md#information).

H(A) = I(A;C) + I(A;P|C) + I(A;O|C,P) + H(A|C,P,O) with uniform design weights within an item x
axis: culture, wording, option order and what is left (the model's own uncertainty and seed noise).
Each information term is reported with the mean and p-value of a permutation null that respects the
design: proxy labels permuted within each wording x order block, wording labels within each proxy x
order block, and the seed-level responses across orders within each proxy x wording cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from culture_probe.analysis._cells import entropy_bits
from culture_probe.analysis._design import UNIT_COLUMNS

GATHER_ELEMENTS = 8_000_000  # permuted values held at once
# Each permutation of a null re-pools every distribution it shuffles. At a million responses the
# seed-level order null alone would move 10^10 values for 999 permutations, so a null moves at most
# this many values across a shape group; the permutations actually used are reported per term.
NULL_VALUE_BUDGET = 400_000_000
MIN_PERMUTATIONS = 19


def information_table(
    rows: pd.DataFrame, probs: np.ndarray, n_permutations: int, seed: int
) -> pd.DataFrame:
    """One row per item x axis (culture proxies) with the information split and JS ratio.

    Columns: ``entropy`` H(A); ``info_culture`` I(A;C), ``info_wording`` I(A;P|C), ``info_order``
    I(A;O|C,P), each with ``_null`` (mean under permutation), ``_excess`` (observed - null mean;
    plug-in mutual information is biased upwards, Miller 1955), ``_p`` ((1 + #null >= observed) /
    (1 + B)) and ``_permutations`` (B: ``n_permutations``, fewer for very large designs, see
    :data:`NULL_VALUE_BUDGET`; the order null needs several seeds per order); ``noise``
    H(A|C,P,O); ``culture_info_share`` I(A;C)/H(A); ``js_between_proxies``,
    ``js_between_wordings`` and ``js_ratio``, mean Jensen-Shannon distances (base 2) between proxies
    under one wording and between wordings for one proxy, and their ratio. All in bits. Items
    whose design is incomplete are left out.
    """
    answered = ~np.isnan(probs).any(axis=1)
    frames = [
        _group_table(units, cube, n_permutations, seed)
        for units, cube in _dense_cubes(rows.loc[answered], probs[answered])
    ]
    if not frames:
        return pd.DataFrame(columns=[*UNIT_COLUMNS, "entropy", "info_culture"])
    return pd.concat(frames, ignore_index=True).sort_values(list(UNIT_COLUMNS), ignore_index=True)


def _dense_cubes(rows: pd.DataFrame, probs: np.ndarray) -> list[tuple[pd.DataFrame, np.ndarray]]:
    """Complete units as arrays of shape (G, C, P, O, S, K), grouped by shape."""
    frame = rows.loc[:, [*UNIT_COLUMNS, "proxy", "wording", "order", "seed"]].reset_index(drop=True)
    frame["position"] = np.arange(len(frame))
    frame["unit"] = frame.groupby(list(UNIT_COLUMNS), sort=True, observed=True).ngroup()
    for column in ("proxy", "wording", "order"):
        code = frame.groupby(["unit", column], sort=True, observed=True).ngroup()
        frame[f"{column}_code"] = code - code.groupby(frame["unit"]).transform("min")
    frame = frame.sort_values(["unit", "proxy_code", "wording_code", "order_code", "seed"])
    frame["seed_code"] = frame.groupby(
        ["unit", "proxy_code", "wording_code", "order_code"]
    ).cumcount()
    codes = ["proxy_code", "wording_code", "order_code", "seed_code"]
    shapes = frame.groupby("unit")[codes].max() + 1
    shapes["rows"] = frame.groupby("unit").size()
    complete = shapes.loc[shapes["rows"] == shapes[codes].prod(axis=1)]
    out = []
    for shape, members in complete.groupby(codes, sort=True):
        chosen = frame.loc[frame["unit"].isin(members.index)].sort_values(["unit", *codes])
        dims = (-1, *(int(s) for s in shape), probs.shape[1])
        cube = probs[chosen["position"].to_numpy()].astype(np.float32).reshape(dims)
        units = chosen.groupby("unit", sort=True)[list(UNIT_COLUMNS)].first().reset_index(drop=True)
        out.append((units, cube))
    return out


def _group_table(
    units: pd.DataFrame, cube: np.ndarray, n_permutations: int, seed: int
) -> pd.DataFrame:
    cells = cube.mean(axis=4)  # (G, C, P, O, K): pooled over seeds
    by_wording = cells.mean(axis=3)  # (G, C, P, K)
    by_proxy = by_wording.mean(axis=2)  # (G, C, K)
    entropy = entropy_bits(by_proxy.mean(axis=1))
    h_proxy = entropy_bits(by_proxy).mean(axis=1)
    h_wording = entropy_bits(by_wording).mean(axis=(1, 2))
    h_cell = entropy_bits(cells).mean(axis=(1, 2, 3))
    table = units.copy()
    table["entropy"] = entropy
    observed = {
        "info_culture": entropy - h_proxy,
        "info_wording": h_proxy - h_wording,
        "info_order": h_wording - h_cell,
    }
    rng = np.random.default_rng([seed, 3])
    n_units = cube.shape[0]
    shuffled_values = cells[0].size  # culture and wording nulls re-pool every cell
    cell_level = _affordable(n_permutations, n_units * shuffled_values)
    seed_level = _affordable(n_permutations, n_units * cube[0].size)
    nulls = {
        "info_culture": entropy[:, None] - _culture_null(cells, cell_level, rng),
        "info_wording": h_proxy[:, None] - _wording_null(cells, cell_level, rng),
        "info_order": h_wording[:, None] - _order_null(cube, seed_level, rng),
    }
    for name, value in observed.items():
        table[name] = value
        null = nulls[name]
        table[f"{name}_null"] = null.mean(axis=1)
        table[f"{name}_excess"] = value - null.mean(axis=1)
        exceed = (null >= value[:, None] - 1e-9).sum(axis=1)
        p_value = (1 + exceed) / (1 + null.shape[1])
        undefined = np.isnan(null).all(axis=1)
        table[f"{name}_p"] = np.where(undefined, np.nan, p_value)
        table[f"{name}_permutations"] = np.where(undefined, 0, null.shape[1])
    table["noise"] = h_cell
    with np.errstate(divide="ignore", invalid="ignore"):
        table["culture_info_share"] = observed["info_culture"] / entropy
    table = pd.concat([table, _js_ratio(by_wording)], axis=1)
    return table


def _affordable(n_permutations: int, values_per_permutation: int) -> int:
    affordable = NULL_VALUE_BUDGET // max(1, values_per_permutation)
    return int(min(n_permutations, max(MIN_PERMUTATIONS, affordable)))


def _permuted_block_means(
    blocks: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """Entropy-ready means after shuffling labels within blocks.

    Args:
        blocks: shape (G, M, L, J, K): for each of M outer groups, L blocks whose J labelled
            distributions are exchangeable under the null.
        n_permutations: permutations B.
        rng: random generator.

    Returns:
        Mean over the L blocks of the permuted distributions, shape (G, B, M, J, K).
    """
    n_units, n_outer, n_blocks, n_labels, n_values = blocks.shape
    flat = blocks.reshape(n_units, n_outer * n_blocks * n_labels, n_values)
    offsets = (np.arange(n_outer * n_blocks) * n_labels).reshape(n_outer, n_blocks, 1)
    out = np.empty((n_units, n_permutations, n_outer, n_labels, n_values), dtype=np.float32)
    per_permutation = n_outer * n_blocks * n_labels * n_values
    step = max(1, GATHER_ELEMENTS // max(1, per_permutation))
    base = np.broadcast_to(np.arange(n_labels, dtype=np.int32), (n_outer, n_blocks, n_labels))
    for unit in range(n_units):
        for start in range(0, n_permutations, step):
            count = min(step, n_permutations - start)
            order = rng.permuted(np.broadcast_to(base, (count, *base.shape)), axis=-1)
            gathered = flat[unit][order + offsets]  # (count, M, L, J, K)
            out[unit, start : start + count] = gathered.mean(axis=2)
    return out


def _culture_null(cells: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Mean over proxies of H(pooled proxy distribution), proxies shuffled within (p, o)."""
    g, c, p, o, k = cells.shape
    blocks = cells.transpose(0, 2, 3, 1, 4).reshape(g, 1, p * o, c, k)
    permuted = _permuted_block_means(blocks, n_permutations, rng)[:, :, 0]
    return np.asarray(entropy_bits(permuted).mean(axis=-1))


def _wording_null(cells: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Mean over proxy x wording of H(pooled cell), wordings shuffled within (c, o)."""
    blocks = cells.transpose(0, 1, 3, 2, 4)  # (G, C, O, P, K)
    permuted = _permuted_block_means(blocks, n_permutations, rng)  # (G, B, C, P, K)
    return np.asarray(entropy_bits(permuted).mean(axis=(-2, -1)))


def _order_null(cube: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Mean over cells of H(order cell), seed-level responses shuffled across orders in (c, p).

    Needs more than one response per order cell; otherwise the null is undefined (NaN).
    """
    g, c, p, o, s, k = cube.shape
    if s < 2 or o < 2:
        return np.full((g, n_permutations), np.nan)
    pool = cube.reshape(g, c * p, 1, o * s, k)
    means = np.empty((g, n_permutations, c * p, o), dtype=np.float32)
    for unit in range(g):
        shuffled = _shuffle_pool(pool[unit : unit + 1], n_permutations, rng)  # (1, B, CP, OS, K)
        grouped = shuffled.reshape(1, n_permutations, c * p, o, s, k).mean(axis=4)
        means[unit] = entropy_bits(grouped)[0]
    return np.asarray(means.mean(axis=(-2, -1)))


def _shuffle_pool(pool: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    _, n_cells, _, n_pool, _ = pool.shape
    base = np.broadcast_to(np.arange(n_pool, dtype=np.int32), (n_permutations, n_cells, n_pool))
    order = rng.permuted(base, axis=-1) + (np.arange(n_cells) * n_pool)[:, None]
    flat = pool[0].reshape(n_cells * n_pool, -1)
    return np.asarray(flat[order][None])


def _js_ratio(by_wording: np.ndarray) -> pd.DataFrame:
    """Mean JS distance between proxies (same wording) over that between wordings (same proxy)."""
    between_proxies = _mean_pairwise_js(by_wording.transpose(0, 2, 1, 3))  # (G, P)
    between_wordings = _mean_pairwise_js(by_wording)  # (G, C)
    proxies, wordings = between_proxies.mean(axis=1), between_wordings.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = proxies / wordings
    return pd.DataFrame(
        {"js_between_proxies": proxies, "js_between_wordings": wordings, "js_ratio": ratio}
    )


def _mean_pairwise_js(distributions: np.ndarray) -> np.ndarray:
    """Mean over pairs j < j' of JSdist(d[..., j, :], d[..., j', :]), base 2; shape (G, M)."""
    g, m, j, _ = distributions.shape
    left, right = np.triu_indices(j, k=1)
    out = np.empty((g, m))
    if len(left) == 0:  # one proxy or one wording: no pairs to compare
        return np.full((g, m), np.nan)
    for unit in range(g):
        a, b = distributions[unit][:, left], distributions[unit][:, right]
        out[unit] = js_distance(a, b).mean(axis=-1)
    return out


def js_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance in bits along the last axis (Lin 1991; in [0, 1])."""
    mixture = (p + q) / 2
    divergence = entropy_bits(mixture) - (entropy_bits(p) + entropy_bits(q)) / 2
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0)))
