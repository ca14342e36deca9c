"""Scoring short answers by matching them against annotated human answers (BLEnD, Myung et al. 2024).

A generated answer scores when one of the annotated answers for its question and culture occurs in it
after normalisation: Unicode NFKC, case folded, punctuation as spaces, spaces collapsed. In scripts
written with spaces between words an annotated answer must start at a word boundary ("rice" does
not match inside "licorice") but may run on ("apple" matches "apples", Korean "김치" matches
"김치입니다"); in scripts without spaces (Han, kana, Thai) a plain substring match is used. BLEnD's own
evaluation lemmatises with one tool per language; boundary-aware substring matching needs none and
gives the same decision on the inflections above. A number is a whole token: "1" does not match
"12", nor "8" "80".

An annotated answer that the prompt itself contains is left out of that prompt's matching, because
a reply that merely repeats the question would match it: "snack" (an English rendering of 과자) for
"What is a common snack for preschool kids in South Korea?", or "12" where the question asks for
"Arabic numerals (e.g., 12)". Of the 28,293 answer groups in BLEnD's annotation files, 511 (in 456
question-country pairs) have an alias that their own question, local or English, contains. The
group's other aliases still count, and its votes stay in the total that vote shares are taken of.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from culture_probe.study import SHORT_ANSWER_SCALE

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
    # a word may run on into an inflection ("apples"), a number not into more digits ("12")
    ending = r"(?!\d)" if needle[-1].isdigit() else ""
    return re.search(r"(?<!\w)" + re.escape(needle) + ending, haystack) is not None


@dataclass(frozen=True)
class Match:
    """The best annotated answer found in a generated text."""

    matched: bool
    answer: str
    votes: int
    vote_share: float


def best_match(generated: str, answers: pd.DataFrame, prompt: str = "") -> Match:
    """The annotated answer with most votes that occurs in ``generated`` and not in ``prompt``.

    Args:
        generated: the model's text.
        answers: rows of one question and culture, columns ``answer``, ``votes`` and (for
            synonyms that share one annotation's votes) ``group``.
        prompt: the text the model was given; answers it contains are left out (module docs).
    """
    distinct = answers.drop_duplicates("group") if "group" in answers.columns else answers
    total = int(distinct["votes"].sum())
    for answer, votes in answers.sort_values("votes", ascending=False)[["answer", "votes"]].values:
        if prompt and answer_matches(str(answer), prompt):
            continue
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
        plan: the plan (``prompt_id, item_id, proxy, language``, and the prompt's ``system`` and
            ``user`` text where it has them, whose answers are left out: see the module docs).
        responses: ``prompt_id, generated`` (generate mode).
        answers: the annotated answers, columns
            :data:`culture_probe.importers.ANSWER_COLUMNS`.

    Returns:
        One row per prompt: ``prompt_id, item_id, proxy, language, generated, matched, answer,
        votes, vote_share``.
    """
    prompts = _prompt_texts(plan)
    joined = plan[["prompt_id", "item_id", "proxy", "language"]].merge(
        responses[["prompt_id", "generated"]], on="prompt_id", how="inner"
    )
    grouped = {key: rows for key, rows in answers.groupby(["item_id", "proxy"], sort=False)}
    rows = []
    for record in joined.itertuples(index=False):
        candidates = grouped.get((record.item_id, record.proxy))
        match = (
            best_match(str(record.generated), candidates, prompts.get(record.prompt_id, ""))
            if candidates is not None
            else Match(False, "", 0, 0.0)
        )
        rows.append({**record._asdict(), **match.__dict__})
    return pd.DataFrame(rows)


def _prompt_texts(plan: pd.DataFrame) -> dict[str, str]:
    """Each prompt's system and user text, joined; empty where the plan does not carry them."""
    parts = [plan[column].fillna("").astype(str) for column in ("system", "user") if column in plan]
    if not parts:
        return {}
    joined = parts[0] if len(parts) == 1 else parts[0] + "\n" + parts[1]
    return dict(zip(plan["prompt_id"], joined, strict=True))


#: columns :func:`with_matches` adds for short-answer items (NaN / "" for choice items)
MATCH_COLUMNS = ("match", "matched_answer", "match_share")


def with_matches(
    plan: pd.DataFrame, responses: pd.DataFrame, answers: pd.DataFrame
) -> pd.DataFrame:
    """``responses`` with :data:`MATCH_COLUMNS` filled in for the short-answer rows.

    For short-answer rows, ``match`` is 1.0 when an annotated answer for the question and culture
    occurs in the generated text and 0.0 otherwise, ``matched_answer`` is the annotated answer with
    the most votes that occurs, and ``match_share`` is the share of annotators who gave it (0 when
    none matches). Choice rows get NaN and "".
    """
    written = plan.loc[plan["scale"] == SHORT_ANSWER_SCALE]
    scored = score_short_answers(written, responses, answers).set_index("prompt_id")
    answered = responses["outcome"].eq("answered").to_numpy()
    ids = responses["prompt_id"]
    out = responses.drop(columns=[c for c in MATCH_COLUMNS if c in responses.columns])
    # A refusal or an empty text matches nothing, whatever words it happens to contain.
    matched = ids.map(scored["matched"]).astype("float64").to_numpy()
    share = ids.map(scored["vote_share"]).astype("float64").to_numpy()
    out["match"] = np.where(np.isnan(matched), np.nan, np.where(answered, matched, 0.0))
    out["matched_answer"] = np.where(
        out["match"].to_numpy() == 1.0, ids.map(scored["answer"]).fillna("").to_numpy(), ""
    )
    out["match_share"] = np.where(np.isnan(matched), np.nan, np.where(answered, share, 0.0))
    return out
