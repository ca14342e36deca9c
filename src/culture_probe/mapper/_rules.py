"""The offline rules: an empty answer, a refusal, a stated degree, the text of one option."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from culture_probe.backends.generation import is_refusal, match_option_text
from culture_probe.mapper._answer import MappedAnswer
from culture_probe.mapper._degrees import degree_option, scale_head

#: a sentence that ends in a question mark, in Latin, CJK, Arabic or Devanagari script
_QUESTION = re.compile(r"[^.!?。！？؟\n]*[?？؟]")

#: the rule of an answer no rule decides; the judge, where there is one, takes these
NO_RULE = "no_rule"


def apply_rules(text: str, options: Sequence[str]) -> MappedAnswer:
    """The outcome the offline rules give one answer; rule :data:`NO_RULE` where none decides.

    In order: an empty answer is ``invalid``; a refusal is ``refused``. Then, with the answer's
    questions left out (a model that echoes the prompt's question names its option texts): the
    degree the answer states on the options' scale ("extremely important", "I don't agree"),
    abstaining (rule ``conflict``) where it states two options' degrees; on options that are not
    such a scale (other languages), the text of one option in the answer, or the answer as a
    fragment of one option ("muy importante").
    """
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if not cleaned:
        return MappedAnswer(None, "invalid", "empty", 1.0)
    if is_refusal(cleaned):
        return MappedAnswer(None, "refused", "refusal", 1.0)
    # a question in an answer ("你同意？", an echo of the prompt) is not what it answers
    cleaned = _QUESTION.sub(" ", cleaned).strip()
    position, conflict = degree_option(cleaned, options)
    if conflict:
        return MappedAnswer(None, "abstained", "conflict", 0.0)
    if position is not None:
        return MappedAnswer(position, "answered", "degree", 1.0)
    # on a scale the degrees read, they have read the option texts too ("not sure if I agree or
    # disagree" names two); the texts alone are for the scales they do not read
    position = match_option_text(cleaned, options) if scale_head(options) is None else None
    if position is not None:
        return MappedAnswer(position, "answered", "option_text", 1.0)
    return MappedAnswer(None, "abstained", NO_RULE, 0.0)
