"""The split kernel behind ``--dtype mixed``, against exact arithmetic, its formula and its layout."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from culture_probe.engine import split_kernel as kernel_module
from culture_probe.engine.mixed import (
    SharedInputProduct,
    kernel_projection_class,
    linear_bfloat16_split,
    use_compilable_products,
    use_mixed_precision,
)
from culture_probe.engine.split_kernel import (
    KERNEL_VARIABLE,
    SplitKernel,
    kernel_unavailable_reason,
    split_kernel,
)

#: left out of the collection on a CPU that cannot run the kernel (see conftest.py)
requires_kernel = pytest.mark.split_kernel


@pytest.fixture
def reloaded_kernel() -> Iterator[None]:
    """Forget the loaded kernel for one test, and find it again afterwards."""
    kernel_module._load.cache_clear()
    yield
    kernel_module._load.cache_clear()


@requires_kernel
@pytest.mark.parametrize(
    ("rows", "inner", "columns"),
    [(1, 32, 32), (31, 64, 96), (33, 96, 64), (70, 576, 960), (300, 160, 32)],
)
def test_products_of_integers_are_exact(
    kernel: SplitKernel, rows: int, inner: int, columns: int
) -> None:
    generator = torch.Generator().manual_seed(rows)
    # integers of up to 13 bits take both bfloat16 parts (8 bits each), or one int16 step each;
    # with weights of at most 4 over 576 terms no partial sum reaches 2**24, where float32 would
    # start to round
    inputs = torch.randint(-7_000, 7_001, (rows, inner), generator=generator).float()
    weight = torch.randint(-4, 5, (columns, inner), generator=generator).to(torch.bfloat16)

    product = kernel.product(inputs, kernel.pack(weight))

    exact = inputs.double() @ weight.double().T
    assert product.dtype == torch.float32 and product.shape == (rows, columns)
    assert torch.equal(product.double(), exact)


def power_of_two_scale(largest: torch.Tensor, levels: float = 127) -> torch.Tensor:
    """The smallest power of two ``s`` with ``largest / s <= levels``, and 0 for (near) zeros."""
    mantissa, exponent = torch.frexp(largest.float() / levels)
    exponent = torch.where(mantissa == 0.5, exponent - 1, exponent)
    scale = torch.ldexp(torch.ones_like(largest, dtype=torch.float32), exponent)
    return torch.where(largest > 2.0**-100, scale, torch.zeros_like(scale))


def integer_steps(rows: torch.Tensor, levels: float = 127) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's power-of-two scale, and the row in whole steps of it (rounded, ties to even)."""
    scales = power_of_two_scale(rows.abs().amax(dim=1), levels)
    return scales, torch.round(rows / torch.where(scales > 0, scales, 1).unsqueeze(1))


