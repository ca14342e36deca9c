"""Human reference distributions beside a study: read and checked when the study is loaded.

A study's ``reference:`` file (CSV or parquet) holds one row per item, proxy and option::

    item_id,proxy,option,share
    family_importance,JP,0,0.62
    family_importance,JP,Rather important,0.30
    family_importance,JP,2,0.06
    family_importance,JP,3,0.02

``option`` is the option's canonical index (0 = the first option the items file lists) or its text
as the items file writes it; ``share`` is the share of people who gave that answer, from 0 to 1, and
the shares of one item and proxy sum to 1. Every row is checked when the study is loaded (``plan``
already reads it), and an error names the file, the line (CSV; the header is line 1) or row
(parquet), the column and what was expected. The reference is not part of the run's identity: a
corrected file is read again by the next ``run`` or ``score`` of the same run folder without
scoring anything again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from culture_probe.bounds import MAX_DATA_FILE_BYTES, PROBABILITY, read_input_file
from culture_probe.errors import InputError, expected_one_of
from culture_probe.identifiers import comparison_key

if TYPE_CHECKING:
    import pandas as pd

    from culture_probe.study._model import ProbeItem

REFERENCE_TOLERANCE = 1e-3  # shares of a stored reference sum to 1 up to rounding


def read_reference(path: str | Path, items: Sequence[ProbeItem] | None = None) -> pd.DataFrame:
    """Read human reference distributions (parquet or CSV) in the tidy format of ``columns.py``.

    Args:
        path: the reference file.
        items: the study's items; with them, item ids are checked and options given as text
            become their canonical index. Without them, ``option`` must be an index.

    Returns:
        Columns ``item_id, proxy, option, share`` with ``option`` the canonical option index.

    Raises:
        InputError: naming the file, line or row, and column of the first bad cell.
    """
    import pandas as pd

    from culture_probe.columns import REFERENCE_COLUMNS

    path = Path(path)
    frame = _read_frame(path)
    for column in REFERENCE_COLUMNS:
        if column not in frame.columns:
            raise InputError(
                f"missing column; has: {', '.join(map(str, frame.columns))}",
                path=path,
                key=column,
                hint=expected_one_of(column, map(str, frame.columns)),
            )
    cells = _Cells(path, frame)
    by_id = {item.id: item for item in items} if items is not None else None
    rows = [cells.row(index, by_id) for index in range(len(frame))]
    table = pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS)).astype(
        {"item_id": str, "proxy": str, "option": "int64", "share": "float64"}
    )
    _check_totals(cells, table)
    return table


def _read_frame(path: Path) -> pd.DataFrame:
    import io

    import pandas as pd

    data = read_input_file(path, MAX_DATA_FILE_BYTES, "a reference table")
    try:
        if path.suffix.lower() == ".csv":
            # every cell as text: an option may be an index or a text, and the lines stay exact
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        return pd.read_parquet(io.BytesIO(data))
    except Exception as error:  # pyarrow and the csv parser raise several types
        raise InputError(f"not a readable reference table ({error})", path=path) from None


class _Cells:
    """Reads one row of the reference at a time and names its place when a cell is wrong."""

    def __init__(self, path: Path, frame: pd.DataFrame) -> None:
        self.path = path
        self.frame = frame
        self.csv = path.suffix.lower() == ".csv"
        self.columns = [str(name) for name in frame.columns]

    def where(self, index: int, column: str) -> tuple[int | None, str]:
        """The line (CSV) and the key naming the column (and the row, for parquet)."""
        number = self.columns.index(column) + 1
        if self.csv:
            return index + 2, f"{column} (column {number})"
        return None, f"row {index + 1}, {column} (column {number})"

    def error(self, index: int, column: str, message: str, hint: str | None = None) -> InputError:
        line, key = self.where(index, column)
        return InputError(message, path=self.path, line=line, key=key, hint=hint)

    def row(self, index: int, items: dict[str, ProbeItem] | None) -> tuple[str, str, int, float]:
        record = self.frame.iloc[index]
        item_id, proxy = str(record["item_id"]).strip(), str(record["proxy"]).strip()
        item = self._item(index, item_id, items)
        option = self._option(index, record["option"], item)
        return item_id, proxy, option, self._share(index, record["share"])

    def _item(self, index: int, item_id: str, items: dict[str, ProbeItem] | None) -> Any:
        if items is None:
            return None
        if item_id not in items:
            raise InputError(
                f"item '{item_id}' is not in the study",
                path=self.path,
                line=self.where(index, "item_id")[0],
                key=self.where(index, "item_id")[1],
                hint=expected_one_of(item_id, items),
            )
        return items[item_id]

    def _option(self, index: int, value: Any, item: ProbeItem | None) -> int:
        text = str(value).strip()
        if _is_whole_number(value):
            position = int(float(text))
            if position < 0 or (item is not None and position >= len(item.options)):
                raise self.error(
                    index, "option", f"option index {position} is out of range{_range_of(item)}"
                )
            return position
        if item is None:
            raise self.error(index, "option", f"expected an option index, got {text!r}")
        keys = [comparison_key(option) for option in item.options]
        if comparison_key(text) in keys:
            return keys.index(comparison_key(text))
        raise self.error(
            index,
            "option",
            f"{text!r} is neither an option index (0 to {len(item.options) - 1}) nor an option "
            f"of item '{item.id}'",
            hint=expected_one_of(text, item.options),
        )

    def _share(self, index: int, value: Any) -> float:
        try:
            share = float(value)
        except (TypeError, ValueError):
            raise self.error(
                index, "share", f"expected a share from 0 to 1, got {value!r}"
            ) from None
        if not PROBABILITY.contains(share):
            raise self.error(index, "share", f"a share must be from 0 to 1, got {value!r}")
        return share


def _range_of(item: ProbeItem | None) -> str:
    if item is None:
        return ""
    count = len(item.options)
    return f": item '{item.id}' has {count} options, 0 to {count - 1}"


def _is_whole_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    text = str(value).strip()
    return text.lstrip("+-").isdigit()


def _check_totals(cells: _Cells, table: pd.DataFrame) -> None:
    """The shares of each item and proxy sum to 1; the error points at the group's first row."""
    totals = table.groupby(["item_id", "proxy"], sort=False)["share"].sum()
    off = totals[(totals - 1).abs() > REFERENCE_TOLERANCE]
    if len(off):
        (item_id, proxy), total = next(iter(off.items()))
        first = int(((table["item_id"] == item_id) & (table["proxy"] == proxy)).to_numpy().argmax())
        raise cells.error(
            first,
            "share",
            f"the shares of item '{item_id}', proxy '{proxy}' sum to {total:.4f}, not 1 "
            f"(tolerance {REFERENCE_TOLERANCE})",
        )
