"""Fused decoder layers under ``mixed``: the kernel's folded-in steps, and whole layers against
transformers' own, on a small Llama built from its configuration."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from culture_probe.engine.fused import fusable_weights, keeps_leaf_rows, use_fused_layers
from culture_probe.engine.mixed import use_mixed_precision
from culture_probe.engine.packing import pack_prefix_trees
from culture_probe.engine.split_kernel import SplitKernel
from culture_probe.engine.tree_attention import tree_blocks, use_tree_attention

pytestmark = pytest.mark.split_kernel


def packed_weight(kernel: SplitKernel, columns: int, inner: int, seed: int) -> Any:
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(columns, inner, generator=generator) * 0.05).to(torch.bfloat16)
    return kernel.pack(weight)


@pytest.mark.parametrize("rows", [5, 100])  # 5: fewer bands than threads, so columns are shared
def test_the_norm_folded_into_the_split_is_transformers_rmsnorm(
    kernel: SplitKernel, rows: int
) -> None:
    generator = torch.Generator().manual_seed(rows)
    inputs = torch.randn(rows, 576, generator=generator) * 3
    norm = torch.rand(576, generator=generator) + 0.5
    packed = packed_weight(kernel, 192, 576, 1)
    eps = 1e-5
    # transformers' LlamaRMSNorm, written out
    normalised = inputs * torch.rsqrt(inputs.pow(2).mean(-1, keepdim=True) + eps) * norm

    folded = kernel.product(inputs, packed, norm=norm, eps=eps)

    after = kernel.product(normalised, packed)
    scale = after.abs().max()
    # the sum of squares is added in another order: a last-bit difference in a normalised input
    # can move its integer step by one, about 2**-15 of the row's largest value for the tiles'
    # int8 remainder and 2**-13 of its group's for the AVX-512 build's int16 inputs
    assert (folded - after).abs().max() < {"amx": 1e-5, "avx512": 5e-5}[kernel.build] * scale
    assert not torch.allclose(folded, kernel.product(inputs, packed), atol=0.1 * scale)


def test_the_residual_is_added_to_the_product(kernel: SplitKernel) -> None:
    inputs, residual = torch.randn(70, 64), torch.randn(70, 96)
    packed = packed_weight(kernel, 96, 64, 2)

    summed = kernel.product(inputs, packed, residual=residual)

    assert torch.equal(summed, residual + kernel.product(inputs, packed))
    with pytest.raises(ValueError, match=r"the residual is \(70, 64\), not \(70, 96\)"):
        kernel.product(inputs, packed, residual=residual[:, :64])


@pytest.mark.parametrize("rows", [3, 70])
def test_a_gated_product_is_silu_of_the_gate_times_the_up_projection(
    kernel: SplitKernel, rows: int
) -> None:
    generator = torch.Generator().manual_seed(3)
    # inputs large enough that the gate reaches far into both tails of SiLU
    inputs = torch.randn(rows, 128, generator=generator) * 100
    packed = packed_weight(kernel, 256, 128, 3)

    gated = kernel.product(inputs, packed, gated=True)

    both = kernel.product(inputs, packed)
    gate, up = both[:, :128], both[:, 128:]
    assert gate.min() < -90 and gate.max() > 90  # e^90 is beyond float32
    expected = torch.nn.functional.silu(gate) * up
    assert gated.shape == (rows, 128)
    # the exponential is Cephes' polynomial where PyTorch uses SLEEF's: a few float32 ulps apart
    assert torch.allclose(gated, expected, rtol=1e-6, atol=1e-30)
    with pytest.raises(ValueError, match="two halves of whole blocks, not 96"):
        kernel.product(inputs, packed_weight(kernel, 96, 128, 4), gated=True)


def test_the_rotary_embedding_in_place_is_transformers_to_the_bit(kernel: SplitKernel) -> None:
    rows, heads, kv_heads, head_dim = 37, 3, 1, 64
    generator = torch.Generator().manual_seed(5)
    states = torch.randn(rows, (heads + 2 * kv_heads) * head_dim, generator=generator)
    angles = torch.rand(rows, head_dim // 2, generator=generator) * 100
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    query = states[:, : heads * head_dim].view(rows, heads, head_dim).transpose(0, 1)[None]
    key = states[:, heads * head_dim : (heads + kv_heads) * head_dim]
    key = key.view(rows, kv_heads, head_dim).transpose(0, 1)[None]
    rotated_query, rotated_key = apply_rotary_pos_emb(query, key, cos[None], sin[None])

    mine = states.clone()
    kernel.rotate(mine, heads + kv_heads, cos, sin)

    width = heads * head_dim
    assert torch.equal(
        mine[:, :width].view(rows, heads, head_dim).transpose(0, 1), rotated_query[0]
    )
    key_part = mine[:, width : width + kv_heads * head_dim].view(rows, kv_heads, head_dim)
    assert torch.equal(key_part.transpose(0, 1), rotated_key[0])
    assert torch.equal(
        mine[:, width + kv_heads * head_dim :], states[:, width + kv_heads * head_dim :]
    )


def small_llama(seed: int = 11, head_dim: int = 32) -> Any:
    """A two-layer Llama of random weights, of the embedded model's proportions, in float32."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=128,
        intermediate_size=320,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms away from 1, so that folding them in is seen
        for layer in model.model.layers:
            layer.input_layernorm.weight.uniform_(0.5, 1.5)
            layer.post_attention_layernorm.weight.uniform_(0.5, 1.5)
    return model


