"""Scoring short answers by matching them against annotated human answers (BLEnD, Myung et al. 2024).

A generated answer scores when one of the annotated answers for its question and culture occurs in it
after normalisation: Unicode NFKC, case folded, punctuation as spaces, spaces collapsed. In scripts
written with spaces between words an annotated answer must start at a word boundary ("rice" does
not match inside "licorice") but may run on ("apple" matches "apples", Korean "김치" matches
"김치입니다"); in scripts without spaces (Han, kana, Thai) a plain substring match is used. BLEnD's own
evaluation lemmatises with one tool per language; boundary-aware substring matching needs none and
gives the same decision on the inflections above.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pandas as pd

# ``group``: the annotation an answer belongs to; its synonyms and translations share its votes.
ANSWER_COLUMNS = ("item_id", "proxy", "language", "group", "answer", "votes")
NO_SPACE_SCRIPTS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")


def normalise_answer(text: str) -> str:
    """NFKC, case folded, punctuation and symbols as spaces, single spaces.

    Example:
        >>> normalise_answer("  Fish & Chips!! ")
        'fish chips'
    """
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    kept = [ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in text]
    return " ".join("".join(kept).split())


def answer_matches(answer: str, generated: str) -> bool:
    """Whether the annotated ``answer`` occurs in the ``generated`` text (see the module docs)."""
    needle, haystack = normalise_answer(answer), normalise_answer(generated)
    if not needle or not haystack:
        return False
    if NO_SPACE_SCRIPTS.search(needle):
        return needle in haystack
    return re.search(r"(?<!\w)" + re.escape(needle), haystack) is not None


@dataclass(frozen=True)
class Match:
    """The best annotated answer found in a generated text."""

    matched: bool
    answer: str
    votes: int
    vote_share: float


def best_match(generated: str, answers: pd.DataFrame) -> Match:
    """The annotated answer with most votes that occurs in ``generated``.

    Args:
        generated: the model's text.
        answers: rows of one question and culture, columns ``answer``, ``votes`` and (for
            synonyms that share one annotation's votes) ``group``.
    """
    distinct = answers.drop_duplicates("group") if "group" in answers.columns else answers
    total = int(distinct["votes"].sum())
    for answer, votes in answers.sort_values("votes", ascending=False)[["answer", "votes"]].values:
        if answer_matches(str(answer), generated):
            return Match(True, str(answer), int(votes), int(votes) / total if total else 0.0)
    return Match(False, "", 0, 0.0)


def score_short_answers(
    plan: pd.DataFrame, responses: pd.DataFrame, answers: pd.DataFrame
) -> pd.DataFrame:
    """Per prompt: whether the generated answer matches an annotated one, and its vote share.

    Answers in any language of the annotation count for a prompt in any language (BLEnD annotates
    each answer in the local language and in English).

    Args:
        plan: the plan (``prompt_id, item_id, proxy, language``).
        responses: ``prompt_id, generated`` (generate mode).
        answers: the annotated answers, columns :data:`ANSWER_COLUMNS`.

    Returns:
        One row per prompt: ``prompt_id, item_id, proxy, language, generated, matched, answer,
        votes, vote_share``.
    """
    joined = plan[["prompt_id", "item_id", "proxy", "language"]].merge(
        responses[["prompt_id", "generated"]], on="prompt_id", how="inner"
    )
    grouped = {key: rows for key, rows in answers.groupby(["item_id", "proxy"], sort=False)}
    rows = []
    for record in joined.itertuples(index=False):
        candidates = grouped.get((record.item_id, record.proxy))
        match = (
            best_match(str(record.generated), candidates)
            if candidates is not None
            else Match(False, "", 0, 0.0)
        )
        rows.append({**record._asdict(), **match.__dict__})
    return pd.DataFrame(rows)
