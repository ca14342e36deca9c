"""``generate`` mode: sample an answer, then read it back as one of the options.

Sampling is seeded per prompt (the plan's ``seed`` column), so a run is reproducible and the study's
``seeds:`` list becomes a design axis: several samples of the same prompt estimate the answer
distribution that ``logprobs`` mode reads off directly.

:func:`parse_answer` maps free text to an option, in this order: an explicit label ("B", "(B)", "B.",
"Answer: B", "答案是B"), a refusal ("I can't answer that", "Lo siento, no puedo", "申し訳ありませんが"),
the text of an option ("Rather important", "muy importante"), then a fragment that only one option
contains ("rather"). What matches none of these, or several options at once, is ``invalid``. Refusals
and invalid answers are kept as outcomes with no distribution (see :mod:`culture_probe.backends.base`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from culture_probe.backends.base import ScoredPrompt, ScoringRequest
from culture_probe.errors import CultureProbeError, expected_one_of

#: scoring modes: read the next-token distribution, or sample text and parse it
MODES = ("logprobs", "generate")

#: scripts where a bare Latin letter or digit cannot be an English word or a year
_NON_LATIN_LANGUAGES = {
    "zh",
    "ja",
    "ko",
    "ar",
    "fa",
    "ur",
    "he",
    "hi",
    "bn",
    "th",
    "ru",
    "uk",
    "el",
}

# Words that introduce an answer, in the languages the probes are written in.
_CUES = (
    r"answer(?:\s+is)?|my\s+answer(?:\s+is)?|option|choice|i\s+(?:would\s+)?(?:choose|pick|select)"
    r"|i\s*'?d\s+(?:choose|pick|say)|would\s+say|respuesta(?:\s+es)?|opci[oó]n|elijo|escojo"
    r"|r[ée]ponse|antwort|resposta|答案(?:是|为)?|回答(?:是)?|选择?|選択肢|答え(?:は)?|回答は"
    r"|الإجابة(?:\s+هي)?|الجواب|الخيار|उत्तर(?:\s+है)?|विकल्प"
)

# Declines to answer. A refusal that still names an option ("I can't be sure, but B") is an answer.
_REFUSALS = (
    r"\bi\s*(?:cannot|can\s*'?t|can\s+not|am\s+unable\s+to|'m\s+unable\s+to|won\s*'?t|will\s+not)"
    r"\s+(?:answer|provide|say|give|share|choose|pick|express|determine|speak|help)",
    r"\bas\s+an\s+ai\b",
    r"\bi\s+(?:do\s+not|don\s*'?t)\s+have\s+(?:personal|an?\s+opinion|opinions|feelings|beliefs)",
    r"\bi\s*'?m\s+sorry\b|\bi\s+am\s+sorry\b|\bi\s+apologi[sz]e\b",
    r"\bno\s+puedo\b|\blo\s+siento\b|\bcomo\s+(?:una\s+)?(?:ia|inteligencia\s+artificial)\b",
    r"\bje\s+ne\s+peux\s+pas\b|\bich\s+kann\s+(?:nicht|keine)\b|\bnão\s+posso\b",
    r"无法回答|不能回答|我无法|我不能|抱歉|作为一个?(?:人工智能|AI)",
    r"申し訳|お答えできません|答えられません|回答できません|できかねます",
    r"لا\s+أستطيع|لا\s+يمكنني|عذرا|عذراً|آسف|بصفتي\s+(?:نموذج|ذكاء)",
    r"क्षमा\s+करें|माफ़\s+कीजिए|माफ\s+कीजिए|मैं\s+.{0,40}नहीं\s+(?:दे|कर)\s+सकता",
)
_REFUSAL_PATTERN = re.compile("|".join(_REFUSALS), re.IGNORECASE)

#: an option's text counts as the answer only in a short reply: a longer one that mentions options
#: is reasoning about them ("To determine which option represents A. not at all important, ...")
_MAX_WORDS_FOR_TEXT = 12
#: shortest fragment of an option text that may stand for the option on its own
_MIN_FRAGMENT = 4


@dataclass(frozen=True)
class ParsedAnswer:
    """What a generated text says: an outcome, and the display position of the option if answered."""

    outcome: str
    position: int | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding options for ``generate`` mode and written answers.

    ``batch_rows``: prompts decoded together (the ``hf`` backend's ``batch_size``). A decoding
    step reads every weight once however many rows it multiplies, so on a CPU a batch writes
    many times the tokens of one prompt in little more time (docs/performance.md, "Generation").
    """

    temperature: float = 0.7
    max_new_tokens: int = 32
    top_p: float = 1.0
    batch_rows: int = 16


def require_mode(mode: str, allowed: Sequence[str] = MODES) -> str:
    """The scoring mode, or a clear error naming the ones a backend offers."""
    if mode not in allowed:
        raise CultureProbeError(
            f"unknown mode '{mode}' (option mode=...; {expected_one_of(mode, allowed)})"
        )
    return mode


