"""Join the plan with the responses into the tidy responses table and unpack its list columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from culture_probe.errors import InputError, did_you_mean

# The plan columns the statistics read; the others travel along untouched.
ANALYSIS_PLAN_COLUMNS = (
    "prompt_id",
    "item_id",
    "scale",
    "n_options",
    "axis",
    "proxy",
    "proxy_kind",
    "wording",
    "order",
    "display_to_canonical",
    "seed",
)
TIDY_COLUMNS = (*ANALYSIS_PLAN_COLUMNS, "probs", "option_mass", "outcome", "score")
PROBABILITY_TOLERANCE = 1e-3


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], *, where: str) -> None:
    """Raise an InputError naming the first missing column, with a "did you mean" hint."""
    for column in columns:
        if column not in frame.columns:
            raise InputError(
                f"missing column in {where}; has: {', '.join(map(str, frame.columns))}",
                path=where,
                key=column,
                hint=did_you_mean(column, map(str, frame.columns)),
            )


def list_column_matrix(values: pd.Series, *, fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Unpack a column of lists into a dense matrix padded with ``fill``, and the list lengths.

    Args:
        values: one list (or array, or None) per row.
        fill: value for the positions past the end of a shorter list.

    Returns:
        ``(matrix, lengths)`` with ``matrix.shape == (len(values), max length)``.
    """
    if len(values) == 0:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    array = pa.array(values.to_numpy(dtype=object), type=pa.list_(pa.float64()), from_pandas=True)
    lengths = array.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = array.flatten().to_numpy(zero_copy_only=False)
    width = int(lengths.max()) if len(lengths) else 0
    matrix = np.full((len(values), width), fill, dtype=np.float64)
    rows = np.repeat(np.arange(len(values)), lengths)
    starts = np.cumsum(lengths) - lengths
    positions = np.arange(len(flat)) - np.repeat(starts, lengths)
    matrix[rows, positions] = flat
    return matrix, lengths


def probability_matrix(tidy: pd.DataFrame) -> np.ndarray:
    """Option probabilities in canonical order, one row per response, zero past ``n_options``.

    Rows without a distribution (refusals and invalid answers in generate mode) are all NaN.
    """
    matrix, lengths = list_column_matrix(tidy["probs"], fill=0.0)
    matrix[lengths == 0] = np.nan
    return matrix


def tidy_responses(plan: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Join the plan with the responses on ``prompt_id`` and add the ordinal ``score``.

    ``score`` is the expected ordinal position sum_k probs[k] * k / (K - 1) in [0, 1], the
    probability-weighted analogue of the position score of Santurkar et al. (2023, OpinionQA).
    Rows keep the plan order; prompts not yet scored are left out.

    Args:
        plan: the plan table (columns in :mod:`culture_probe.columns`).
        responses: the responses table, one row per scored prompt.

    Returns:
        The tidy responses table: every plan column, the response columns and ``score``.

    Raises:
        InputError: a required column is missing, a prompt id is duplicated or unknown, or a
            probability vector has the wrong length or does not sum to 1.

    Example:
        >>> tidy = tidy_responses(plan, responses)  # doctest: +SKIP
        >>> tidy["score"].between(0, 1).all()  # doctest: +SKIP
        True
    """
    require_columns(plan, ANALYSIS_PLAN_COLUMNS, where="plan.parquet")
    require_columns(responses, ("prompt_id", "probs"), where="responses.parquet")
    _require_unique(plan, "plan.parquet")
    _require_unique(responses, "responses.parquet")
    # Index lookups on plain object arrays: isin on Arrow-backed strings is slow at 1M rows.
    plan_ids = pd.Index(plan["prompt_id"].to_numpy(dtype=object))
    unknown = plan_ids.get_indexer(responses["prompt_id"].to_numpy(dtype=object)) < 0
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        raise InputError(
            f"{int(unknown.sum())} response(s) name a prompt that is not in the plan, "
            f"first '{responses['prompt_id'].iloc[first]}' at row {first}",
            path="responses.parquet",
            line=first,
            key="prompt_id",
            hint="score the plan this run was made from",
        )
    ordered = plan.sort_values("row", kind="stable") if "row" in plan.columns else plan
    tidy = ordered.merge(_with_defaults(responses), on="prompt_id", how="inner", sort=False)
    tidy = tidy.reset_index(drop=True)
    tidy["score"] = _expected_position(tidy)
    return tidy


def _require_unique(frame: pd.DataFrame, where: str) -> None:
    duplicated = frame["prompt_id"].duplicated()
    if duplicated.any():
        first = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(
            f"prompt id '{frame['prompt_id'].iloc[first]}' appears more than once (row {first})",
            path=where,
            line=first,
            key="prompt_id",
            hint="each prompt is scored once; rebuild the table from the run directory",
        )


def _with_defaults(responses: pd.DataFrame) -> pd.DataFrame:
    """Fill the optional response columns so the statistics can rely on them."""
    filled = responses.copy()
    if "option_mass" not in filled.columns:
        filled["option_mass"] = 1.0
    if "outcome" not in filled.columns:
        filled["outcome"] = "answered"
    return filled


def _expected_position(tidy: pd.DataFrame) -> np.ndarray:
    """sum_k probs[k] * k / (K - 1), NaN where a response carries no distribution."""
    matrix, lengths = list_column_matrix(tidy["probs"], fill=0.0)
    n_options = tidy["n_options"].to_numpy(dtype=np.int64)
    wrong = (lengths > 0) & (lengths != n_options)
    totals = matrix.sum(axis=1)
    unnormalised = (lengths > 0) & (np.abs(totals - 1.0) > PROBABILITY_TOLERANCE)
    for bad, what in ((wrong, "has the wrong length"), (unnormalised, "does not sum to 1")):
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"probability vector of prompt '{tidy['prompt_id'].iloc[first]}' {what} "
                f"(length {lengths[first]}, sum {totals[first]:.4f}; expected "
                f"{n_options[first]} probabilities summing to 1)",
                path="responses.parquet",
                line=first,
                key="probs",
            )
    positions = np.arange(matrix.shape[1]) if matrix.size else np.zeros(0)
    expected = (matrix * positions).sum(axis=1) / np.maximum(n_options - 1, 1)
    return np.where(lengths > 0, expected, np.nan)
