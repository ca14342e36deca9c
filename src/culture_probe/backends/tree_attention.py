"""Attention over a packed prefix tree, computing only the (query, key) pairs the tree needs.

A pack of prefix-tree nodes (see :func:`culture_probe.backends.hf.pack_prefix_trees`) lets each node
attend to its ancestors only: on the values study about 50 of the pack's 512 nodes. Dense attention
with a mask computes all 512 x 512 pairs and throws nine tenths away. Here the nodes are cut into
blocks of consecutive rows; each block gathers the keys its rows can see (the union of their paths,
which in depth-first order is a shared trunk plus the block's own branch) and attends to those alone,
with a mask over the gathered keys. Each query still sees exactly its ancestors with their own keys
and values, so the result is the dense one up to float summation order, at a few times fewer pairs.

The function is registered with transformers' ``AttentionInterface`` under :data:`NAME`; it takes
the blocks as the ``tree_blocks`` keyword of the model's forward call, and without them it is plain
scaled-dot-product attention, so padded batches and generation run unchanged on the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NAME = "culture_probe_tree"

#: query rows a block: smaller blocks gather fewer keys each but call attention more often
DEFAULT_BLOCK_ROWS = 64


@dataclass(frozen=True)
class TreeBlock:
    """Rows ``start:stop`` of a pack, the nodes they may attend to, and who sees whom."""

    start: int
    stop: int
    keys: Any  # LongTensor [m]: node indices, ascending
    mask: Any  # [1, 1, stop - start, m]: 0 where a row sees a key, -inf elsewhere


def tree_blocks(
    ancestors: Sequence[Sequence[int]],
    rows: int = DEFAULT_BLOCK_ROWS,
    device: str = "cpu",
    dtype: Any = None,
) -> list[TreeBlock]:
    """Cut a pack's nodes into blocks of ``rows`` with the keys and mask of each.

    The masks are additive, in the attention's ``dtype`` (float32 by default), so that the layers
    that share them do not each convert a boolean mask again.

    Example:
        >>> [block] = tree_blocks([[0], [0, 1], [0, 2]], rows=4)
        >>> block.keys.tolist(), (block.mask[0, 0] == 0).int().tolist()
        ([0, 1, 2], [[1, 0, 0], [1, 1, 0], [1, 0, 1]])
    """
    import torch

    blocks = []
    for start in range(0, len(ancestors), rows):
        stop = min(start + rows, len(ancestors))
        keys = sorted({node for path in ancestors[start:stop] for node in path})
        column = {node: index for index, node in enumerate(keys)}
        mask = torch.full((stop - start, len(keys)), float("-inf"), dtype=dtype or torch.float32)
        for row, path in enumerate(ancestors[start:stop]):
            mask[row, [column[node] for node in path]] = 0.0
        keys_tensor = torch.tensor(keys, dtype=torch.long, device=device)
        blocks.append(TreeBlock(start, stop, keys_tensor, mask[None, None].to(device)))
    return blocks


def tree_attention_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    tree_blocks: Sequence[TreeBlock] | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention for ``query [1, heads, n, d]`` over a pack's blocks; SDPA without blocks."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if tree_blocks is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    import torch
    from torch.nn.functional import scaled_dot_product_attention

    # grouped-query attention: each key/value head serves several query heads, which SDPA pairs
    # up itself, so only the key/value heads are gathered
    grouped = query.shape[1] != key.shape[1]
    output = torch.empty_like(query)
    for block in tree_blocks:
        output[:, :, block.start : block.stop] = scaled_dot_product_attention(
            query[:, :, block.start : block.stop],
            key.index_select(2, block.keys),
            value.index_select(2, block.keys),
            attn_mask=block.mask,
            scale=scaling,
            enable_gqa=grouped,
        )
    return output.transpose(1, 2).contiguous(), None


def use_tree_attention(model: Any) -> None:
    """Register the function (once) and make it the model's attention implementation."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, tree_attention_forward)
    # padded batches and generation still need transformers' causal masks: the SDPA kind
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
