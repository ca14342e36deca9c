"""Typed claims: every sentence the analysis prints, built from the numbers of its tables.

A :class:`Claim` says what is measured (subject, quantity, measure, unit), its estimate and
interval, its direction, the test behind it (name, statistic, p, n and the smallest n at which the
test can reach p < 0.05) and, for every number it prints, the table, row and column the number
comes from (:class:`Source`). The sentence is rendered from those numbers, so it cannot disagree
with them, and :mod:`culture_probe.analysis._consistency` re-reads each number from its table to
prove it. A test that cannot reach significance at its n is not printed: the sentence says the
smallest n instead (docs/statistics.md, "Claims").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from culture_probe.formatting import format_percent, format_ratio

#: the significance level every printed test is read at
ALPHA = 0.05
#: how a number is written, by style (see :meth:`Figure.text`)
STYLES = ("percent", "decimal", "signed", "count", "p", "difference", "fine")
#: what a sentence says of a share whose estimate would be written "0%"
ZERO_WORDS = "not distinguishable from zero"


@dataclass(frozen=True)
class Condition:
    """One filter on a table's rows: ``column op value`` (op: ==, !=, <, >, notna, true)."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Source:
    """Where a printed number comes from.

    Attributes:
        table: a stats table name (``item_stats``, ``factor_summary``, ...) or ``"summary"`` for
            ``summary.json``.
        column: the table's column; for ``"summary"`` the keys of the path, joined by "/".
        where: filters selecting the rows.
        reduce: ``"value"`` (exactly one row), ``"count"`` (rows selected), ``"mean"``,
            ``"median"``, ``"min"``, ``"max"``, ``"sum"`` of the column over the selected rows.
    """

    table: str
    column: str
    where: tuple[Condition, ...] = ()
    reduce: str = "value"

    def describe(self) -> str:
        """``table[column] where ...`` for error messages and ``summary.json``."""
        filters = " and ".join(f"{c.column} {c.op} {c.value!r}" for c in self.where)
        text = f"{self.reduce} of {self.table}[{self.column}]"
        return text + (f" where {filters}" if filters else "")


@dataclass(frozen=True)
class Figure:
    """One number a sentence prints: its value, how it is written and where it comes from.

    A figure without a source is a constant of the method (the 0.05 level, a test's minimal n).
    """

    value: float | None
    style: str
    source: Source | None = None

    def text(self) -> str:
        """The number as the sentence writes it."""
        return write(self.value, self.style)


