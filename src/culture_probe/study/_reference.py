"""Human reference distributions beside a study: read and checked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from culture_probe.errors import InputError, expected_one_of

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_TOLERANCE = 1e-3  # shares of a stored reference sum to 1 up to rounding


def read_reference(path: str | Path) -> pd.DataFrame:
    """Read human reference distributions (parquet or CSV) in the tidy format of ``columns.py``.

    Columns ``item_id, proxy, option, share``: ``option`` is the canonical option index and the
    shares of one (item_id, proxy) sum to 1 (checked to within :data:`REFERENCE_TOLERANCE`).
    """
    import pandas as pd

    from culture_probe.columns import REFERENCE_COLUMNS

    path = Path(path)
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as error:  # pyarrow and the csv parser raise several types
        raise InputError(f"not a readable reference table ({error})", path=path) from error
    for column in REFERENCE_COLUMNS:
        if column not in frame.columns:
            raise InputError(
                f"missing column; has: {', '.join(map(str, frame.columns))}",
                path=path,
                key=column,
                hint=expected_one_of(column, map(str, frame.columns)),
            )
    frame = frame.loc[:, list(REFERENCE_COLUMNS)].astype(
        {"item_id": str, "proxy": str, "option": int, "share": float}
    )
    totals = frame.groupby(["item_id", "proxy"])["share"].sum()
    off = totals[(totals - 1).abs() > REFERENCE_TOLERANCE]
    if len(off):
        (item_id, proxy), total = next(iter(off.items()))
        raise InputError(
            f"the shares of item '{item_id}', proxy '{proxy}' sum to {total:.4f}, not 1 "
            f"(tolerance {REFERENCE_TOLERANCE})",
            path=path,
            key="share",
        )
    return frame
