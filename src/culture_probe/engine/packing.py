"""Prefix-tree packing: prompts that share their first tokens computed once, in one sequence.

Persona studies repeat long prefixes: the chat template's header, the persona's system message, the
question before the options. Sorted by their token ids, consecutive prompts share the tokens they
have in common; a pack of up to ``pack_tokens`` tree nodes goes through the model as one sequence
whose attention lets each token see exactly its ancestors, with position ids set to the token's
depth. Every prompt's last token then has the same keys, values and positions as in a forward pass
of that prompt alone, so the distribution is the same up to float rounding; on the values study
this computes about 0.55 of the tokens that one pass per prompt would, with no padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: tree nodes per packed sequence, by dtype. With attention gathered block by block, a bigger pack
#: shares more prefixes and feeds the matrix products more rows, until its activations outgrow the
#: caches. Measured on 600 values-study prompts (best of 4, one process, packs of 1,024 / 2,048 /
#: 4,096 / 8,192 nodes): bfloat16 65.8 / 80.3 / 88.7 prompts/s, and 77.9 / 87.9 / 91.1 in a second
#: sweep; mixed 32.1 / 36.3 / 33.1 with packs of 512 / 1,024 / 2,048 (40.0 / 47.9 / 46.5 with 64
#: tail channels); float32 22.5 / 21.6 with 512 / 1,024. With attention batched over blocks and the
#: heap kept (:func:`reuse_freed_activations`): bfloat16 85.9 / 91.8 / 88.3 with 2,048 / 4,096 /
#: 8,192; mixed 35.9 / 36.4 / 35.6 with 1,024 / 2,048 / 4,096, so it keeps the smaller pack. With
#: the split kernel (600 prompts, best of 3 taking turns): mixed 33.6 / 30.1 / 31.4, compiled
#: 36.3 / 38.6 / 35.0, within the host's spread of each other.
PACK_TOKENS = {"bfloat16": 4096, "float16": 4096, "mixed": 1024, "float32": 512}
DEFAULT_PACK_TOKENS = PACK_TOKENS["float32"]

#: query rows per attention block, by dtype (see :mod:`culture_probe.engine.tree_attention`).
#: mixed attends in float32, where the keys a block pads to cost most: with fused layers, on
#: every 4th values-study prompt (three turns each), blocks of 32 rows scored 50.6 / 53.8 / 53.9
#: prompts/s against 49.6 / 51.3 / 50.9 with 64 (120 query-key pairs a node, padding included,
#: against 151). With the kernel attending (no block padded to the widest), 200 prompts scored
#: 17.5 / 19.2 / 18.5 prompts/s with blocks of 16 / 32 / 64 rows (mean of three turns each).
BLOCK_ROWS = {"mixed": 32}

#: prompt ends that go through the vocabulary projection together. A pack ends only 20 or so
#: prompts, and the projection's float32 weight (113 MB for the embedded model) is read from memory
#: once a call: one call for several packs read it once for all of them (3% of mixed's scoring
#: time before, with 256). 256 rows of logits and log-probabilities take 100 MB.
LEAVES_PER_PROJECTION = 256


def default_pack_tokens(dtype: str) -> int:
    """The pack size that scored fastest for a dtype (see :data:`PACK_TOKENS`)."""
    return PACK_TOKENS.get(dtype, DEFAULT_PACK_TOKENS)


@dataclass
class PrefixTreePack:
    """Prompts laid out as one sequence of prefix-tree nodes.

    Attributes:
        token_ids: the token of each node, in depth-first order.
        positions: each node's depth in its prompt (the position id it would have alone).
        ancestors: for each node, the nodes on its path from the root, itself included.
        members: the caller's index of each prompt in the pack.
        leaves: for each member, the node holding its last token.
    """

    token_ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    ancestors: list[list[int]] = field(default_factory=list)
    members: list[int] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)

    def attention_mask(self) -> Any:
        """``[1, 1, n, n]`` booleans: node i attends to node j when j is on i's path."""
        import torch

        size = len(self.token_ids)
        mask = torch.zeros((size, size), dtype=torch.bool)
        for node, path in enumerate(self.ancestors):
            mask[node, path] = True
        return mask[None, None]


def pack_prefix_trees(
    sequences: Sequence[Sequence[int]], pack_tokens: int = DEFAULT_PACK_TOKENS
) -> list[PrefixTreePack]:
    """Lay out token sequences as prefix trees, at most ``pack_tokens`` nodes a pack.

    Sequences are visited in lexicographic order, so each shares the longest possible prefix with
    the one before it; a sequence that does not fit starts a new pack (one longer than
    ``pack_tokens`` gets a pack of its own). Identical sequences share all their nodes.

    Example:
        >>> [pack] = pack_prefix_trees([[1, 2, 3], [1, 2, 4]])
        >>> pack.token_ids, pack.positions, pack.leaves
        ([1, 2, 3, 4], [0, 1, 2, 2], [2, 3])
    """
    order = sorted(range(len(sequences)), key=lambda index: list(sequences[index]))
    packs: list[PrefixTreePack] = []
    pack = PrefixTreePack()
    path: list[int] = []
    previous: Sequence[int] = ()
    for index in order:
        sequence = sequences[index]
        if not sequence:
            raise ValueError(f"sequence {index} is empty: nothing to score")
        shared = _common_prefix_length(previous, sequence) if pack.members else 0
        if pack.members and len(pack.token_ids) + len(sequence) - shared > pack_tokens:
            packs.append(pack)
            pack, shared = PrefixTreePack(), 0
        del path[shared:]
        for depth in range(shared, len(sequence)):
            path.append(len(pack.token_ids))
            pack.token_ids.append(int(sequence[depth]))
            pack.positions.append(depth)
            pack.ancestors.append(list(path))
        pack.members.append(index)
        pack.leaves.append(path[len(sequence) - 1])
        previous = sequence
    if pack.members:
        packs.append(pack)
    return packs


def _common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length
