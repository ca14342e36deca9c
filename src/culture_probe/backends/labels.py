"""From next-token log-probabilities to option probabilities, the same way for every backend.

A label such as "A" can come out of a tokenizer as "A" or as " A" (after the chat template the
assistant turn usually starts without a space, but a model may still put one). Both spellings count:
the probability of a label is the sum over its spellings, and the labels are then renormalised
(:func:`culture_probe.backends.base.renormalise`). ``hf`` and ``vllm`` look spellings up by token id,
``openai`` by token text; the arithmetic is this module's, so the three agree on the same logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from culture_probe.backends.base import renormalise

Key = TypeVar("Key", bound=Hashable)


def label_spellings(label: str) -> tuple[str, str]:
    """The two ways a label can start an answer: bare and after a space."""
    return (label, " " + label)


def label_token_ids(tokenizer: Any, label: str) -> list[int]:
    """Token ids a label can be spoken as in first position: "A" and " A" where distinct.

    Only a spelling whose first token decodes to the label itself counts (a tokenizer that splits
    "10" into "1" "0" must not credit label "10" with the probability of "1"). When neither spelling
    gives such a token, the first token of the bare label stands in for it.

    Example:
        >>> label_token_ids(tokenizer, "A")  # doctest: +SKIP
        [49, 330]
    """
    found: list[int] = []
    for spelling in label_spellings(label):
        ids = tokenizer.encode(spelling, add_special_tokens=False)
        spoken = str(tokenizer.decode(ids[:1])) if ids else ""
        if spoken.strip() == label and ids[0] not in found:
            found.append(ids[0])
    if not found:
        found = list(tokenizer.encode(label, add_special_tokens=False)[:1])
    return found


def label_probabilities(
    logprob_of: Callable[[Key], float | None],
    keys_per_label: Sequence[Iterable[Key]],
) -> tuple[tuple[float, ...], float]:
    """Renormalised option probabilities and the mass the labels had before renormalising.

    Args:
        logprob_of: the next-token log-probability of a token (by id or by text), or None where the
            backend did not return it (a server's top-k list that stops before the token); such a
            token counts as probability 0.
        keys_per_label: for each option label in display order, the tokens that spell it.

    Returns:
        ``(probs, mass)`` as :func:`culture_probe.backends.base.renormalise` returns them.

    Example:
        >>> table = {"A": math.log(0.5), " A": math.log(0.1), "B": math.log(0.2)}
        >>> probs, mass = label_probabilities(table.get, [["A", " A"], ["B", " B"]])
        >>> [round(p, 3) for p in probs], round(mass, 3)
        ([0.75, 0.25], 0.8)
    """
    masses = []
    for keys in keys_per_label:
        total = 0.0
        for key in dict.fromkeys(keys):  # a token listed twice counts once
            logprob = logprob_of(key)
            # NaN is kept, so that the result is refused as no distribution; it never reads as 0
            if logprob is not None and logprob != -math.inf:
                total += math.exp(logprob)
        masses.append(total)
    return renormalise(masses)
