"""How strongly an English answer says what an option says: "very important", "not at all happy".

The values items' options are graded scales: importance (very, rather, not very, not at all; or
absolutely ... not at all), agreement (strongly agree ... strongly disagree), happiness, and how
often something is justifiable (never ... always). An answer in the model's own words uses the same
scale with other qualifiers ("extremely important", "it matters a lot", "I don't agree", "pretty
happy"). :func:`answer_degrees` reads each mention of the scale's head word ("important",
"agree", "happy", "justifiable" and their forms) with the qualifier and negation before it, as one
:class:`Degree`; :func:`option_degree` reads an option text the same way, so that the two meet on
one scale without a table per item. A mention with no qualifier ("family is important") is a
plain degree, which only an unqualified option ("Agree") matches: "important" could be "very" or
"rather", and the mapper does not guess.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from culture_probe.backends.generation import normalise_text


class Degree(enum.Enum):
    """A position on a graded scale, as its qualifier says it."""

    TOP = "top"  # extremely, absolutely, strongly, always
    HIGH = "high"  # very, really, mostly, a lot
    MIDDLE = "middle"  # rather, quite, fairly, sometimes
    PLAIN = "plain"  # no qualifier, positive: "agree", "important"
    NEUTRAL = "neutral"  # neither agree nor disagree
    PLAIN_NEGATIVE = "plain_negative"  # no qualifier, negative: "disagree", "not important"
    LOW = "low"  # not very, slightly, rarely
    NONE = "none"  # not at all, never, strongly disagree


#: head words of each scale, and the forms an answer may use for them
_HEADS = {
    # not "importance" ("the importance of family" grades nothing) nor "significant" ("the most
    # significant factor is ..."): both name importance far more often than they grade it
    "important": r"important|matters?|mattered|unimportant",
    "agree": r"agree|agrees|agreed|disagree|disagrees",
    "happy": r"happy|happier|unhappy",
    "justifiable": r"justifiable|justified|justify|unjustifiable|unjustified",
}
_NEGATIVE_HEADS = {"unimportant", "disagree", "disagrees", "unhappy"}
_NEGATIVE_HEADS |= {"unjustifiable", "unjustified"}

_TOP = (
    r"extremely|absolutely|incredibly|immensely|utterly|enormously|tremendously|strongly|completely"
    r"|totally|fully|entirely|wholeheartedly|wholly|always|most|supremely|exceptionally"
)
_HIGH = (
    r"very|really|highly|so|truly|deeply|greatly|particularly|especially|mostly|usually|generally"
    r"|often|super|too"
)
_MIDDLE = (
    r"rather|quite|fairly|moderately|somewhat|reasonably|pretty|relatively|sometimes|occasionally"
    r"|partly|partially|kind of|sort of|to some extent|to a certain extent|in some cases"
)
_LOW = r"slightly|a little|a bit|little|barely|hardly|marginally|rarely|seldom|hardly ever"
_NEVER = r"never"
_NEGATION = r"not|no|nor|cannot"
#: phrases with a negation word that negate nothing: "no doubt family is very important"
_NOT_NEGATIONS = (
    r"\b(?:no doubt|not only|not just|no matter|not surprisingly|not the only|no other"
    r"|nothing else)\b"
)
#: qualifiers after the head: "matters a lot", "important at all"
_AFTER_HIGH = r"a lot|a great deal|greatly|deeply|very much|so much|that much|much"
#: "not that important", "not all that happy": after a negation, "that" softens as "very" does
_NEGATED_THAT = re.compile(r"\b(?:not|no)\b(?: \w+)?(?: all)? that$")
_AFTER_TOP = r"most|the most|above all|more than anything"
_AT_ALL = r"at all|whatsoever|in the least"
#: phrases that are a degree on their own, on the importance scale
_IMPORTANCE_TOP = (
    r"crucial|essential|vital|paramount|indispensable|top priority|the most important"
    r"|(?:utmost|great|paramount|vital|crucial|supreme) importance"
    r"|everything to me|means everything|is everything|my everything|the world to me"
    r"|means the world|the center of my life|the centre of my life|most precious|above all else"
)
_IMPORTANCE_HIGH = (
    r"(?:big|huge|major|large|central|key|great) (?:role|part)"
    r"|(?:a lot of|lots of|great|much|considerable|heavy) weight|cornerstone|pillars?|my rock"
    r"|a way of life|make life worth living|makes life worth living"
)
_IMPORTANCE_LOW = r"(?:small|minor|little|limited) (?:role|part)|little weight|little importance"
_IMPORTANCE_NONE = r"no importance|no weight|no role"
_NEUTRAL = r"neither agree nor disagree|neutral|undecided|neither agree or disagree"

#: doubt about the mention that follows: "not sure whether I agree"
_UNSURE = r"\b(?:not sure|unsure|not certain|uncertain|do not know|whether)\b"

#: "it is important to note that ...": a phrase that grades a remark, not the thing asked about
_REMARK = (
    r"(?! to (?:note|remember|consider|recognize|recognise|understand|acknowledge|mention|keep"
    r"|know|say|point|find|strike|balance|approach|think|ask|be|have|make|take|add)\b)"
)

#: the words a clause ends at: a qualifier beyond them belongs to another statement
_CLAUSE_END = re.compile(r"[.;:!?,\n]| but | and | or | while | although | though | however ")
_WINDOW = 6  # words before the head that can qualify it


def _expand(text: str) -> str:
    """Lower case, contractions written out: "isn't" -> "is not", "can't" -> "cannot"."""
    # before normalise_text, which drops apostrophes
    text = text.replace("’", "'").casefold()
    text = re.sub(r"\bcan ?not\b|\bcan't\b", "cannot", text)
    text = re.sub(r"\bwon't\b", "will not", text)
    return normalise_text(re.sub(r"n't\b", " not", text))


def scale_head(options: Sequence[str]) -> str | None:
    """The head word the options share ("important"), or None when they are not a known scale."""
    texts = [_expand(option) for option in options]
    for head, forms in _HEADS.items():
        if all(re.search(rf"\b(?:{forms})\b", text) for text in texts):
            return head
    return None


def option_degree(option: str, head: str) -> Degree | None:
    """The degree an option's own text says ("Not very important" -> LOW)."""
    found = answer_degrees(option, head)
    return found[0] if len(found) == 1 else None


