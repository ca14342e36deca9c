"""A plan the backend cannot answer faithfully is refused before the first prompt is scored.

Two limits depend on the loaded model, so they are checked once it is loaded and before anything is
written to the run folder:

- a model reads at most its context (``max_position_embeddings``, vLLM's ``max_model_len``); a
  longer prompt is cut, fails, or fills memory, depending on the backend. The backends that know
  their tokenizer say how long each prompt is (:meth:`Backend.prompt_lengths`) and how long it may
  be (:meth:`Backend.max_prompt_tokens`);
- a backend that reads the top ``k`` log-probabilities (``--option top_logprobs``) must read at
  least as many as the options of the largest item (:meth:`Backend.max_options`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from culture_probe.backends.base import Backend, ScoringRequest
from culture_probe.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


def check_plan_fits_backend(
    backend: Backend,
    plan: pd.DataFrame,
    requests_for: Callable[[pd.DataFrame], Sequence[ScoringRequest]],
) -> None:
    """Refuse a plan whose prompts are too long, or whose items have too many options, for it.

    Args:
        backend: the loaded backend; one that cannot count tokens (a remote server) is not
            checked for length.
        plan: the plan to score (one row per prompt).
        requests_for: turns plan rows into the requests the backend scores.

    Raises:
        InputError: naming the item, proxy and wording of the longest prompt, its length and the
            model's limit; or the item with the most options and the ``top_logprobs`` to give.
    """
    if plan.empty:
        return
    _check_option_count(backend, plan)
    _check_prompt_lengths(backend, plan, requests_for)


def _check_option_count(backend: Backend, plan: pd.DataFrame) -> None:
    readable = backend.max_options()
    if readable is None or "n_options" not in plan:
        return
    widest = plan.loc[plan["n_options"].idxmax()]
    if int(widest["n_options"]) > readable:
        raise InputError(
            f"--option top_logprobs={readable} reads {readable} log-probabilities per prompt, but "
            f"item '{widest['item_id']}' has {int(widest['n_options'])} options; the others would "
            "get probability 0",
            hint=f"give --option top_logprobs={int(widest['n_options'])} or more",
        )


def _answered_in_writing(plan: pd.DataFrame) -> pd.Series:
    """Whether each row's answer is written (a generation that needs room in the context)."""
    import pandas as pd

    from culture_probe.columns import WRITTEN_LEVELS
    from culture_probe.study import SHORT_ANSWER_SCALE

    written = pd.Series(False, index=plan.index)
    if "elicitation" in plan.columns:
        written |= plan["elicitation"].astype(str).isin(WRITTEN_LEVELS)
    if "scale" in plan.columns:
        written |= plan["scale"].astype(str).eq(SHORT_ANSWER_SCALE)
    return written


def _check_prompt_lengths(
    backend: Backend,
    plan: pd.DataFrame,
    requests_for: Callable[[pd.DataFrame], Sequence[ScoringRequest]],
) -> None:
    if backend.max_prompt_tokens() is None:
        return
    distinct = plan.assign(writes=_answered_in_writing(plan)).drop_duplicates(
        ["text_hash", "writes"]
    )
    lengths = backend.prompt_lengths(requests_for(distinct))
    limits = [backend.max_prompt_tokens(writing=bool(w)) or 0 for w in distinct["writes"]]
    too_long = [i for i, (n, limit) in enumerate(zip(lengths, limits, strict=True)) if n > limit]
    if not too_long:
        return
    longest = max(too_long, key=lambda index: lengths[index] - limits[index])
    row = distinct.iloc[longest]
    more = f"; {len(too_long):,} distinct prompts are too long" if len(too_long) > 1 else ""
    room = " with room for its written answer" if row["writes"] else ""
    raise InputError(
        f"study '{row['study']}': the prompt of item '{row['item_id']}' for proxy "
        f"'{row['proxy']}' (wording '{row['wording']}', language '{row['language']}') is "
        f"{lengths[longest]:,} tokens; {backend.info().model} reads at most "
        f"{limits[longest]:,}{room}{more}",
        hint="shorten that item's paraphrase, its options or the framing, or use a model with "
        "a longer context",
    )