def split_formula(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The tiles' arithmetic in float64: bfloat16 head, int8 remainder and int8 weight."""
    weight = weight.to(torch.bfloat16)
    head = inputs.to(torch.bfloat16)
    rest = inputs - head.float()  # exact in float32
    row_scales, steps = integer_steps(rest)
    column_scales, weight_steps = integer_steps(weight.float())
    rest_product = steps.double() @ weight_steps.double().T
    scaled = rest_product * row_scales.double().unsqueeze(1) * column_scales.double()
    return head.double() @ weight.double().T + scaled


def int16_formula(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The AVX-512 build's arithmetic in float64: int16 steps of each group of 64 inputs (at most
    8191) and of each weight column (at most 4095), each with its power-of-two scale."""
    column_scales, weight_steps = integer_steps(weight.float(), levels=4095)
    total = torch.zeros(inputs.shape[0], weight.shape[0], dtype=torch.float64)
    for start in range(0, inputs.shape[1], 64):
        group = slice(start, start + 64)
        row_scales, steps = integer_steps(inputs[:, group], levels=8191)
        sums = steps.double() @ weight_steps[:, group].double().T
        total += sums * row_scales.double().unsqueeze(1)
    return total * column_scales.double()


def kernel_formula(build: str, inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """What a build of the kernel computes, in float64, up to the order of its float32 sums."""
    return split_formula(inputs, weight) if build == "amx" else int16_formula(inputs, weight)


@requires_kernel
@pytest.mark.parametrize(
    ("rows", "inner", "columns"), [(1, 64, 32), (37, 576, 192), (257, 1536, 64), (40, 96, 32)]
)
def test_products_follow_the_build_s_formula_and_come_close_to_float64(
    kernel: SplitKernel, rows: int, inner: int, columns: int
) -> None:
    generator = torch.Generator().manual_seed(inner)
    inputs = torch.randn(rows, inner, generator=generator)
    inputs[0, : inner // 2] *= 50  # a row with a wide range, and (below) one with none at all
    if rows > 1:
        inputs[-1] = inputs[-1].to(torch.bfloat16).float()
    weight = torch.randn(columns, inner, generator=generator) * 0.05
    # the tiles take bfloat16 weights; the AVX-512 build keeps 13 bits of each float32 column
    weight = weight.to(torch.bfloat16).float() if kernel.build == "amx" else weight

    product = kernel.product(inputs, kernel.pack(weight))

    exact = inputs.double() @ weight.double().T
    scale = exact.abs().max()
    # float32 accumulation of the same terms in another order
    formula = kernel_formula(kernel.build, inputs, weight)
    assert (product.double() - formula).abs().max() < 1e-6 * scale
    # both builds keep far more than bfloat16 products would: the tiles about 16 bits of each
    # input, the AVX-512 build 13 bits of each group of inputs and of each weight column
    error = (product.double() - exact).abs().max()
    rounded = inputs.to(torch.bfloat16).double() @ weight.to(torch.bfloat16).double().T
    assert error < {"amx": 1e-4, "avx512": 6e-4}[kernel.build] * scale
    assert (rounded - exact).abs().max() > 4 * error


@requires_kernel
def test_the_kernel_stays_close_to_mkl_s_exact_split(kernel: SplitKernel) -> None:
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(64, 576, generator=generator)
    weight = (torch.randn(96, 576, generator=generator) * 0.05).to(torch.bfloat16)

    product = kernel.product(inputs, kernel.pack(weight))

    mkl = linear_bfloat16_split(inputs, weight)
    exact = inputs.double() @ weight.double().T
    tolerance = {"amx": 1e-4, "avx512": 6e-4}[kernel.build]
    assert (product - mkl).abs().max() <= tolerance * exact.abs().max()
    assert not torch.equal(product, mkl)  # rounded to int8 (remainder) or int16 (inputs) here


@requires_kernel
def test_a_block_of_columns_is_a_slice_of_the_packed_weight(kernel: SplitKernel) -> None:
    weight = torch.randn(128, 96).to(torch.bfloat16)

    whole = kernel.pack(weight)
    packed, expected = whole.select(32, 64), kernel.pack(weight[32:96])

    for part in ("head", "rest", "scales"):
        assert torch.equal(getattr(packed, part), getattr(expected, part))
        storage = getattr(packed, part).untyped_storage().data_ptr()
        assert storage == getattr(whole, part).untyped_storage().data_ptr()  # a view, no copy
    with pytest.raises(ValueError, match=r"columns 16\.\.48 are not whole 32-column blocks"):
        whole.select(16, 32)


@requires_kernel
def test_the_result_does_not_depend_on_the_number_of_threads(kernel: SplitKernel) -> None:
    inputs = torch.randn(100, 576)
    packed = kernel.pack(torch.randn(64, 576).to(torch.bfloat16))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = kernel.product(inputs, packed)
        torch.set_num_threads(2)
        together = kernel.product(inputs, packed)
    finally:
        torch.set_num_threads(threads)

    assert torch.equal(alone, together)


def test_shapes_off_the_kernel_blocks_are_not_supported() -> None:
    assert SplitKernel.supports(576, 960)
    assert not SplitKernel.supports(16, 64)  # the inner dimension steps by 32
    assert not SplitKernel.supports(64, 20)  # so do the columns
    assert not SplitKernel.supports(0, 32)


@requires_kernel
def test_a_product_of_aligned_projections_packs_its_weight_and_keeps_its_results() -> None:
    torch.manual_seed(4)
    linears = [torch.nn.Linear(64, 32), torch.nn.Linear(64, 64, bias=False)]
    product = SharedInputProduct(linears)
    rounded = product.weight.clone()
    inputs = torch.randn(5, 64)

    first, second = product.output_for(inputs), product.output_for(inputs)

    assert first is second  # both members' columns from one product
    assert product.packed is not None and product.weight is None  # packed once, kept once
    bias = torch.cat([linears[0].bias.detach(), torch.zeros(64)])
    build = kernel_module.split_kernel().build  # type: ignore[union-attr]
    expected = kernel_formula(build, inputs, rounded.float()) + bias
    assert torch.allclose(first.double(), expected, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="calibrate tail channels before the first product"):
        product.start_calibration()


@requires_kernel
def test_a_product_packed_at_once_packs_the_float32_weight() -> None:
    torch.manual_seed(6)
    linears = [torch.nn.Linear(128, 64, bias=False), torch.nn.Linear(128, 32, bias=False)]
    weight = torch.cat([linear.weight.detach() for linear in linears])
    inputs = torch.randn(7, 128)

    product = SharedInputProduct(linears, pack=True)

    assert product.packed is not None and product.weight is None  # never a bfloat16 copy
    build = kernel_module.split_kernel().build  # type: ignore[union-attr]
    expected = kernel_formula(build, inputs, weight)
    assert torch.allclose(product.output_for(inputs).double(), expected, rtol=0, atol=1e-6)
    if build == "avx512":  # 13 bits of each column where bfloat16 would keep 8
        assert not torch.allclose(expected, int16_formula(inputs, weight.bfloat16().float()))


class Attention(torch.nn.Module):
    """Three projections of one input; k's and v's columns do not start on a 32-column block."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(64, 64)
        self.k_proj = torch.nn.Linear(64, 48)
        self.v_proj = torch.nn.Linear(64, 48, bias=False)


@requires_kernel
def test_compilable_projections_give_what_the_shared_product_gives() -> None:
    torch.manual_seed(5)
    model = Attention()
    use_mixed_precision(model, keep=(), pack=True)
    inputs = torch.randn(2, 9, 64)
    shared = {name: getattr(model, name)(inputs) for name in ("q_proj", "k_proj", "v_proj")}

    assert use_compilable_products(model) == 3

    assert all(isinstance(getattr(model, name), kernel_projection_class()) for name in shared)
    assert model.q_proj.packed_head.numel() == 64 * 64  # its own slice of the packed weight
    assert model.k_proj.packed_head.numel() == 160 * 64  # off the blocks: the whole product, sliced
    kernel = kernel_module.split_kernel()
    assert kernel is not None
    assert model.k_proj.packed_rest.numel() == 160 * kernel.rest_depth(64)
    assert model.k_proj.packed_scales.numel() == 160
    for name, expected in shared.items():
        assert torch.equal(getattr(model, name)(inputs), expected)


def test_the_switch_turns_the_kernel_off_and_says_so(without_kernel: None) -> None:
    assert split_kernel() is None
    assert kernel_unavailable_reason() == "CULTURE_PROBE_KERNEL=off turns it off"


def test_an_unknown_switch_value_leaves_the_kernel_out_and_names_the_choices(
    monkeypatch: pytest.MonkeyPatch, reloaded_kernel: None
) -> None:
    monkeypatch.setenv(KERNEL_VARIABLE, "tiles")
    assert split_kernel() is None
    assert kernel_unavailable_reason() == (
        "CULTURE_PROBE_KERNEL is 'tiles', not one of auto, amx, avx512, off"
    )


@pytest.mark.parametrize("build", sorted(kernel_module.BUILDS))
def test_the_switch_picks_a_build_or_says_what_the_cpu_lacks(
    monkeypatch: pytest.MonkeyPatch, reloaded_kernel: None, build: str
) -> None:
    monkeypatch.setenv(KERNEL_VARIABLE, build.upper())
    missing = kernel_module.BUILDS[build] - kernel_module.cpu_feature_flags()
    found = split_kernel()
    if missing:  # the AVX-512 build on a CPU without it, or the tiles on one without AMX
        assert found is None
        assert kernel_unavailable_reason().startswith("this CPU lacks ")
        assert f"for the {build} build" in kernel_unavailable_reason()
    elif found is None:  # the tiles where Linux does not grant them
        assert kernel_unavailable_reason() == "Linux did not grant this process AMX's tile state"
    else:
        assert found.build == build


def test_auto_prefers_the_tiles_and_falls_back_on_avx512(
    monkeypatch: pytest.MonkeyPatch, reloaded_kernel: None
) -> None:
    monkeypatch.setenv(KERNEL_VARIABLE, "auto")
    flags = kernel_module.cpu_feature_flags()
    found = split_kernel()
    runnable = kernel_module.cpu_builds()
    if not runnable:
        assert found is None and "this CPU lacks" in kernel_unavailable_reason()
    else:
        assert found is not None and found.build in runnable
        # the tiles where the CPU has them and Linux grants them, else the vector build
        assert found.build == runnable[0] or kernel_module.load_build("amx", flags)[0] is None


@requires_kernel
def test_a_missing_or_failing_compiler_leaves_the_kernel_out_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, reloaded_kernel: None, tmp_path: Path
) -> None:
    monkeypatch.setenv("CULTURE_PROBE_CACHE", str(tmp_path))  # nothing built there yet
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert split_kernel() is None
    assert "no C compiler: set CC or install gcc" in kernel_unavailable_reason()

    kernel_module._load.cache_clear()
    monkeypatch.setenv("CC", "/bin/false")
    assert split_kernel() is None
    assert "/bin/false exited with 1" in kernel_unavailable_reason()
    assert not list((tmp_path / "kernels").iterdir())  # no half-built library left behind