def write(value: float | None, style: str) -> str:
    """A number in one of :data:`STYLES`; "undetermined" when missing.

    Example:
        >>> write(0.000083, "percent"), write(-0.5412, "signed"), write(3.0, "count")
        ('0.0083%', '-0.54', '3')
        >>> write(0.0312, "p"), write(0.00002, "p")
        ('= 0.03', '< 0.001')
        >>> write(-0.0042, "difference"), write(0.0123, "fine"), write(0.00031, "decimal")
        ('-0.004', '0.012', '0.00031')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undetermined"
    if style == "percent":
        return format_percent(value)
    if style == "signed":
        return f"{value:+.2f}"
    if style == "difference":  # a difference of scores, finer than "signed"
        return f"{value:+.3f}"
    if style == "fine":  # a small unsigned quantity (a margin, a noise floor)
        return f"{value:.2g}"
    if style == "count":
        return f"{value:.0f}"
    if style == "p":  # written with its relation: "p = 0.03", "p < 0.001"
        if value < 0.001:
            return "< 0.001"
        return f"= {value:.2g}" if value < 0.01 else f"= {value:.2f}"
    return format_ratio(value)  # "decimal": two decimals, significant digits below 0.01


def writes_as_zero(value: float | None) -> bool:
    """Whether a share would be written "0%": such a share is said in :data:`ZERO_WORDS`, in
    sentences and table cells alike, never as "0% [0%, 0%]".

    Example:
        >>> writes_as_zero(0.0), writes_as_zero(0.000083), writes_as_zero(None)
        (True, False, False)
    """
    return value is not None and write(value, "percent") == "0%"


@dataclass(frozen=True)
class Test:
    """The test behind a claim.

    Attributes:
        name: what was tested, and how ("Wilcoxon signed-rank over items", ...).
        n: the number the test rests on (items, wordings).
        n_unit: what ``n`` counts.
        min_n: the smallest ``n`` at which the test can reach p < :data:`ALPHA`; None when any n
            can.
        p: the p-value, where the test gives one.
        n_significant: for a test run per item, how many items reach significance.
    """

    name: str
    n: int
    n_unit: str = "items"
    min_n: int | None = None
    p: float | None = None
    n_significant: int | None = None

    @property
    def can_speak(self) -> bool:
        """Whether the test can reach significance at its n at all."""
        return self.min_n is None or self.n >= self.min_n

    @property
    def significant(self) -> bool:
        """p < 0.05, or at least one item significant for a per-item test; never when mute."""
        if not self.can_speak:
            return False
        if self.p is not None and not math.isnan(self.p):
            return self.p < ALPHA
        return bool(self.n_significant)


@dataclass(frozen=True)
class Claim:
    """One sentence and what it asserts.

    Attributes:
        key: a stable id, ``<axis>:<what>`` ("region:culture_share").
        axis: the proxy axis the claim is about ("" for the study).
        kind: "share", "largest", "residual", "shift", "position", "agreement", "rate",
            "count", "human ranking", "placebo", "nominal" or "note".
        subject: what moves the answer or is measured ("culture", "order", "region × religion").
        quantity: what the estimate is ("share of the answer variance, proxy x wording model").
        measure: the measure of the answer it is computed on ("expected ordinal position",
            "Gini variation (CATANOVA)", ...).
        unit: the estimate's unit ("share", "0-1 scale", "W", "rho", "rate", "items").
        template: the sentence, with ``{name}`` for each figure and word.
        figures: the numbers the sentence prints, by name; ``estimate``, ``low`` and ``high``
            are the estimate and its 95% interval.
        words: names the sentence prints (axes, factors, proxies), by name.
        direction: "up", "down" or "none" for a shift; None where a direction means nothing.
        test: the test behind the claim, if any.
        unsaid: figures the sentence states in words rather than digits (a share it calls
            :data:`ZERO_WORDS`), kept so that a table showing the same quantity can be checked
            against what the sentence says of it.
    """

    key: str
    axis: str
    kind: str
    subject: str
    quantity: str
    measure: str
    unit: str
    template: str
    figures: dict[str, Figure] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)
    direction: str | None = None
    test: Test | None = None
    unsaid: dict[str, Figure] = field(default_factory=dict)

    @property
    def sentence(self) -> str:
        """The sentence, rendered from the figures and words."""
        texts = {name: figure.text() for name, figure in self.figures.items()}
        return self.template.format(**texts, **self.words)

    @property
    def estimate(self) -> float | None:
        figure = self.figures.get("estimate")
        return figure.value if figure else None

    def to_json(self) -> dict[str, Any]:
        """The claim for ``summary.json``: the sentence, what it measures and where from."""
        test = self.test
        return {
            "key": self.key,
            "axis": self.axis,
            "kind": self.kind,
            "subject": self.subject,
            "quantity": self.quantity,
            "measure": self.measure,
            "unit": self.unit,
            "estimate": _json_number(self.estimate),
            "ci_low": _json_number(_value(self.figures.get("low"))),
            "ci_high": _json_number(_value(self.figures.get("high"))),
            "direction": self.direction,
            "test": None
            if test is None
            else {
                "name": test.name,
                "n": test.n,
                "n_unit": test.n_unit,
                "min_n": test.min_n,
                "p": _json_number(test.p),
                "n_significant": test.n_significant,
                "can_speak": test.can_speak,
            },
            "sources": {
                name: figure.source.describe()
                for name, figure in self.figures.items()
                if figure.source is not None
            },
            "sentence": self.sentence,
        }


def interval_template(name: str) -> str:
    """``{name} [{name_low}, {name_high}]``: an estimate and its interval in a template."""
    return f"{{{name}}} [{{{name}_low}}, {{{name}_high}}]"


def _value(figure: Figure | None) -> float | None:
    return figure.value if figure else None


def _json_number(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