def tree_forward(model: Any, sequences: list[list[int]], **extra: Any) -> Any:
    """The last hidden state of one packed prefix tree of ``sequences``, as the backend runs it."""
    [pack] = pack_prefix_trees(sequences)
    with torch.inference_mode():
        return model.model(
            input_ids=torch.tensor([pack.token_ids]),
            position_ids=torch.tensor([pack.positions]),
            attention_mask=torch.ones((1, 1, 1, 1), dtype=torch.bool),
            use_cache=False,
            tree_blocks=tree_blocks(pack.positions, rows=16),
            **extra,
        ).last_hidden_state[0]


# heads of 64 attend in the kernel, heads of 32 through PyTorch's attention
@pytest.mark.parametrize("head_dim", [32, 64])
def test_fused_layers_compute_what_transformers_layers_compute(head_dim: int) -> None:
    generator = torch.Generator().manual_seed(6)
    trunk = torch.randint(0, 300, (40,), generator=generator).tolist()
    sequences = [
        trunk + torch.randint(0, 300, (n,), generator=generator).tolist() for n in (9, 30, 3)
    ]
    model = small_llama(head_dim=head_dim)
    use_tree_attention(model)
    exact = tree_forward(model, sequences)
    use_mixed_precision(model, keep=("lm_head",), pack=True)
    by_layer = tree_forward(model, sequences)

    assert use_fused_layers(model) == 2
    fused = tree_forward(model, sequences)

    scale = exact.abs().max()
    # the same float32 steps up to their order, around the same products (measured: 2e-5 with
    # the tiles; with the AVX-512 build none when PyTorch attends, 9e-5 when the kernel does in
    # another order, where a last bit moves an int16 step, 1/8191 of its group's largest input)
    assert (fused - by_layer).abs().max() < 3e-4 * scale
    # both as close to float32 as bfloat16 weights allow, and not float32 itself
    assert (by_layer - exact).abs().max() > 1e-4 * scale
    assert (fused - exact).abs().max() < 2 * (by_layer - exact).abs().max()


def test_the_last_layer_keeps_the_leaf_rows_alone_and_their_values_to_the_bit() -> None:
    generator = torch.Generator().manual_seed(8)
    trunk = torch.randint(0, 300, (30,), generator=generator).tolist()
    sequences = [trunk + torch.randint(0, 300, (n,), generator=generator).tolist() for n in (5, 12)]
    model = small_llama()
    use_tree_attention(model)
    use_mixed_precision(model, keep=("lm_head",), pack=True)
    assert not keeps_leaf_rows(model)
    use_fused_layers(model)
    assert keeps_leaf_rows(model)
    [pack] = pack_prefix_trees(sequences)
    every_row = tree_forward(model, sequences)

    leaves = torch.tensor(pack.leaves)
    kept = tree_forward(model, sequences, leaf_rows=leaves)

    assert kept.shape == (2, 128)
    assert torch.equal(kept, every_row[leaves])


def test_calls_other_than_a_packed_tree_go_through_the_layers_own_forward() -> None:
    model = small_llama()
    use_tree_attention(model)
    use_mixed_precision(model, keep=("lm_head",), pack=True)
    ids = torch.tensor([[5, 9, 2, 7, 7, 1], [0, 0, 3, 8, 4, 4]])
    mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]])
    with torch.inference_mode():
        before = model(input_ids=ids, attention_mask=mask).logits
        use_fused_layers(model)
        after = model(input_ids=ids, attention_mask=mask).logits

    assert torch.equal(before, after)  # a padded batch: the very same computation


def test_layers_that_are_not_llama_s_or_not_packed_are_left_alone() -> None:
    model = small_llama()
    assert fusable_weights(model.model.layers[0]) is None  # plain float32 projections
    use_mixed_precision(model, keep=("lm_head",), pack=True)
    assert fusable_weights(model.model.layers[0]) is not None
    model.model.layers[0].mlp.act_fn = torch.nn.GELU()
    assert fusable_weights(model.model.layers[0]) is None
    assert use_fused_layers(model) == 1
