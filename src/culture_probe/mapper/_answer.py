"""What the mapper says about one answer."""

from __future__ import annotations

from dataclasses import dataclass

#: what a mapped answer can be; ``abstained`` is an answer that no option fits with confidence
MAPPED_OUTCOMES = ("answered", "abstained", "refused", "invalid")


@dataclass(frozen=True)
class MappedAnswer:
    """One open answer read as an option.

    Attributes:
        option: the canonical index of the chosen option; None unless ``outcome`` is ``answered``.
        outcome: one of :data:`MAPPED_OUTCOMES`.
        rule: the rule or judge that decided (``refusal``, ``degree``, ``option_text``,
            ``judge``, ...).
        confidence: how sure the deciding rule is, 0 to 1 (a rule's match is 1, a judge's is its
            probability of the chosen option).
    """

    option: int | None
    outcome: str
    rule: str
    confidence: float
