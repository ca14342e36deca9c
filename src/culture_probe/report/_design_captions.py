"""Chart captions computed from the plan, so a caption states what the design did, never what a
design of that kind usually does."""

from __future__ import annotations

import pandas as pd

_LISTED_OPTIONS = (
    6  # beyond this many options, the caption names the first ones and counts the rest
)


def option_positions(plan: pd.DataFrame) -> pd.DataFrame:
    """How often each canonical option was shown at each displayed position, per item.

    Returns:
        One row per ``item_id, option, position`` that occurs (0-based), with its ``count``.
    """
    shown = plan[["item_id", "display_to_canonical"]].copy()
    shown["display_to_canonical"] = shown["display_to_canonical"].map(list)
    shown["position"] = shown["display_to_canonical"].map(lambda order: list(range(len(order))))
    long = shown.explode(["display_to_canonical", "position"])
    long = long.rename(columns={"display_to_canonical": "option"}).astype(
        {"option": "int64", "position": "int64"}
    )
    return (
        long.groupby(["item_id", "option", "position"], as_index=False)
        .size()
        .rename(columns={"size": "count"})
    )


def _balanced(counts: pd.DataFrame) -> bool:
    """Every option at every position, equally often (one item's counts)."""
    n_options = counts["option"].nunique()
    return bool(len(counts) == n_options * n_options and counts["count"].nunique() == 1)


def _positions_text(counts: pd.DataFrame) -> str:
    """'option 1 at positions 1 and 4; option 2 at 2 and 3; ...' (1-based, as the chart)."""
    phrases = []
    for option, rows in counts.groupby("option", sort=True):
        positions = [str(p + 1) for p in sorted(rows["position"])]
        listed = (
            ", ".join(positions[:-1]) + " and " + positions[-1]
            if len(positions) > 1
            else (positions[0])
        )
        noun = "positions" if len(positions) > 1 else "position"
        phrases.append(f"option {int(option) + 1} at {noun} {listed}")
    hidden = len(phrases) - _LISTED_OPTIONS
    text = "; ".join(phrases[:_LISTED_OPTIONS])
    return text + (f"; and {hidden} more options" if hidden > 0 else "")


def _pattern(counts: pd.DataFrame) -> list[tuple[int, int, int]]:
    """One item's (option, position, count) triples, comparable across items."""
    return sorted(counts[["option", "position", "count"]].itertuples(index=False, name=None))


def _which_items(counts: pd.DataFrame, unbalanced: list[object], first: pd.DataFrame) -> str:
    """Where the caption's example holds: every item, or the first unbalanced one and how many
    more there are."""
    n_items = counts["item_id"].nunique()
    same = all(_pattern(counts.loc[counts["item_id"] == item]) == _pattern(first)
               for item in unbalanced)  # fmt: skip
    if same and len(unbalanced) == n_items:
        return "in every item"
    if len(unbalanced) == n_items:
        return f"in {unbalanced[0]} (all {n_items} items are unbalanced, not all alike)"
    if len(unbalanced) > 1:
        return f"in {unbalanced[0]} ({len(unbalanced)} of {n_items} items are unbalanced)"
    return f"in {unbalanced[0]} (the other items are balanced)"


def option_position_caption(plan: pd.DataFrame) -> str:
    """The position chart's caption: whether the plan's option orders balance positions, and if
    not, at which positions each option was shown.

    Example:
        >>> plan = pd.DataFrame({"item_id": ["q1", "q1"],
        ...                      "display_to_canonical": [[0, 1, 2], [2, 1, 0]]})
        >>> print(option_position_caption(plan).split(". ")[0])  # doctest: +NORMALIZE_WHITESPACE
        The option orders do not balance positions: in every item, option 1 at positions 1 and 3;
        option 2 at position 2; option 3 at positions 1 and 3
    """
    counts = option_positions(plan)
    unbalanced = [item for item, rows in counts.groupby("item_id", sort=True)
                  if not _balanced(rows)]  # fmt: skip
    if not unbalanced:
        return (
            "Every option is shown at every position equally often, so a model that answers by "
            "content spreads evenly: 1/K per position. Unevenness is position or label bias."
        )
    first = counts.loc[counts["item_id"] == unbalanced[0]]
    where = _which_items(counts, unbalanced, first)
    return (
        f"The option orders do not balance positions: {where}, "
        f"{_positions_text(first)}. A model that answers by "
        "content need not spread evenly here, so unevenness mixes position bias with content."
    )
