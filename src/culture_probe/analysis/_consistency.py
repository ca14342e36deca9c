"""Checks that a run's claims agree with its tables and with each other.

:func:`claim_problems` re-reads every number a sentence prints from the table (or ``summary.json``
entry) it names and compares the written forms, and looks for pairs of claims that contradict each
other: a "largest" factor that another claim shows larger, a "dominates" beside a larger residual,
a share written as zero beside a significant test, one quantity printed with two values, a shift
whose sign disagrees with the two means it joins, a ranking of models over items where no
difference between them is claimed, a test printed at an n where it cannot reach
p < 0.05, a factor named as varying that does not vary, more items counted as decided by a test
than it found significant. The tests run it over planted synthetic
runs and over the packaged studies (docs/statistics.md, "Claims").
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from culture_probe.analysis._claims import ZERO_WORDS, Claim, Condition, Source, write

if TYPE_CHECKING:
    from culture_probe.analysis._terminal import SummaryCell

DIGIT = re.compile(r"\d")
PRINTED_P = re.compile(r"\bp [=<] \d")
#: phrases of the method itself that hold digits and are no figure of the run
METHOD_PHRASES = ("0-1 scale", "0 = the first option", "rho2(1)", "95%", "p < 0.05")
#: how far a "largest" factor may sit below another and still be called the largest (rounding)
TOLERANCE = 1e-12


class ClaimsInconsistent(AssertionError):
    """Raised by :func:`assert_consistent` with every problem found, one per line."""


def assert_consistent(
    claims: list[Claim],
    tables: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    cells: list[SummaryCell] | None = None,
) -> None:
    """Raise :class:`ClaimsInconsistent` when :func:`claim_problems` finds any problem, or
    :func:`cell_problems` one in the terminal table's ``cells``."""
    problems = claim_problems(claims, tables, summary)
    problems += cell_problems(cells or [], claims)
    if problems:
        raise ClaimsInconsistent("\n".join(problems))


def claim_problems(
    claims: list[Claim], tables: dict[str, pd.DataFrame], summary: dict[str, Any]
) -> list[str]:
    """Every disagreement between the claims and the tables, and among the claims.

    Args:
        claims: the run's claims (:attr:`AnalysisResult.claims`).
        tables: the analysis tables by name.
        summary: the run's summary (``summary.json``).

    Returns:
        One line per problem, naming the claim; empty when all is consistent.
    """
    problems: list[str] = []
    for claim in claims:
        problems += [f"{claim.key}: {p}" for p in _own_problems(claim, tables, summary)]
    problems += _largest_problems(claims)
    problems += _zero_culture_problems(claims, tables.get("factor_summary"))
    problems += _duplicate_problems(claims)
    problems += _ranking_problems(claims)
    return problems


def cell_problems(cells: list[SummaryCell], claims: list[Claim]) -> list[str]:
    """Every terminal table cell that writes a quantity otherwise than the claim stating it.

    A cell and a claim state the same quantity when the cell's source is the source of one of
    the claim's figures (printed or :attr:`Claim.unsaid`). A printed figure's text must be the
    cell's first line and its interval the cell's second; an unsaid one (the sentence says
    :data:`ZERO_WORDS`) must be the cell's "≈0", over the upper bound where the sentence gives
    one.

    Args:
        cells: the table's cells (:func:`culture_probe.analysis.summary_cells`).
        claims: the run's claims.

    Returns:
        One line per disagreeing cell; empty when the table says what the sentences say.
    """
    problems = []
    for cell in cells:
        for claim in (c for c in claims if c.axis == cell.axis):
            expected = _expected_cell(claim, cell.source)
            if expected is not None and _cell_form(cell.text) != _cell_form(expected):
                problems.append(
                    f"{claim.key}: the terminal table's {cell.header} cell of {cell.axis} reads "
                    f"{cell.text!r}, the sentence {expected!r}: {claim.sentence!r}"
                )
    return problems


def _expected_cell(claim: Claim, source: Source) -> str | None:
    """What a table cell of ``source``'s quantity must read, by what ``claim`` says of it."""
    for name, figure in claim.figures.items():
        if figure.source == source and not name.endswith(("_low", "_high")):
            low, high = claim.figures.get(f"{name}_low"), claim.figures.get(f"{name}_high")
            if low is None or high is None or "undetermined" in (low.text(), high.text()):
                return figure.text()
            return f"{figure.text()}\n{low.text()}-{high.text()}"
    for name, figure in claim.unsaid.items():
        if figure.source == source and not name.endswith(("_low", "_high")):
            if ZERO_WORDS not in claim.sentence:
                return None
            high = claim.figures.get(f"{name}_high")
            return "≈0" + (f"\n≤{high.text()}" if high is not None else "")
    return None


def _cell_form(text: str) -> str:
    """A cell's text with what only the narrow cell drops put back: "%" and the leading 0 of
    ".91", so that "41%\n19-60" and "41%\n19%-60%" compare equal."""
    text = re.sub(r"(?<![\d])\.(?=\d)", "0.", text.replace("%", ""))
    return text.replace("undetermined", "-")


