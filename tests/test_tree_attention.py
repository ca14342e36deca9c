"""Sparse attention over a packed prefix tree against dense masked attention on the same pack."""

from __future__ import annotations

import random

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from culture_probe.engine.packing import pack_prefix_trees
from culture_probe.engine.split_kernel import split_kernel
from culture_probe.engine.tree_attention import (
    tree_attention_forward,
    tree_attention_on_rows,
    tree_blocks,
)


class GroupedAttention(torch.nn.Module):
    """Stands in for a decoder's attention module: the function reads nothing else from it."""

    num_key_value_groups = 3
    is_causal = True


def random_pack(seed: int) -> list[list[int]]:
    """Prompts that share a few system prompts and questions, like a persona study's."""
    rng = random.Random(seed)
    systems = [[rng.randrange(50) for _ in range(rng.randint(3, 9))] for _ in range(3)]
    questions = [[rng.randrange(50) for _ in range(rng.randint(2, 6))] for _ in range(4)]
    return [
        rng.choice(systems) + rng.choice(questions) + [rng.randrange(50) for _ in range(4)]
        for _ in range(12)
    ]


@pytest.mark.parametrize("rows", [1, 5, 7, 64])
def test_tree_blocks_give_what_dense_masked_attention_gives(rows: int) -> None:
    [pack] = pack_prefix_trees(random_pack(seed=rows), pack_tokens=10_000)
    nodes = len(pack.token_ids)
    generator = torch.Generator().manual_seed(rows)
    query = torch.randn(1, 9, nodes, 16, generator=generator)
    key = torch.randn(1, 3, nodes, 16, generator=generator)
    value = torch.randn(1, 3, nodes, 16, generator=generator)

    sparse, _ = tree_attention_forward(
        GroupedAttention(), query, key, value, None, scaling=0.25,
        tree_blocks=tree_blocks(pack.positions, rows=rows),
    )  # fmt: skip

    dense = scaled_dot_product_attention(
        query,
        key.repeat_interleave(3, dim=1),
        value.repeat_interleave(3, dim=1),
        attn_mask=pack.attention_mask(),
        scale=0.25,
    ).transpose(1, 2)
    assert sparse.shape == (1, nodes, 9, 16)
    assert torch.allclose(sparse, dense, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 7, 32])
def test_attention_on_projection_rows_is_the_interface_s_attention(rows: int) -> None:
    [pack] = pack_prefix_trees(random_pack(seed=rows + 1), pack_tokens=10_000)
    nodes = len(pack.token_ids)
    # each node's 6 query heads, 2 key heads and 2 value heads side by side, as a fused product
    states = torch.randn(nodes, (6 + 2 + 2) * 16, generator=torch.Generator().manual_seed(rows))
    query, key, value = (
        part.view(nodes, -1, 16).transpose(0, 1)[None] for part in states.split([96, 32, 32], 1)
    )
    blocks = tree_blocks(pack.positions, rows=rows)

    on_rows = tree_attention_on_rows(states, blocks, heads=6, kv_heads=2, head_dim=16, scaling=0.25)

    per_head, _ = tree_attention_forward(
        GroupedAttention(), query, key, value, None, scaling=0.25, tree_blocks=blocks
    )
    assert on_rows.shape == (nodes, 96)
    assert torch.allclose(on_rows, per_head.reshape(nodes, 96), atol=1e-6)


