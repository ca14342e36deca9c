"""The split-bfloat16 matrix product behind ``--dtype mixed``, against exact float64 arithmetic."""

from __future__ import annotations

import pytest
import torch

from culture_probe.backends.hf import pick_dtype
from culture_probe.backends.mixed import (
    linear_bfloat16_split,
    split_linear_class,
    use_mixed_precision,
)
from culture_probe.errors import CultureProbeError


def test_inputs_held_by_two_bfloat16_parts_give_the_exact_product() -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(37, 64, generator=generator).to(torch.bfloat16)
    # integers below 2**16 need 16 significant bits: more than one bfloat16 holds, exactly two
    inputs = torch.randint(-60_000, 60_000, (5, 64), generator=generator).float()

    product = linear_bfloat16_split(inputs, weight)

    exact = inputs.double() @ weight.double().T
    # float32 accumulation of exact products: relative error of float32 rounding only
    assert torch.allclose(product.double(), exact, rtol=1e-6, atol=1e-6 * exact.abs().max())
    # a single bfloat16 rounding of the inputs would be off by far more
    rounded = inputs.to(torch.bfloat16).double() @ weight.double().T
    assert (rounded - exact).abs().max() > 100 * (product.double() - exact).abs().max()


def test_split_linear_matches_nn_linear_with_rounded_weights_and_keeps_the_bias() -> None:
    torch.manual_seed(1)
    linear = torch.nn.Linear(48, 20)
    inputs = torch.randn(2, 7, 48)
    module = split_linear_class()(linear)

    out = module(inputs)

    rounded = torch.nn.functional.linear(
        inputs.double(), linear.weight.detach().to(torch.bfloat16).double(), linear.bias.double()
    )
    assert out.shape == (2, 7, 20)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), rounded, atol=1e-5)


def test_an_empty_batch_gives_an_empty_output() -> None:
    weight = torch.ones(4, 3, dtype=torch.bfloat16)

    assert linear_bfloat16_split(torch.empty(0, 3), weight).shape == (0, 4)


def test_dtype_choices_are_checked_and_mixed_is_for_cpus() -> None:
    assert pick_dtype("float32", "cpu") == "float32"
    assert pick_dtype("auto", "cpu") in ("mixed", "float32")
    with pytest.raises(CultureProbeError, match="unknown dtype 'float8'"):
        pick_dtype("float8", "cpu")
    with pytest.raises(CultureProbeError, match="mixed is for CPUs"):
        pick_dtype("mixed", "cuda")


class Projections(torch.nn.Module):
    """The shape of a decoder's attention: three projections of one input, one of another."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(16, 12)
        self.k_proj = torch.nn.Linear(16, 4)
        self.v_proj = torch.nn.Linear(16, 4, bias=False)
        self.o_proj = torch.nn.Linear(12, 16)


def test_projections_of_one_input_share_one_product_and_match_their_own() -> None:
    torch.manual_seed(2)
    reference = Projections()
    model = Projections()
    model.load_state_dict(reference.state_dict())

    swapped = use_mixed_precision(model, keep=())

    assert swapped == 4
    shared = model.q_proj.shared
    assert model.v_proj.shared is shared and model.o_proj.shared is not shared
    assert shared.members == 3 and model.o_proj.shared.members == 1
    inputs, other = torch.randn(3, 16), torch.randn(3, 16)
    for name in ("q_proj", "k_proj", "v_proj"):
        expected = torch.nn.functional.linear(
            inputs.double(),
            getattr(reference, name).weight.detach().to(torch.bfloat16).double(),
            None
            if getattr(reference, name).bias is None
            else getattr(reference, name).bias.double(),
        )
        assert torch.allclose(getattr(model, name)(inputs).double(), expected, atol=1e-5)
    # every member has taken its columns: nothing is held until the next input
    assert shared._input is None and shared._output is None
    # a member called with another tensor computes for that tensor
    assert torch.allclose(model.k_proj(other), reference.k_proj(other), atol=0.05)
    assert not torch.allclose(model.k_proj(other), model.k_proj(inputs))
