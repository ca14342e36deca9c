"""The split-bfloat16 matrix product behind ``--dtype mixed``, against exact float64 arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from culture_probe.backends.hf import HFBackend
from culture_probe.engine import pick_dtype, split_kernel
from culture_probe.engine.mixed import (
    SharedInputProduct,
    TailChannels,
    calibrate_tail_channels,
    linear_bfloat16_split,
    release_file_pages,
    safetensors_mappings,
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
    assert pick_dtype("mixed", "cpu") == "mixed"
    with pytest.raises(CultureProbeError, match="unknown dtype 'float8'"):
        pick_dtype("float8", "cpu")
    with pytest.raises(CultureProbeError, match="mixed is for CPUs"):
        pick_dtype("mixed", "cuda")


def test_auto_is_mixed_only_where_the_split_kernel_runs(request: pytest.FixtureRequest) -> None:
    # without the kernel, mixed's MKL products are slower than float32 on some CPUs (AMD Zen 4)
    expected = "mixed" if split_kernel.cpu_builds() else "float32"
    assert pick_dtype("auto", "cpu") == expected
    request.getfixturevalue("without_kernel")
    assert pick_dtype("auto", "cpu") == "float32"


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


def test_tail_channels_carry_their_remainder_and_the_others_are_rounded_once() -> None:
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(9, 8, generator=generator).to(torch.bfloat16)
    inputs = torch.randint(-60_000, 60_000, (4, 8), generator=generator).float()
    chosen = torch.tensor([1, 6])
    tail = TailChannels(chosen, weight.index_select(1, chosen).contiguous())

    product = linear_bfloat16_split(inputs, weight, tail)

    # worked by hand: channels 1 and 6 exactly, the other six rounded to bfloat16 first
    expected_inputs = inputs.to(torch.bfloat16).double()
    expected_inputs[:, chosen] = inputs[:, chosen].double()
    expected = expected_inputs @ weight.double().T
    assert torch.allclose(product.double(), expected, rtol=1e-6, atol=1e-6 * expected.abs().max())
    assert not torch.allclose(product, linear_bfloat16_split(inputs, weight), rtol=1e-6)


def test_an_empty_tail_is_a_single_bfloat16_product() -> None:
    torch.manual_seed(4)
    weight, inputs = torch.randn(5, 6).to(torch.bfloat16), torch.randn(3, 6)
    tail = TailChannels(torch.tensor([], dtype=torch.long), weight[:, :0].contiguous())

    product = linear_bfloat16_split(inputs, weight, tail)

    rounded = inputs.to(torch.bfloat16).double() @ weight.double().T
    assert torch.allclose(product.double(), rounded, atol=1e-6)


def test_the_tail_is_the_channels_whose_rounding_costs_most() -> None:
    linear = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():  # column norms squared: 1, 4, 9, 1
        linear.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
    product = SharedInputProduct([linear])
    product.start_calibration()
    # summed squares per channel: 100, 1, 1, 25; scores 100, 4, 9, 25
    product.output_for(torch.tensor([[10.0, 1.0, 1.0, 3.0], [0.0, 0.0, 0.0, 4.0]]))

    product.keep_tail(2)

    assert product.tail is not None
    assert product.tail.channels.tolist() == [0, 3]
    assert torch.equal(product.tail.weight, product.weight[:, [0, 3]])
    with pytest.raises(RuntimeError, match="start_calibration"):
        product.keep_tail(2)


class TinyDecoder(torch.nn.Module):
    """Token ids in, the projections called the way a decoder layer calls them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(10, 16)
        self.attention = Projections()

    def forward(self, input_ids: torch.Tensor, **_: object) -> torch.Tensor:
        hidden = self.embed(input_ids)
        queries = self.attention.q_proj(hidden)
        keys = self.attention.k_proj(hidden).repeat(1, 1, 3)
        values = self.attention.v_proj(hidden).repeat(1, 1, 3)
        return self.attention.o_proj(queries * keys + values)


def test_calibration_gives_every_product_its_tail_and_none_means_every_channel() -> None:
    torch.manual_seed(5)
    model = TinyDecoder()
    use_mixed_precision(model, keep=())
    shared_qkv, own_o = model.attention.q_proj.shared, model.attention.o_proj.shared

    calibrate_tail_channels(model, [1, 2, 3, 4], channels=3)
    assert shared_qkv.tail is not None and own_o.tail is not None
    assert len(shared_qkv.tail.channels) == len(own_o.tail.channels) == 3

    calibrate_tail_channels(model, [1, 2, 3, 4], channels=None)
    assert shared_qkv.tail is None and own_o.tail is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-1, "tail_channels must be a number of at least 0, got -1"),
        (2.5, "tail_channels expects a whole number"),
        ("many", "tail_channels expects a whole number"),
        (True, "tail_channels expects a whole number"),
    ],
)
def test_a_tail_that_is_not_a_channel_count_is_refused_before_loading(
    value: object, expected: str
) -> None:
    with pytest.raises(CultureProbeError, match=expected):
        HFBackend(model="embedded", dtype="mixed", tail_channels=value)  # type: ignore[arg-type]


def _tiny_llama_on_disk(folder: Path) -> Path:
    """A two-layer Llama saved as safetensors, which transformers maps from the file on load."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(11)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_file_pages_of_read_weights_are_dropped_and_read_back_unchanged(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder = _tiny_llama_on_disk(tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    weight = model.model.layers[0].mlp.up_proj.weight.detach()
    start = weight.data_ptr()
    assert any(low <= start < high for low, high in safetensors_mappings())
    before = weight.clone()
    released = release_file_pages([weight])
    # 512 x 256 float32 is 128 pages; the partial pages at either end stay
    assert 126 * 4096 <= released <= weight.numel() * 4
    assert torch.equal(weight, before)  # the pages come back from the file
    in_memory = torch.randn(512, 256)
    kept = in_memory.clone()
    assert release_file_pages([in_memory]) == 0 and torch.equal(in_memory, kept)


def test_mixed_precision_on_a_mapped_model_equals_it_on_a_copy_in_memory(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder = _tiny_llama_on_disk(tmp_path / "tiny")
    mapped = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    copied = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    for parameter in copied.parameters():
        parameter.data = parameter.data.clone()  # anonymous memory: nothing to release
    use_mixed_precision(mapped)
    use_mixed_precision(copied)
    ids = torch.tensor([[1, 5, 9, 200, 17]])
    with torch.inference_mode():
        assert torch.equal(mapped(input_ids=ids).logits, copied(input_ids=ids).logits)
