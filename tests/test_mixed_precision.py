"""The split-bfloat16 matrix product behind ``--dtype mixed``, against exact float64 arithmetic."""

from __future__ import annotations

import pytest
import torch

from culture_probe.backends.hf import pick_dtype
from culture_probe.backends.mixed import linear_bfloat16_split, split_linear_class
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


def test_accumulate_adds_to_the_output() -> None:
    weight = torch.ones(2, 3, dtype=torch.bfloat16)
    inputs = torch.tensor([[1.0, 2.0, 3.0]])
    out = torch.full((1, 2), 10.0)

    linear_bfloat16_split(inputs, weight, accumulate=True, out=out)

    assert out.tolist() == [[16.0, 16.0]]


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
