"""Llama-style decoder layers in five passes around the split kernel, for ``mixed`` on packed trees.

Uncompiled, a transformers decoder layer under ``mixed`` spends a third of its time outside its
matrix products: RMSNorm, the rotary embedding, SiLU and the residual sums are each a few PyTorch
operations, and each operation is a pass over the whole pack in float32 (on the values study,
0.18 of 0.61 ms per token). The split kernel (:mod:`culture_probe.engine.split_kernel`) already
reads every input row once to split it, and writes every output block once, so this work can ride
along. A fused layer is

1. ``qkv = RMSNorm(x) @ [Wq; Wk; Wv].T``: the norm applied to each row as the kernel splits it;
2. the rotary embedding of q and k, in place, in one pass;
3. attention over the pack's tree (:mod:`culture_probe.engine.tree_attention`), then
   ``x = x + attention @ Wo.T``: the residual sum in the product's epilogue. With heads of a
   multiple of 64 the kernel attends itself (:meth:`SplitKernel.tree_attention`): each block over
   its own keys rather than the widest block's, each key head read once for the query heads that
   share it. On a values-study pack of 1,023 nodes that took 2.0 ms a layer against 7.4 ms for
   PyTorch's attention on the same blocks, and scoring 200 prompts went from 17.2 to 18.9
   prompts/s (3 runs each);
4. ``h = silu(RMSNorm(x) @ Wg.T) * (RMSNorm(x) @ Wu.T)``: norm, both products and the gate in
   one call, each output block of the gate next to the same block of the up projection;
5. ``x = x + h @ Wd.T``.

The model's last layer can stop early: its keys and values (step 1) and so its attention (step 3)
need every node, but its output only matters at the rows whose logits are read, one a prompt. Given
those rows as ``leaf_rows``, the last fused layer keeps them alone after attention, so that its
output projection and MLP, two thirds of a layer's products, run on a few rows instead of every
node; the model then returns ``[1, len(leaf_rows), hidden]``. On the values study that is one
layer in 30 nearly skipped, with the kept rows' values unchanged to the bit (tested).

Every step computes what transformers' layer computes, in float32 and in the same operations,
except for the order of the norm's sum of squares, the SiLU's exponential (Cephes' where
PyTorch uses SLEEF's) and, where the kernel attends, the attention's order of sums and its
exponential (Cephes' again); a difference in the last bit can move an activation's integer step (the
tiles' int8 remainder, AVX-512's int16 value) by one, so the scores agree with the layer-by-layer
path to within 0.001 bits on the tiles and 0.003 with AVX-512 (tested), not exactly.
On the whole values study (4,144 prompts) fused layers scored 1.52 times as many prompts a second
as transformers' layers around the same kernel, 0.0063 against 0.0061 bits from float32 at most.

Only layers whose computation is known to be this one are fused: transformers'
``LlamaDecoderLayer`` (Llama, SmolLM2 and the many models that reuse it) without biases, with
SiLU, head and intermediate widths the kernel's blocks divide, and every projection packed for
the kernel. Any call that is not a single packed tree (padded batches, generation, a key/value
cache) goes through the layer's own forward, which still uses the kernel projection by
projection.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from culture_probe.engine.split_kernel import ALIGNMENT, PackedWeight, SplitKernel, split_kernel
from culture_probe.engine.tree_attention import tree_attention_on_rows

#: the decoder layer classes whose forward :func:`fused_layer_forward` reproduces
FUSABLE_LAYERS = ("LlamaDecoderLayer",)


@dataclass(frozen=True)
class FusedLayerWeights:
    """What a fused layer needs: its packed products, its norms and its attention's shape."""

    qkv: PackedWeight
    output: PackedWeight
    gate_up: PackedWeight
    down: PackedWeight
    input_norm: Any  # float32 [hidden]
    post_norm: Any  # float32 [hidden]
    eps: float
    heads: int
    kv_heads: int
    head_dim: int