def _own_problems(
    claim: Claim, tables: dict[str, pd.DataFrame], summary: dict[str, Any]
) -> list[str]:
    problems = []
    for name, figure in claim.figures.items():
        if figure.source is None:
            continue
        value = source_value(figure.source, tables, summary)
        if write(value, figure.style) != figure.text():
            problems.append(
                f"{name} is written {figure.text()!r} but {figure.source.describe()} is "
                f"{write(value, figure.style)!r} ({value!r})"
            )
    if DIGIT.search(_without_method_phrases(re.sub(r"\{[^}]*\}", "", claim.template))):
        problems.append(f"a number in the sentence comes from no table: {claim.template!r}")
    problems += _test_problems(claim)
    problems += _direction_problems(claim)
    problems += _varying_problems(claim, tables.get("factor_stats"))
    return problems


def source_value(
    source: Source, tables: dict[str, pd.DataFrame], summary: dict[str, Any]
) -> float | None:
    """The number a :class:`Source` points at, read afresh from the tables or the summary."""
    if source.table == "summary":
        node: Any = summary
        for key in source.column.split("/"):
            node = node.get(key) if isinstance(node, dict) else None
        return _number(node)
    table = tables.get(source.table)
    if table is None:
        return None
    selected = table.loc[_mask(table, source.where)]
    if source.reduce == "count":
        return float(len(selected))
    values = pd.to_numeric(selected[source.column], errors="coerce").astype("float64")
    if source.reduce == "value":
        return _number(values.iat[0]) if len(values) == 1 else None
    reduced = getattr(values.dropna(), source.reduce)() if values.notna().any() else np.nan
    return _number(reduced)


def _mask(table: pd.DataFrame, where: tuple[Condition, ...]) -> np.ndarray:
    mask = np.ones(len(table), dtype=bool)
    for condition in where:
        column = table[condition.column]
        if condition.op == "==":
            hit = column.astype(str) == str(condition.value)
        elif condition.op == "!=":
            hit = column.astype(str) != str(condition.value)
        elif condition.op in ("<", ">"):
            numbers = pd.to_numeric(column, errors="coerce").astype("float64")
            hit = numbers < condition.value if condition.op == "<" else numbers > condition.value
        elif condition.op == "notna":
            hit = column.notna()
        elif condition.op == "true":
            hit = column.astype("boolean").fillna(False).astype(bool)
        else:
            raise ValueError(f"unknown condition {condition.op!r}")
        mask &= np.asarray(hit, dtype=bool)
    return mask


def _test_problems(claim: Claim) -> list[str]:
    problems = []
    test = claim.test
    sentence = claim.sentence
    if test is not None and not test.can_speak:
        if PRINTED_P.search(_without_method_phrases(sentence)):
            problems.append(
                f"prints a p-value from {test.name} at n = {test.n}, below the {test.min_n} "
                "it needs to reach p < 0.05"
            )
        if "min_n" not in claim.figures:
            problems.append("does not say the n its test would need")
    estimate = claim.figures.get("estimate") or claim.figures.get("share")
    if (
        test is not None
        and test.significant
        and estimate is not None
        and _written_zero(estimate.text())
    ):
        problems.append(f"writes {estimate.text()!r} beside a significant {test.name}")
    problems += _count_problems(claim)
    significant_said = "significant" in sentence and "none of" not in sentence
    if claim.kind in ("share", "largest") and significant_said and not (test and test.significant):
        problems.append("says significant without a significant test behind it")
    return problems


def _count_problems(claim: Claim) -> list[str]:
    """A count of items that a per-item test decides (``k`` items elicitation-dominated, ...)
    cannot exceed the items that test found significant."""
    test, counted = claim.test, claim.figures.get("k")
    if claim.kind != "count" or test is None or test.n_significant is None or counted is None:
        return []
    if counted.value is not None and counted.value > test.n_significant:
        return [
            f"counts {counted.text()} items decided by {test.name}, which is significant in only "
            f"{test.n_significant}"
        ]
    return []


def _direction_problems(claim: Claim) -> list[str]:
    if claim.kind != "shift":
        return []
    before, after, change = (claim.figures[k].value for k in ("before", "after", "change"))
    if before is None or after is None or change is None:
        return []
    sign = np.sign(after - before)
    written = claim.figures["change"].text()
    problems = []
    if sign != np.sign(change) or (
        (sign > 0) != written.startswith("+") and not _written_zero(written)
    ):
        problems.append(f"the change {written} has the wrong sign for {before:.2f} -> {after:.2f}")
    expected = "up" if sign > 0 else "down" if sign < 0 else "none"
    if claim.direction != expected:
        problems.append(f"direction {claim.direction!r} but the mean moves {expected}")
    return problems


