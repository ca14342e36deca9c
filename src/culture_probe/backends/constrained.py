"""The ``constrained`` level: a label sampled under a constraint, and its exact distribution.

The constraint admits only the token sequences that spell a label, token by token over the labels'
trie: a label may take several tokens ("ii", an option's first word), and may be spelt bare or after
a space (as in :mod:`culture_probe.backends.labels`). The exact constrained distribution is each
label's sequence probability, renormalised over the labels::

    P(label) = sum over its spellings s of  prod_t p(s_t | prompt, s_<t) * p(end | prompt, s)

where ``p(end | s)`` is 1 unless ``s`` also begins a longer label, in which case it is the
probability of anything but the tokens that go on into it. The label is drawn token by token,
under the prompt's seed and its messages (:func:`draw_seed`: the same prompt and seed draw the same
label; prompts asked under one seed draw independently of each other). At each node of the trie
only the tokens that continue a label are admitted, each weighted by the probability of the labels
it leads to. A plain mask that renormalised the next token at each step would draw from another
distribution as soon as two labels shared a first token; weighted so, the draw follows the
distribution reported beside it.

Only the next-token log-probabilities at the trie's branching nodes are needed
(:meth:`LabelTrie.branching_nodes`): one forward read at the prompt's end for labels of one token
each, one more per node where a label goes on.

Example:
    >>> trie = LabelTrie.build([[(7,)], [(8, 9)], [(8, 10)]])
    >>> reads = {(): {7: math.log(0.2), 8: math.log(0.6)}, (8,): {9: math.log(0.5), 10: math.log(0.25)}}
    >>> answer = constrained_answer(trie, reads, seed=0)
    >>> [round(p, 4) for p in answer.probs], round(answer.mass, 4)
    ([0.3077, 0.4615, 0.2308], 0.65)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from culture_probe.backends.base import ScoringRequest, renormalise
from culture_probe.backends.labels import label_spellings

#: a node of the trie: the label tokens written so far (the root is the empty tuple)
Node = tuple[int, ...]
#: per branching node, the log-probability of each token that continues a label
NextLogProbs = Mapping[Node, Mapping[int, float]]


@dataclass(frozen=True)
class LabelTrie:
    """The token sequences that spell each label, as a tree.

    Attributes:
        children: per node, the tokens that continue a label from it.
        ends: per node that completes a spelling, the display position of its label.
    """

    children: dict[Node, tuple[int, ...]] = field(default_factory=dict)
    ends: dict[Node, int] = field(default_factory=dict)

    @classmethod
    def build(cls, spellings_per_label: Sequence[Sequence[Sequence[int]]]) -> LabelTrie:
        """The trie of each label's spellings (token sequences), labels in display order.

        A spelling that two labels share counts for the first of them.
        """
        children: dict[Node, dict[int, None]] = {}
        ends: dict[Node, int] = {}
        for position, spellings in enumerate(spellings_per_label):
            for spelling in spellings:
                tokens = tuple(int(token) for token in spelling)
                if not tokens:
                    continue
                for depth in range(len(tokens)):
                    children.setdefault(tokens[:depth], {})[tokens[depth]] = None
                ends.setdefault(tokens, position)
        return cls({node: tuple(tokens) for node, tokens in children.items()}, ends)

    def branching_nodes(self) -> list[Node]:
        """The nodes whose next-token log-probabilities the distribution needs, root first."""
        return sorted(self.children, key=lambda node: (len(node), node))


def label_trie(tokenizer: Any, labels: Sequence[str]) -> LabelTrie:
    """The trie of each label's spellings, bare and after a space, as ``tokenizer`` writes them."""
    return LabelTrie.build(
        [
            [tokenizer.encode(spelling, add_special_tokens=False) for spelling in spellings]
            for spellings in map(label_spellings, labels)
        ]
    )


@dataclass(frozen=True)
class ConstrainedAnswer:
    """The exact constrained distribution (display order), the labels' mass, the sampled label."""

    probs: tuple[float, ...]
    mass: float
    choice: int


def draw_seed(request: ScoringRequest) -> list[int]:
    """The random seed of a prompt's draw: its ``seed`` and a hash of its messages.

    With the seed alone, every prompt of a study asked under seed 0 would take the same random
    number, and so the same quantile of its own distribution; with the messages beside it, the
    draws of different prompts are independent, and the same prompt under the same seed (in a
    resumed run, or duplicated in the plan) draws the same label.
    """
    messages = f"{request.system}\x00{request.user}".encode()
    return [request.seed, int.from_bytes(hashlib.sha256(messages).digest()[:8], "big")]


def constrained_answer(
    trie: LabelTrie, reads: NextLogProbs, seed: int | Sequence[int]
) -> ConstrainedAnswer:
    """The exact distribution over the labels, and one label drawn from it under ``seed``.

    Args:
        trie: the labels' spellings.
        reads: the next-token log-probabilities at each of ``trie.branching_nodes()``.
        seed: the draw's seed (:func:`draw_seed`); the same seed draws the same label from the
            same reads.

    Returns:
        ``choice`` is -1 where the log-probabilities are not numbers (the distribution then
        carries the NaN, and the scoring loop records the prompt as ``invalid``).
    """
    ended = _ended_mass(trie, reads)
    n_labels = max(trie.ends.values(), default=-1) + 1
    per_label = [0.0] * n_labels
    for node, mass in ended.items():
        per_label[trie.ends[node]] += mass
    probs, total = renormalise(per_label)
    if not all(math.isfinite(mass) for mass in ended.values()) or total <= 0.0:
        return ConstrainedAnswer(probs, total, -1 if total != total else _uniform(n_labels, seed))
    node = _walk(trie, ended, np.random.default_rng(seed))
    return ConstrainedAnswer(probs, total, trie.ends[node])


def _ended_mass(trie: LabelTrie, reads: NextLogProbs) -> dict[Node, float]:
    """Per spelling, the probability that the model writes it and then ends the label there."""
    ended: dict[Node, float] = {}
    for node in trie.ends:
        log_prob = sum(reads[node[:depth]][node[depth]] for depth in range(len(node)))
        going_on = sum(math.exp(reads[node][token]) for token in trie.children.get(node, ()))
        ended[node] = math.exp(log_prob) * max(0.0, 1.0 - going_on)
    return ended


def _walk(trie: LabelTrie, ended: Mapping[Node, float], rng: np.random.Generator) -> Node:
    """Draw a spelling token by token, each admitted token weighted by the labels below it."""
    below: dict[Node, float] = {}
    for spelling, mass in ended.items():
        for depth in range(len(spelling) + 1):
            below[spelling[:depth]] = below.get(spelling[:depth], 0.0) + mass
    node: Node = ()
    while True:
        steps = [(*node, token) for token in trie.children.get(node, ())]
        weights = [below.get(step, 0.0) for step in steps]
        if node in trie.ends:  # stopping here is one of the choices
            steps.append(node)
            weights.append(ended[node])
        picked = steps[int(rng.choice(len(steps), p=np.asarray(weights) / sum(weights)))]
        if picked == node:
            return node
        node = picked


def _uniform(n_labels: int, seed: int | Sequence[int]) -> int:
    """A label drawn uniformly: the labels got no probability at all."""
    return int(np.random.default_rng(seed).integers(n_labels)) if n_labels else -1