def fusable_weights(layer: Any) -> FusedLayerWeights | None:
    """The packed weights of a layer :func:`use_fused_layers` can fuse, or ``None``."""
    if type(layer).__name__ not in FUSABLE_LAYERS:
        return None
    attention, mlp = layer.self_attn, layer.mlp
    qkv = _shared_packed(attention.q_proj, attention.k_proj, attention.v_proj)
    output = _shared_packed(attention.o_proj)
    gate_up = _shared_packed(mlp.gate_proj, mlp.up_proj)
    down = _shared_packed(mlp.down_proj)
    norms = (layer.input_layernorm, layer.post_attention_layernorm)
    head_dim = int(attention.head_dim)
    silu = type(mlp.act_fn).__name__ in ("SiLUActivation", "SiLU")
    if None in (qkv, output, gate_up, down) or not silu or head_dim % ALIGNMENT:
        return None
    if mlp.gate_proj.out_features % ALIGNMENT or not all(_is_rms_norm(norm) for norm in norms):
        return None
    assert qkv and output and gate_up and down  # narrowed for the type checker
    heads = attention.q_proj.out_features // head_dim
    kv_heads = attention.k_proj.out_features // head_dim
    return FusedLayerWeights(
        qkv=qkv,
        output=output,
        gate_up=gate_up,
        down=down,
        input_norm=norms[0].weight.detach().float().contiguous(),
        post_norm=norms[1].weight.detach().float().contiguous(),
        eps=float(norms[0].variance_epsilon),
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
    )


def _shared_packed(*members: Any) -> PackedWeight | None:
    """The packed weight that ``members`` share, in their order, without biases; else ``None``."""
    shared: Any = getattr(members[0], "shared", None)
    if shared is None or shared.bias is not None or shared.members != len(members):
        return None
    column = 0
    for member in members:
        if getattr(member, "shared", None) is not shared or member.column != column:
            return None
        column += member.out_features
    packed: PackedWeight | None = shared.kernel_packed()
    return packed


def _is_rms_norm(norm: Any) -> bool:
    """transformers' Llama RMSNorm: ``weight * (x / sqrt(mean(x ** 2) + eps))``."""
    return type(norm).__name__ == "LlamaRMSNorm" and hasattr(norm, "variance_epsilon")


def use_fused_layers(model: Any) -> int:
    """Fuse every fusable decoder layer of ``model`` (prepared by ``use_mixed_precision`` with
    packed weights, its attention the tree attention); returns how many layers were fused."""
    kernel = split_kernel()
    layers = getattr(getattr(model, "model", None), "layers", None)
    if kernel is None or layers is None:
        return 0
    fused = 0
    for index, layer in enumerate(layers):
        weights = fusable_weights(layer)
        if weights is not None:
            own_forward = type(layer).forward.__get__(layer)
            last = index == len(layers) - 1
            layer.forward = functools.partial(
                fused_layer_forward, kernel, weights, layer.self_attn, own_forward, last
            )
            fused += 1
    return fused


def keeps_leaf_rows(model: Any) -> bool:
    """Whether ``model``'s last decoder layer is fused, so that ``leaf_rows`` trims its output."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    forward = getattr(layers[-1], "forward", None) if layers else None
    return isinstance(forward, functools.partial) and forward.func is fused_layer_forward


def fused_layer_forward(
    kernel: SplitKernel,
    weights: FusedLayerWeights,
    attention: Any,
    own_forward: Any,
    last: bool,
    hidden_states: Any,
    attention_mask: Any = None,
    position_ids: Any = None,
    past_key_values: Any = None,
    use_cache: bool | None = False,
    position_embeddings: Any = None,
    **kwargs: Any,
) -> Any:
    """The layer on one packed tree (``tree_blocks`` given); its own forward for anything else.

    In the model's ``last`` layer, ``leaf_rows`` (a LongTensor of node indices) keeps only those
    rows after attention, in that order.
    """
    blocks = kwargs.get("tree_blocks")
    if blocks is None or past_key_values is not None or hidden_states.shape[0] != 1:
        return own_forward(
            hidden_states,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            position_embeddings=position_embeddings,
            **kwargs,
        )
    w = weights
    residual = hidden_states[0]
    qkv = kernel.product(residual, w.qkv, norm=w.input_norm, eps=w.eps)
    cos, sin = position_embeddings
    kernel.rotate(qkv, w.heads + w.kv_heads, cos[0], sin[0])
    scaling = float(attention.scaling)
    if kernel.attends(w.head_dim):
        attended = kernel.tree_attention(qkv, blocks, w.heads, w.kv_heads, w.head_dim, scaling)
    else:
        attended = tree_attention_on_rows(qkv, blocks, w.heads, w.kv_heads, w.head_dim, scaling)
    leaf_rows = kwargs.get("leaf_rows") if last else None
    if leaf_rows is not None:
        attended, residual = attended[leaf_rows], residual[leaf_rows]
    residual = kernel.product(attended, w.output, residual=residual)
    gated = kernel.product(residual, w.gate_up, norm=w.post_norm, eps=w.eps, gated=True)
    return kernel.product(gated, w.down, residual=residual)[None]