@requires_kernel
def test_the_library_is_built_once_and_loaded_from_the_cache(
    monkeypatch: pytest.MonkeyPatch, reloaded_kernel: None, tmp_path: Path
) -> None:
    monkeypatch.setenv("CULTURE_PROBE_CACHE", str(tmp_path))

    assert split_kernel() is not None
    [built] = (tmp_path / "kernels").glob("*.so")
    stamp = built.stat().st_mtime_ns
    kernel_module._load.cache_clear()
    assert split_kernel() is not None
    assert [built] == list((tmp_path / "kernels").glob("*.so"))
    assert built.stat().st_mtime_ns == stamp
    # the record beside it is the hash of the bytes that were built
    record = kernel_module.hash_record(built).read_text().strip()
    assert record == hashlib.sha256(built.read_bytes()).hexdigest()


#: a library that announces itself when loaded: what someone who can write to the cache could plant
FOREIGN_LIBRARY = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    FILE *marker = fopen(getenv("PLANTED_MARKER"), "w");
    if (marker) { fputs("loaded", marker); fclose(marker); }
}
int amx_request(void) { return 0; }
"""


@requires_kernel
@pytest.mark.parametrize("record", ["none", "the real build's"])
def test_a_foreign_library_in_the_cache_is_never_loaded_but_built_over(
    monkeypatch: pytest.MonkeyPatch, reloaded_kernel: None, tmp_path: Path, record: str
) -> None:
    build = kernel_module.cpu_builds()[0]
    monkeypatch.setenv(KERNEL_VARIABLE, build)
    monkeypatch.setenv("CULTURE_PROBE_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "planted-code-ran"
    monkeypatch.setenv("PLANTED_MARKER", str(marker))
    cpu_flags = sorted(kernel_module.cpu_feature_flags())
    target = kernel_module.kernel_path(
        kernel_module.build_flags(build), cpu_flags, kernel_module.compiler()
    )
    if record == "none":
        target.parent.mkdir(parents=True)
    else:  # a real build first, then its library swapped for another, the record kept
        assert split_kernel() is not None
        kernel_module._load.cache_clear()
    source = tmp_path / "foreign.c"
    source.write_text(FOREIGN_LIBRARY)
    subprocess.run(
        [kernel_module.compiler(), "-shared", "-fPIC", "-o", str(target), str(source)], check=True
    )
    foreign = hashlib.sha256(target.read_bytes()).hexdigest()

    kernel = split_kernel()

    assert not marker.exists(), "the planted library was loaded"
    assert kernel is not None and kernel.build == build  # built again over it, and working
    rebuilt = hashlib.sha256(target.read_bytes()).hexdigest()
    assert rebuilt != foreign
    assert kernel_module.hash_record(target).read_text().strip() == rebuilt
    weight = torch.randn(64, 64)
    inputs = torch.randn(3, 64)
    product = kernel.product(inputs, kernel.pack(weight))
    assert torch.allclose(product, inputs @ weight.T, rtol=0.02, atol=0.05)