def normalise_text(text: str) -> str:
    """Case-, width- and accent-insensitive form used to compare answers with option texts.

    Example:
        >>> normalise_text("  Ｍuy  IMPORTANTE. ")
        'muy importante'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(char for char in decomposed if not unicodedata.combining(char))
    text = re.sub(r"[*_`\"'“”‘’«»「」『』【】]", "", text)
    text = re.sub(r"\s+", " ", text)
    return text.strip(" \t\n.,;:!?。、，；：！？")


def parse_answer(
    text: str, labels: Sequence[str], options: Sequence[str] = (), language: str = "en"
) -> ParsedAnswer:
    """Read a generated answer back as one of the shown options.

    Args:
        text: the generated text.
        labels: option labels in display order ("A", "B", ... or "1", "2", ...).
        options: option texts in display order (the same order as ``labels``); may be empty.
        language: ISO 639-1 code of the prompt; in non-Latin scripts a lone Latin letter is a label.

    Returns:
        ``answered`` with the display position, ``refused``, or ``invalid``.

    Example:
        >>> parse_answer("B. Rather important", ["A", "B"], ["Very important", "Rather important"])
        ParsedAnswer(outcome='answered', position=1)
        >>> parse_answer("Lo siento, no puedo responder.", ["A", "B"], language="es").outcome
        'refused'
    """
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if not cleaned:
        return ParsedAnswer("invalid")
    position = _explicit_label(cleaned, labels, options, language)
    if position is _CONFLICT:
        return ParsedAnswer("invalid")
    if position is None and is_refusal(cleaned):
        return ParsedAnswer("refused")
    if position is None and len(cleaned.split()) <= _MAX_WORDS_FOR_TEXT:
        position = match_option_text(cleaned, options)
    if position is None:
        return ParsedAnswer("invalid")
    return ParsedAnswer("answered", position)


def _label_alternatives(labels: Sequence[str]) -> str:
    return "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))


#: what :func:`_explicit_label` returns for a text whose labels name different options
_CONFLICT = -1


def _explicit_label(
    text: str, labels: Sequence[str], options: Sequence[str], language: str
) -> int | None:
    r"""The position of the label the text gives as its answer.

    None when it gives none, :data:`_CONFLICT` when its labels disagree: lines that list several
    options ("A. ...\nE. ..."), or a first line that names one option and a later "the answer is"
    another. A stated answer picks one of the listed lines ("A. ...\nE. ...\nThe answer is A").
    """
    plain = re.sub(r"[*_`]", "", text)
    alternatives = _label_alternatives(labels)
    lone = rf"(?<![A-Za-z0-9])({alternatives})(?![A-Za-z0-9])"
    listed = _listed_labels(plain, labels)
    # "Answer: B", "I choose B", "the answer is indeed B", "答案是B"; cue words in any case,
    # labels only as written ("I would say a lot" names no option)
    stated = re.findall(
        rf"(?i:{_CUES})\s*(?i:is|es|est|ist|:|：|-|是|は|为)?\s*(?i:indeed|probably|clearly)?\s*"
        rf"[\(\[（]?{lone}",
        plain,
    )
    # "A Very important": a bare label followed by exactly the text of its own option (and not the
    # article in "A very important part of my life")
    bare = re.match(rf"^\s*({alternatives})\s+(.+)", plain, re.S)
    if bare and _is_own_option_text(bare.group(2), bare.group(1), labels, options):
        listed.append(bare.group(1))
    found = _agreed_label(list(dict.fromkeys(listed)), list(dict.fromkeys(stated)))
    if found == "":
        return _CONFLICT
    if found is None and language.split("-")[0] in _NON_LATIN_LANGUAGES:
        # in a script without Latin words, a lone Latin letter anywhere is a label
        lone_labels = list(dict.fromkeys(re.findall(lone, plain)))
        found = lone_labels[0] if len(lone_labels) == 1 else None
    # a line that starts with a letter the question does not offer ("F. ...") names no option
    return list(labels).index(found) if found is not None and found in labels else None


def _listed_labels(text: str, labels: Sequence[str]) -> list[str]:
    r"""Labels that start a line: "B", "B.", "B)", "(B)", "[B]", "B: ...".

    Where the labels are capital letters, a line that starts with one of the next two letters
    ("E." or "F." under A-D) counts too, so that a list running past the options is seen as a list.
    """
    alternatives = _label_alternatives(labels)
    letters = bool(labels) and all(len(label) == 1 and "A" <= label <= "Z" for label in labels)
    last = max(labels) if letters else ""
    pattern = f"[A-{chr(min(ord(last) + 2, ord('Z')))}]" if letters else f"(?:{alternatives})"
    return re.findall(rf"^\s*[\(\[（]?\s*({pattern})\s*(?:[\.\)\]:：、）]|$)", text, re.M)


def _agreed_label(listed: list[str], stated: list[str]) -> str | None:
    """The one label the listed lines and stated answers agree on; "" if they disagree."""
    if len(stated) > 1:
        return ""
    if stated:
        # a stated answer must be one of the listed lines, if there are any
        return stated[0] if not listed or stated[0] in listed else ""
    if len(listed) > 1:
        return ""
    return listed[0] if listed else None


def _is_own_option_text(
    rest: str, label: str, labels: Sequence[str], options: Sequence[str]
) -> bool:
    if not options:
        return False
    option = normalise_text(options[list(labels).index(label)])
    first_line = rest.strip().splitlines()[0] if rest.strip() else ""
    return bool(option) and normalise_text(first_line) == option


def is_refusal(text: str) -> bool:
    """Whether a text declines to answer, in any of the probes' languages.

    Example:
        >>> is_refusal("As an AI, I don't have personal opinions."), is_refusal("Very much.")
        (True, False)
    """
    return bool(_REFUSAL_PATTERN.search(text))


def match_option_text(text: str, options: Sequence[str]) -> int | None:
    """The one option whose text the answer contains, or that the answer is a fragment of.

    Example:
        >>> match_option_text("Not very important to me", ["Very important", "Not very important"])
        1
    """
    answer = normalise_text(text)
    if not answer:
        return None
    texts = [normalise_text(option) for option in options]
    contained = [index for index, option in enumerate(texts) if option and option in answer]
    # "not very important" contains "very important": a match inside a longer match does not count
    contained = [
        index
        for index in contained
        if not any(
            texts[index] != texts[other] and texts[index] in texts[other] for other in contained
        )
    ]
    if len(contained) == 1:
        return contained[0]
    if contained:
        return None
    fragment_of = [index for index, option in enumerate(texts) if answer in option]
    if len(fragment_of) == 1 and len(answer) >= _MIN_FRAGMENT:
        return fragment_of[0]
    return None


def generated_result(request: ScoringRequest, text: str) -> ScoredPrompt:
    """A sampled answer as a result: one-hot on the chosen option, or no distribution at all.

    A single sample is one draw from the model's answer distribution, so an answered prompt puts
    probability 1 on the chosen option; averaging over the study's seeds estimates the distribution.
    """
    parsed = parse_answer(text, request.option_labels, request.options, request.language)
    if parsed.outcome != "answered" or parsed.position is None:
        return ScoredPrompt(request.prompt_id, (), 0.0, parsed.outcome, text)
    one_hot = tuple(
        1.0 if position == parsed.position else 0.0
        for position in range(len(request.option_labels))
    )
    return ScoredPrompt(request.prompt_id, one_hot, 1.0, "answered", text)


def short_answer_result(request: ScoringRequest, text: str) -> ScoredPrompt:
    """A written short answer as a result: no options, so no distribution, only the outcome.

    The text is kept for matching against annotated answers; an empty text is ``invalid`` and a
    refusal ("I'm sorry, I can't answer") is ``refused``.

    Example:
        >>> short_answer_result(ScoringRequest("p", "", "Q?", ()), " Kimchi").outcome
        'answered'
    """
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if not cleaned:
        outcome = "invalid"
    elif is_refusal(cleaned):
        outcome = "refused"
    else:
        outcome = "answered"
    return ScoredPrompt(request.prompt_id, (), 0.0, outcome, text)


def hf_generate(
    model: Any,
    tokenizer: Any,
    requests: Sequence[ScoringRequest],
    settings: GenerationSettings,
    device: str = "cpu",
    read: Callable[[ScoringRequest, str], ScoredPrompt] = generated_result,
) -> list[ScoredPrompt]:
    """Write one answer per request with a transformers model, each under its own seed.

    The prompts are decoded in batches that share their common prefix, each answer ending at its
    own stop token (:func:`culture_probe.engine.generate.generate`). Each sample is drawn with a
    generator seeded by its prompt's seed, so it depends on its prompt and seed only, not on which
    other prompts shared its batch, and a resumed run draws the same answers (up to float
    rounding). ``read`` turns the text into a result: :func:`generated_result` for options,
    :func:`short_answer_result` for short answers.
    """
    from culture_probe.engine.generate import Decoding, generate, stop_token_ids

    prompts = [
        tokenizer.encode(
            str(
                tokenizer.apply_chat_template(
                    request.messages(), tokenize=False, add_generation_prompt=True
                )
            ),
            add_special_tokens=False,
        )
        for request in requests
    ]
    decoding = Decoding(
        max_new_tokens=settings.max_new_tokens,
        batch_rows=settings.batch_rows,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )
    written = generate(
        model,
        prompts,
        [request.seed for request in requests],
        decoding,
        stop_token_ids(model, tokenizer),
        device,
    )
    return [
        read(request, str(tokenizer.decode(tokens, skip_special_tokens=True)))
        for request, tokens in zip(requests, written, strict=True)
    ]


def outcome_rates(results: Sequence[ScoredPrompt]) -> dict[str, float]:
    """Share of answered, refused and invalid results (0 for an empty list).

    Example:
        >>> outcome_rates([ScoredPrompt("a", (1.0,), 1.0), ScoredPrompt("b", (), 0.0, "refused")])
        {'answered': 0.5, 'refused': 0.5, 'invalid': 0.0}
    """
    total = len(results)
    counts = {"answered": 0, "refused": 0, "invalid": 0}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return {outcome: (count / total if total else 0.0) for outcome, count in counts.items()}