def answer_degrees(text: str, head: str) -> list[Degree]:
    """The degree of every mention of the scale's head in the text, in order.

    Example:
        >>> answer_degrees("Family isn't very important, but friends matter a lot.", "important")
        [<Degree.LOW: 'low'>, <Degree.HIGH: 'high'>]
    """
    expanded = _expand(text)
    found = []
    if head == "agree" and re.search(rf"\b(?:{_NEUTRAL})\b", expanded):
        return [Degree.NEUTRAL]
    if head == "agree":
        # "if I agree or disagree" weighs both: neither is the answer
        expanded = re.sub(r"\bagree or disagree\b", " ", expanded)
        found += _yes_or_no(expanded)
    if head == "agree" and re.search(r"\b(?:could|can|cannot)(?: not)? agree more\b", expanded):
        return [Degree.TOP]
    if head == "important":
        found += _importance_phrases(expanded)
    for mention in re.finditer(rf"\b({_HEADS[head]})\b{_REMARK}", expanded):
        before = _clause_before(expanded[: mention.start()])
        after = _clause_after(expanded[mention.end() :])
        degree = _degree(before, mention.group(1), after)
        if degree is not None:
            found.append((mention.start(), degree))
    return [degree for _, degree in sorted(found, key=lambda pair: pair[0])]


def _yes_or_no(text: str) -> list[tuple[int, Degree]]:
    """A reply that opens with yes or no to an agree-or-disagree question ("Honestly, no.")."""
    opening = re.match(r"(?:(?:honestly|well|frankly|i would say),? )?(yes|no)(?=[.,!;]|$)", text)
    if opening is None:
        return []
    return [
        (opening.start(1), Degree.PLAIN if opening.group(1) == "yes" else Degree.PLAIN_NEGATIVE)
    ]


def _importance_phrases(text: str) -> list[tuple[int, Degree]]:
    found = []
    for pattern, degree in (
        (_IMPORTANCE_TOP, Degree.TOP),
        (_IMPORTANCE_HIGH, Degree.HIGH),
        (_IMPORTANCE_LOW, Degree.LOW),
        (_IMPORTANCE_NONE, Degree.NONE),
    ):
        for match in re.finditer(rf"\b(?:{pattern})\b{_REMARK}", text):
            before = re.sub(_NOT_NEGATIONS, " ", _clause_before(text[: match.start()]))
            negated = re.search(rf"\b(?:{_NEGATION})\b", before)
            if not negated:
                found.append((match.start(), degree))
    return found


def _clause_before(text: str) -> str:
    clause = _CLAUSE_END.split(text)[-1]
    return " ".join(clause.split()[-_WINDOW:])


def _clause_after(text: str) -> str:
    return " ".join(_CLAUSE_END.split(text)[0].split()[:4])