def _varying_problems(claim: Claim, factors: pd.DataFrame | None) -> list[str]:
    """A factor the sentence says varies must have levels (and degrees of freedom) in the
    decomposition of the same axis."""
    named = claim.words.get("factors")
    if not named or factors is None or factors.empty:
        return []
    rows = factors.loc[(factors["axis"] == claim.axis) & (pd.to_numeric(factors["df"]) > 0)]
    present = set(rows["factor"].astype(str))
    listed = re.split(r", | and ", named)
    return [
        f"names {name!r} as varying, but it does not vary" for name in listed if name not in present
    ]


def _largest_problems(claims: list[Claim]) -> list[str]:
    problems = []
    for leader in (c for c in claims if c.kind == "largest" and c.estimate is not None):
        rivals = [
            c
            for c in claims
            if c is not leader
            and c.axis == leader.axis
            and c.quantity == leader.quantity
            and c.kind in ("share", "largest")
            and c.subject != leader.subject
            and c.estimate is not None
        ]
        for rival in rivals:
            if rival.estimate is not None and rival.estimate > leader.estimate + TOLERANCE:  # type: ignore[operator]
                problems.append(
                    f"{leader.key}: {leader.subject} is called the largest, but {rival.key} "
                    f"gives {rival.subject} {rival.figures['estimate'].text()}"
                )
        if "dominates" in leader.sentence:
            for residual in (
                c
                for c in claims
                if c.kind == "residual" and c.axis == leader.axis and c.quantity == leader.quantity
            ):
                if residual.estimate is not None and residual.estimate >= leader.estimate:  # type: ignore[operator]
                    problems.append(
                        f"{leader.key}: {leader.subject} 'dominates' beside a residual of "
                        f"{residual.figures['estimate'].text()}"
                    )
    return problems


def _zero_culture_problems(claims: list[Claim], factors: pd.DataFrame | None) -> list[str]:
    """A proxy factor written as zero beside a significant culture test of the same axis."""
    if factors is None or factors.empty:
        return []
    significant = {
        c.axis for c in claims if c.key.endswith(":culture_share") and c.test and c.test.significant
    }
    kinds = {(str(r.axis), str(r.factor)): str(r.kind) for r in factors.itertuples()}
    problems = []
    for claim in (c for c in claims if c.axis in significant):
        for figure in claim.figures.values():
            source = figure.source
            if source is None or source.table != "factor_summary" or source.column != "share":
                continue
            factor = next((c.value for c in source.where if c.column == "factor"), None)
            kind = kinds.get((claim.axis, str(factor)), "")
            if kind in ("proxy", "proxy interaction") and _written_zero(figure.text()):
                problems.append(
                    f"{claim.key}: writes {factor} as {figure.text()} beside a significant "
                    "culture F test"
                )
    return problems


def _duplicate_problems(claims: list[Claim]) -> list[str]:
    """One quantity of one subject, printed twice, must be printed with one value."""
    seen: dict[tuple[str, str, str, str], Claim] = {}
    problems = []
    for claim in claims:
        figure = claim.figures.get("estimate") or claim.figures.get("share")
        if figure is None:
            continue
        key = (claim.axis, claim.subject, claim.quantity, claim.measure)
        other = seen.setdefault(key, claim)
        other_figure = other.figures.get("estimate") or other.figures.get("share")
        if other is not claim and other_figure is not None and other_figure.text() != figure.text():
            problems.append(
                f"{claim.key} and {other.key} print {claim.subject}'s {claim.quantity} as "
                f"{figure.text()} and {other_figure.text()}"
            )
    return problems


def _ranking_problems(claims: list[Claim]) -> list[str]:
    """A ranking of models (a W printed over ``n_ranked`` items) over more items than the
    comparisons of those models call different: beside "no difference is claimed" it ranks
    noise. Each pair's ``n_different`` counts its items; their sum bounds the items where any
    pair differs."""
    differences = [c for c in claims if c.kind == "difference"]
    rankings = [
        c for c in claims if c.kind == "agreement" and {"n_ranked", "estimate"} <= set(c.figures)
    ]
    if not differences or not rankings:
        return []
    differing = sum(
        c.figures["n_different"].value or 0 for c in differences if "n_different" in c.figures
    )
    problems = []
    for ranking in rankings:
        n_ranked = ranking.figures["n_ranked"].value or 0
        if n_ranked > differing:
            problems.append(
                f"{ranking.key}: ranks the models (W {ranking.figures['estimate'].text()}) over "
                f"{n_ranked:.0f} items, but a difference between them is claimed on "
                f"{differing:.0f}" + (": no difference is claimed" if not differing else "")
            )
    return problems


def _without_method_phrases(text: str) -> str:
    for phrase in METHOD_PHRASES:
        text = text.replace(phrase, "")
    return text


def _written_zero(text: str) -> bool:
    """Whether a written number reads as exactly zero ("0%", "0.00", "+0.00")."""
    digits = re.sub(r"[^0-9]", "", text)
    return bool(digits) and set(digits) == {"0"}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