@pytest.mark.split_kernel
@pytest.mark.parametrize(
    ("rows", "heads", "kv_heads", "head_dim"),
    [(1, 9, 3, 64), (5, 9, 3, 64), (32, 9, 3, 64), (64, 4, 4, 128), (7, 2, 1, 64)],
)
def test_the_kernel_s_tree_attention_is_dense_masked_attention(
    rows: int, heads: int, kv_heads: int, head_dim: int
) -> None:
    kernel = split_kernel()
    assert kernel is not None
    [pack] = pack_prefix_trees(random_pack(seed=rows + heads), pack_tokens=10_000)
    nodes = len(pack.token_ids)
    widths = (heads * head_dim, kv_heads * head_dim, kv_heads * head_dim)
    generator = torch.Generator().manual_seed(rows)
    states = 3 * torch.randn(nodes, sum(widths), generator=generator)
    blocks = tree_blocks(pack.positions, rows=rows)

    mine = kernel.tree_attention(states, blocks, heads, kv_heads, head_dim, scaling=0.125)

    # float64 over every pair, the tree's mask keeping each node's ancestors and itself
    query, key, value = (
        part.double().view(nodes, -1, head_dim).transpose(0, 1) for part in states.split(widths, 1)
    )
    dense = scaled_dot_product_attention(
        query,
        key.repeat_interleave(heads // kv_heads, dim=0),
        value.repeat_interleave(heads // kv_heads, dim=0),
        attn_mask=pack.attention_mask()[0],
        scale=0.125,
    )
    assert mine.shape == (nodes, heads * head_dim)
    # float32's rounding of scores of up to about 30, through the exponential: 4e-5 measured,
    # as much as PyTorch's own float32 attention is off; a wrong key seen or missed is off by ~1
    assert torch.allclose(mine.double(), dense.transpose(0, 1).reshape(nodes, -1), atol=1e-4)


def test_each_block_gathers_only_the_keys_its_rows_can_see() -> None:
    depths = [0, 1, 2, 1, 2]  # paths 0, 0-1, 0-1-2, 0-3, 0-3-4

    blocks = tree_blocks(depths, rows=3)

    assert blocks.keys.tolist() == [[0, 1, 2], [0, 3, 4]]  # not 1 and 2 for the second block
    assert (blocks.mask[1, 0] == 0).tolist() == [
        [True, True, False],
        [True, True, True],
        [True, False, False],  # a padding row: node 0 alone
    ]
    assert blocks.pairs() == 3 * 3 + 2 * 3


def test_narrower_blocks_are_padded_with_keys_nobody_sees() -> None:
    depths = [0, 1, 2, 3, 1]  # paths 0, 0-1, 0-1-2, 0-1-2-3, 0-4

    blocks = tree_blocks(depths, rows=4)

    assert blocks.widths == (4, 2)
    assert blocks.keys.tolist() == [[0, 1, 2, 3], [0, 4, 0, 0]]
    assert torch.isinf(blocks.mask[1, 0, :, 2:]).all()
    assert blocks.pairs() == 4 * 4 + 1 * 2


def test_without_blocks_it_is_causal_scaled_dot_product_attention() -> None:
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 5, 8, generator=generator) for _ in range(3))
    module = GroupedAttention()
    module.num_key_value_groups = 1

    output, _ = tree_attention_forward(module, query, key, value, None, scaling=0.5)

    expected = scaled_dot_product_attention(query, key, value, is_causal=True, scale=0.5)
    assert torch.allclose(output, expected.transpose(1, 2), atol=1e-6)


@pytest.mark.parametrize(("rows", "queries"), [(32, 1), (3, 7)])
def test_grouped_heads_under_a_mask_give_transformers_bits_without_copying_heads(
    rows: int, queries: int
) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    generator = torch.Generator().manual_seed(rows)
    query = torch.randn(rows, 9, queries, 64, generator=generator)
    # keys and values as a decoding step's cache holds them: a view of a longer buffer
    key, value = (torch.randn(rows, 3, 200, 64, generator=generator)[:, :, :130] for _ in range(2))
    mask = torch.zeros(rows, 1, queries, 130)
    mask[:, :, :, : rows % 5 + 1] = float("-inf")  # each row's own padding
    module = GroupedAttention()

    output, _ = tree_attention_forward(module, query, key, value, mask, scaling=0.125)

    # transformers copies each key/value head for its query heads first (repeat_kv)
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.125)
    assert torch.equal(output, expected)
    assert output.shape == (rows, queries, 9, 64) and output.is_contiguous()