def _degree(before: str, head: str, after: str) -> Degree | None:
    """The degree of one mention, from the words before and after it in its clause."""
    if re.search(_UNSURE, before):
        return None  # "I'm not sure if I agree": no degree at all
    if head == "happy" and after.startswith("to "):
        return None  # "happy to share my story": an idiom, not how happy
    if head.startswith("matter") and re.search(r"\b(?:what|that|which|who)(?: \w+)?$", before):
        return None  # "what truly matters to me": names what matters, grades nothing
    negated = bool(re.search(rf"\b(?:{_NEGATION})\b", re.sub(_NOT_NEGATIONS, " ", before)))
    negative_head = head in _NEGATIVE_HEADS
    if negated and negative_head:
        return None  # "I do not disagree": a double negative says no degree plainly
    at_all = bool(re.search(rf"\b(?:{_AT_ALL})\b", f"{before} {after}"))
    qualifier = _qualifier(before, after)
    if negated and _NEGATED_THAT.search(before):
        qualifier = Degree.HIGH
    if negated:
        if at_all or qualifier is Degree.NONE:
            return Degree.NONE
        # "not very important", "not really happy": the negation softens the qualifier
        if qualifier in (Degree.TOP, Degree.HIGH, Degree.MIDDLE):
            return Degree.LOW
        return Degree.PLAIN_NEGATIVE if qualifier is None else None
    if negative_head:
        # "strongly disagree", "very unhappy": the qualifier sharpens the negative head
        if qualifier in (Degree.TOP, Degree.HIGH):
            return Degree.NONE
        return Degree.PLAIN_NEGATIVE if qualifier in (None, Degree.MIDDLE) else None
    return qualifier or Degree.PLAIN


def _qualifier(before: str, after: str) -> Degree | None:
    """The qualifier nearest the head: before it ("very important"), else after ("a lot")."""
    nearest: tuple[int, Degree] | None = None
    for pattern, degree in (
        (_TOP, Degree.TOP),
        (_HIGH, Degree.HIGH),
        (_MIDDLE, Degree.MIDDLE),
        (_LOW, Degree.LOW),
        (_NEVER, Degree.NONE),
    ):
        for match in re.finditer(rf"\b(?:{pattern})\b", before):
            if nearest is None or match.end() > nearest[0]:
                nearest = (match.end(), degree)
    if nearest is not None:
        return nearest[1]
    if re.match(rf"(?:{_AFTER_TOP})\b", after):
        return Degree.TOP
    if re.match(rf"(?:{_AFTER_HIGH})\b", after):
        return Degree.HIGH
    return None


_NEGATIVE = {Degree.PLAIN_NEGATIVE, Degree.LOW, Degree.NONE}
#: the most words a reply may have to be read as a bare qualifier
_BARE_WORDS = 3

#: where an answer's degree has no option of its own, the option it falls to, if the scale has it:
#: "extremely important" on a scale that stops at "very", "somewhat agree" on one without "somewhat"
_FALLBACKS = {
    Degree.TOP: (Degree.HIGH,),
    Degree.HIGH: (Degree.PLAIN,),
    Degree.MIDDLE: (Degree.PLAIN,),
    Degree.LOW: (Degree.PLAIN_NEGATIVE,),
}
#: on a frequency scale, "cannot be justified" is "never": there is no plain negative option
_HEAD_FALLBACKS = {"justifiable": {Degree.PLAIN_NEGATIVE: (Degree.NONE,)}}


def degree_option(text: str, options: Sequence[str]) -> tuple[int | None, bool]:
    """The option whose degree the answer states, and whether the answer states several.

    Returns ``(None, False)`` when the options are not a known scale or the answer states no
    degree that an option has; ``(None, True)`` when it states degrees of different options, or
    a positive and a negative one ("politics is not important, but family is very important").

    Example:
        >>> options = ["Very important", "Rather important", "Not very important"]
        >>> degree_option("It is extremely important to me.", options)
        (0, False)
    """
    head = scale_head(options)
    if head is None:
        return None, False
    degrees = [option_degree(option, head) for option in options]
    if None in degrees or len(set(degrees)) < len(degrees):
        return None, False
    stated = answer_degrees(text, head)
    if not stated and len(text.split()) <= _BARE_WORDS:
        # a bare qualifier ("Rather.", "Not at all") grades the head the question asked about
        stated = answer_degrees(f"{text.rstrip('.!')} {head}", head)
    stated = _refined(stated)
    chosen = {_option_for(degree, degrees, head) for degree in stated} - {None}
    signs = {degree in _NEGATIVE for degree in stated if degree is not Degree.NEUTRAL}
    if len(chosen) > 1 or (chosen and len(signs) > 1):
        return None, True
    return (chosen.pop() if chosen else None), False


def _refined(degrees: list[Degree]) -> list[Degree]:
    """A plain mention adds nothing beside a graded one of the same sign ("important, very")."""
    graded = set(degrees) - {Degree.PLAIN, Degree.PLAIN_NEGATIVE}
    if graded - _NEGATIVE:
        degrees = [degree for degree in degrees if degree is not Degree.PLAIN]
    if graded & _NEGATIVE:
        degrees = [degree for degree in degrees if degree is not Degree.PLAIN_NEGATIVE]
    return degrees


def _option_for(degree: Degree, degrees: Sequence[Degree | None], head: str) -> int | None:
    fallbacks = _HEAD_FALLBACKS.get(head, {}).get(degree, _FALLBACKS.get(degree, ()))
    for candidate in (degree, *fallbacks):
        if candidate in degrees:
            return list(degrees).index(candidate)
    return None
