"""Mixed precision on the CPU: bfloat16 matrix products, float32 everything else.

On CPUs with AMX a bfloat16 matrix product runs three to four times faster than a float32 one, on
CPUs with AVX512-BF16 (AMD Zen 4) about twice as fast. Running the whole model in bfloat16 costs
fidelity, though: on the values study it moves option distributions by a median 0.02 and up to
0.06 bits (Jensen-Shannon distance) from a float32 run, and most of that comes from rounding every
activation and every product to 8 significant bits.

``mixed`` keeps the model in float32 (embeddings, residual stream, norms, rotary embeddings,
attention, the vocabulary projection) and computes the linear layers of the decoder with MKL's
``cblas_gemm_bf16bf16f32``: bfloat16 operands, float32 accumulation and float32 output. Each
activation ``x`` is split into a bfloat16 head and a bfloat16 remainder, ``x = hi + lo`` to about
16 significant bits, and the two products accumulate into one float32 output, so the only rounding
left is the weights' (to bfloat16, once, at load). That keeps every option distribution within
about 0.005 bits of float32 and still runs the products on the bfloat16 units.

The remainder's product costs as much as the head's. ``tail_channels`` trades some fidelity for
speed: the remainder is then carried only for that many input channels of each projection, those
whose rounding costs most (``E[x_i^2] * |W[:, i]|^2``, measured on a fixed calibration conversation,
:data:`CALIBRATION_MESSAGES`, run once at load), and the other channels are rounded once. With 64
channels (a ninth of a 576-wide input) the products cost about 1.1 bfloat16 products instead of 2
and scoring runs about 1.2 times faster, but the error is spread over many channels: on all 4,144
prompts of the values study the largest distance from float32 was 0.0112 bits with 64 channels,
0.0095 with 128 and 0.0124 with 256 (99th percentiles 0.0070, 0.0064, 0.0063), against 0.0061
(0.0042) with every channel split. So the default splits every channel.

MKL is the one inside PyTorch's own CPU library, which exports the function; nothing extra is
installed. Where it is missing (a PyTorch built without MKL), :func:`bfloat16_gemm` says so.

Where the split kernel runs (:mod:`culture_probe.engine.split_kernel`) the products of every
channel go through it instead, in one pass that prepares the activations and runs the products
with float32 accumulation. On AMX tiles it is the same split, the remainder in int8 (power-of-two
scales per row and per column), which keeps the same 16 or so bits of each activation: the scores
are as close to float32 as MKL's (within 0.0004 bits of MKL's on the test prompts, and 0.0058
bits of float32 at most on the values study's 4,144 prompts, against 0.0061 with MKL), and the
remainder's product costs half the head's instead of as much. With AVX-512 alone (AMD Zen 4) it
is one int16 product instead: 13 bits of each group of 64 activations and 12 of each weight
column, taken from the float32 weight, which is then never rounded to bfloat16 (0.0040 bits from
float32 at most on 200 values-study prompts, at the cost of one product). The kernel also lets the
layers be compiled, or fused whole around it (:mod:`culture_probe.engine.fused`).
MKL stays for the tail channels and for CPUs where the kernel cannot run.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from culture_probe.engine.split_kernel import (
    ALIGNMENT,
    PackedWeight,
    split_kernel,
    split_product_op,
)
from culture_probe.errors import CultureProbeError

# CBLAS enumerations (mkl_cblas.h)
_ROW_MAJOR = 101
_NO_TRANSPOSE = 111
_TRANSPOSE = 112


@functools.cache
def bfloat16_gemm() -> Any:
    """MKL's ``cblas_gemm_bf16bf16f32`` from PyTorch's CPU library, with its C signature set."""
    import torch

    library_path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        function = ctypes.CDLL(str(library_path)).cblas_gemm_bf16bf16f32
    except (OSError, AttributeError) as error:
        raise CultureProbeError(
            f"--dtype mixed needs MKL's cblas_gemm_bf16bf16f32, which {library_path.name} does not "
            f"export ({error}); use --dtype float32 or bfloat16"
        ) from error
    integer, pointer = ctypes.c_int, ctypes.c_void_p
    function.restype = None
    function.argtypes = [
        *(integer,) * 6,  # layout, transa, transb, m, n, k
        ctypes.c_float,  # alpha
        pointer,  # a
        integer,  # lda
        pointer,  # b
        integer,  # ldb
        ctypes.c_float,  # beta
        pointer,  # c
        integer,  # ldc
    ]
    return function


@dataclass(frozen=True)
class TailChannels:
    """The input channels whose bfloat16 remainder a projection carries, with its weight columns.

    Attributes:
        channels: LongTensor ``[c]``, ascending.
        weight: bfloat16 ``[n, c]``, contiguous: the weight's columns at ``channels``.
    """

    channels: Any
    weight: Any


def linear_bfloat16_split(inputs: Any, weight: Any, tail: TailChannels | None = None) -> Any:
    """``inputs @ weight.T`` in float32 from bfloat16 products on the split ``inputs``.

    Args:
        inputs: float32 ``[m, k]``, contiguous.
        weight: bfloat16 ``[n, k]``, contiguous.
        tail: the channels whose remainder is carried; ``None``: all of them.
    """
    import torch

    rows = inputs.shape[0]
    columns = weight.shape[0]
    out = torch.empty((rows, columns), dtype=torch.float32)
    if rows == 0:
        return out
    head = inputs.to(torch.bfloat16)
    _accumulate_product(head, weight, out, beta=0.0)
    if tail is None:
        # the remainder the head could not hold; float32 - bfloat16 promotes to float32, exactly
        _accumulate_product((inputs - head).to(torch.bfloat16), weight, out, beta=1.0)
    elif len(tail.channels):
        chosen = inputs.index_select(1, tail.channels)
        remainder = (chosen - chosen.to(torch.bfloat16)).to(torch.bfloat16)
        _accumulate_product(remainder, tail.weight, out, beta=1.0)
    return out


def _accumulate_product(part: Any, weight: Any, out: Any, beta: float) -> None:
    """``out = part @ weight.T + beta * out`` with MKL, ``part`` and ``weight`` contiguous bfloat16."""
    rows, inner = part.shape
    columns = weight.shape[0]
    bfloat16_gemm()(
        _ROW_MAJOR, _NO_TRANSPOSE, _TRANSPOSE, rows, columns, inner,
        1.0, part.data_ptr(), inner, weight.data_ptr(), inner,
        beta, out.data_ptr(), columns,
    )  # fmt: skip


#: sibling projections that transformers' decoders feed the same tensor: one product serves each set
SHARED_INPUT_SETS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


@functools.cache
def split_linear_class() -> type:
    """The module class, built on first use so that importing this file does not import torch."""
    import torch

    class SplitBfloat16Linear(torch.nn.Module):
        """A drop-in for ``nn.Linear`` (float32 in and out): its columns of a shared product.

        A projection alone has a product of its own; the members of a set that reads one tensor
        share one (see :class:`SharedInputProduct`).
        """

        def __init__(
            self,
            linear: torch.nn.Linear,
            shared: SharedInputProduct | None = None,
            column: int = 0,
            pack: bool = False,
        ) -> None:
            super().__init__()
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            self.shared = shared or SharedInputProduct([linear], pack)
            self.column = column

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            columns: torch.Tensor = self.shared.output_for(inputs)
            return columns[..., self.column : self.column + self.out_features]

    return SplitBfloat16Linear


class SharedInputProduct:
    """One split-bfloat16 product for a set of projections of the same input.

    The first member called with a tensor computes every member's columns at once (one larger
    product, one split of the input) and keeps the result with a reference to that tensor; members
    called with the same tensor object take their columns. A member called with another tensor
    just computes anew, so a model that feeds its projections differently stays correct.
    """

    def __init__(self, linears: Sequence[Any], pack: bool = False) -> None:
        """``pack``: pack the weight for the split kernel now (where it runs) rather than at the
        first product; a product packed at once cannot be calibrated for tail channels."""
        import torch

        self.in_features = linears[0].in_features
        weights = [linear.weight.detach() for linear in linears]
        self.columns = sum(int(w.shape[0]) for w in weights)
        self.packed: PackedWeight | None = None  # the weight in the split kernel's layouts
        kernel = split_kernel() if pack else None
        if kernel is not None and kernel.supports(self.in_features, self.columns):
            # packed from float32 where the build keeps more of the weight than bfloat16 does
            self.packed = kernel.pack(torch.cat(weights).float())
            self.weight: Any = None
        else:
            # rounded one by one: a float32 concatenation would be a transient copy of every weight
            self.weight = torch.cat([w.to(torch.bfloat16) for w in weights]).contiguous()
        biases = [
            linear.bias.detach().float()
            if linear.bias is not None
            else torch.zeros(linear.out_features)
            for linear in linears
        ]
        has_bias = any(linear.bias is not None for linear in linears)
        self.bias = torch.cat(biases) if has_bias else None
        self.members = len(linears)
        self.tail: TailChannels | None = None  # None: every channel's remainder
        self._energy: Any = None  # per input channel, summed while calibrating
        self._input: Any = None
        self._output: Any = None
        self._unclaimed = 0

    def start_calibration(self) -> None:
        """Carry every remainder and sum each input channel's square until :meth:`keep_tail`."""
        import torch

        if self.weight is None:
            raise RuntimeError("calibrate tail channels before the first product packs the weight")
        self.tail = None
        self._energy = torch.zeros(self.in_features, dtype=torch.float64)

    def keep_tail(self, channels: int | None) -> None:
        """Carry the remainder of the ``channels`` channels whose rounding would cost the most.

        A channel's score is its calibration energy times its weight column's squared norm: the
        expected size of the error its rounding leaves in the output.
        """
        if self._energy is None:
            raise RuntimeError("keep_tail needs start_calibration and a forward pass first")
        if channels is None or channels >= self.in_features:
            self.tail = None
        else:
            score = self._energy * self.weight.double().square().sum(dim=0)
            chosen = score.topk(channels).indices.sort().values
            self.tail = TailChannels(chosen, self.weight.index_select(1, chosen).contiguous())
        self._energy = None

    def kernel_packed(self) -> PackedWeight | None:
        """The weight in the split kernel's layout, or ``None`` where MKL computes the product.

        Packed at construction (``pack=True``), or else at the first product that carries every
        channel's remainder (not while calibrating). The row-major copy is dropped then: the
        kernel serves every later call, and keeping both would hold the projections twice (0.2 GB
        for the embedded model).
        """
        if self.packed is None and self.tail is None and self._energy is None:
            kernel = split_kernel()
            if kernel is not None and kernel.supports(self.in_features, self.columns):
                self.packed = kernel.pack(self.weight)
                self.weight = None
        return self.packed

    def output_for(self, inputs: Any) -> Any:
        if inputs is not self._input or self._unclaimed == 0:
            flat = inputs.reshape(-1, self.in_features).float().contiguous()
            if self._energy is not None:
                self._energy += flat.double().square().sum(dim=0)
            packed = self.kernel_packed()
            if packed is not None:
                out = split_product_op()(flat, packed.head, packed.rest, packed.scales)
            else:
                out = linear_bfloat16_split(flat, self.weight, self.tail)
            if self.bias is not None:
                out += self.bias
            self._input, self._output = inputs, out.reshape(*inputs.shape[:-1], -1)
            self._unclaimed = self.members
        output = self._output
        self._unclaimed -= 1
        if self._unclaimed == 0:  # every member has its columns: hold no activations between calls
            self._input = self._output = None
        return output


@functools.cache
def kernel_projection_class() -> type:
    """The module class, built on first use so that importing this file does not import torch."""
    import torch

    class KernelProjection(torch.nn.Module):
        """A split-bfloat16 projection for ``torch.compile``: one opaque kernel call per forward.

        :class:`SharedInputProduct` shares one product among projections by remembering which
        tensor it last saw, which a compiled graph cannot do. Here each projection computes its
        own columns, from its slice of the shared packed weight (the kernel splits the input
        in the same pass, so the cost is the split of the input once more per member), or, when
        its columns do not fall on the kernel's 32-column blocks, the whole shared product.
        """

        def __init__(self, shared: SharedInputProduct, column: int, width: int) -> None:
            super().__init__()
            split_product_op()  # registers the operator that forward calls
            self.in_features = shared.in_features
            self.out_features = width
            aligned = column % ALIGNMENT == 0 and width % ALIGNMENT == 0
            whole = shared.kernel_packed()
            if whole is None:
                raise RuntimeError("a compilable projection needs the split kernel's packed weight")
            packed = whole.select(column, width) if aligned else whole
            self.register_buffer("packed_head", packed.head, persistent=False)
            self.register_buffer("packed_rest", packed.rest, persistent=False)
            self.register_buffer("packed_scales", packed.scales, persistent=False)
            self.columns = packed.columns
            self.offset = 0 if aligned else column
            self.bias_values: torch.Tensor | None = (
                None if shared.bias is None else shared.bias[column : column + width].clone()
            )

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            flat = inputs.reshape(-1, self.in_features)
            out: torch.Tensor = torch.ops.culture_probe.split_product(
                flat, self.packed_head, self.packed_rest, self.packed_scales
            )
            if self.columns != self.out_features:
                out = out[:, self.offset : self.offset + self.out_features]
            if self.bias_values is not None:
                out = out + self.bias_values
            return out.reshape(*inputs.shape[:-1], self.out_features)

    return KernelProjection


def use_compilable_products(model: Any) -> int:
    """Give every split projection of ``model`` its own kernel call, for ``torch.compile``.

    Needs the split kernel (:func:`culture_probe.engine.split_kernel.split_kernel`) and a model prepared by
    :func:`use_mixed_precision` without tail channels. Returns how many projections changed.
    """
    split_class, projection_class = split_linear_class(), kernel_projection_class()
    changed = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, split_class):
                continue
            shared: SharedInputProduct = getattr(child, "shared")  # noqa: B009 (a dynamic class)
            if shared.kernel_packed() is None:
                raise RuntimeError(
                    "compiled mixed products need the split kernel and no tail channels"
                )
            width = int(getattr(child, "out_features"))  # noqa: B009
            setattr(parent, name, projection_class(shared, int(getattr(child, "column")), width))  # noqa: B009
            changed += 1
    return changed


#: madvise(2): drop the pages; a file-backed page is read from the file again if touched
_MADV_DONTNEED = 4


def release_file_pages(
    tensors: Sequence[Any], files: Sequence[tuple[int, int]] | None = None
) -> int:
    """Drop the resident pages of tensors that lie in a mapped safetensors file; returns bytes.

    Under ``mixed`` the float32 projection weights are read once, to make their bfloat16 copies,
    and never again, but the pages read stay resident (0.4 GB for the embedded model) until the
    whole file is unmapped. Only whole pages inside a tensor and inside a mapping of a
    ``.safetensors`` file are dropped: such a page is read from the file again if anything touches
    it, so no value can change. Anywhere else (anonymous memory, another platform) nothing happens.
    ``files``: the mappings, from :func:`safetensors_mappings` (read anew when not given).
    """
    files = safetensors_mappings() if files is None else files
    if not files or not tensors:
        return 0
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except AttributeError:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = os.sysconf("SC_PAGE_SIZE")
    released = 0
    for tensor in tensors:
        if not tensor.is_contiguous():  # its bytes are not one range of its own
            continue
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        if not any(low <= start and end <= high for low, high in files):
            continue
        first, last = -(-start // page) * page, end // page * page
        if last > first and madvise(first, last - first, _MADV_DONTNEED) == 0:
            released += last - first
    return released


def safetensors_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of ``.safetensors`` files (Linux only)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    ranges = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].endswith(".safetensors"):
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            ranges.append((low, high))
    return ranges


def use_mixed_precision(
    model: Any, keep: tuple[str, ...] = ("lm_head",), pack: bool = False
) -> int:
    """Swap every ``nn.Linear`` of a float32 model for a split-bfloat16 one; returns how many.

    Projections of one input (:data:`SHARED_INPUT_SETS`, where a module has them all with the same
    input width) share one product. ``keep`` names modules left in float32: the vocabulary
    projection by default, which the backends only apply at the positions they read and which is
    tied to the embeddings in many models. ``pack``: pack each weight for the split kernel as soon
    as it is rounded (where the kernel runs), so that the row-major copies never all exist at
    once; leave it off to calibrate tail channels first.
    """
    import torch

    bfloat16_gemm()  # fail before touching the model when MKL's function is missing
    module_class = split_linear_class()
    # each float32 weight is read once, for its bfloat16 copy: drop its file pages right after
    files = safetensors_mappings()
    swapped = 0
    for parent_name, parent in list(model.named_modules()):
        children = dict(parent.named_children())
        for names in SHARED_INPUT_SETS:
            members = [children.get(name) for name in names]
            if all(isinstance(m, torch.nn.Linear) for m in members) and (
                len({m.in_features for m in members}) == 1  # type: ignore[union-attr]
            ):
                shared = SharedInputProduct(members, pack)
                release_file_pages([m.weight for m in members], files)  # type: ignore[union-attr]
                column = 0
                for name, member in zip(names, members, strict=True):
                    setattr(parent, name, module_class(member, shared, column))
                    column += member.out_features  # type: ignore[union-attr]
                    swapped += 1
        for child_name, child in list(parent.named_children()):
            qualified = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, torch.nn.Linear) and qualified not in keep:
                setattr(parent, child_name, module_class(child, pack=pack))
                release_file_pages([child.weight], files)
                swapped += 1
    return swapped


#: what the tail channels are chosen on: a persona survey conversation of the kind studies render,
#: fixed so that the choice, and every score, depend on the model alone
CALIBRATION_MESSAGES = (
    {
        "role": "system",
        "content": "You are a 45-year-old teacher who lives in a small town. Answer as yourself, "
        "in the way people from your country and community usually would.",
    },
    {
        "role": "user",
        "content": "For each of the following, indicate how important it is in your life. "
        "Would you say family, friends, leisure time, politics, work and religion are very "
        "important, rather important, not very important or not at all important? When jobs "
        "are scarce, should employers give priority to people of this country over "
        "immigrants?\nA. Very important\nB. Rather important\nC. Not very important\n"
        "D. Not at all important\nAnswer with the letter of one option only.",
    },
)

#: remainder channels a projection carries under ``mixed``; ``None``: all (see the module docstring)
DEFAULT_TAIL_CHANNELS: int | None = None


def calibrate_tail_channels(model: Any, token_ids: Sequence[int], channels: int | None) -> None:
    """Choose every split product's tail channels from one forward pass over ``token_ids``."""
    import torch

    split_class = split_linear_class()
    products: dict[int, SharedInputProduct] = {}
    for module in model.modules():
        if isinstance(module, split_class):
            shared: SharedInputProduct = getattr(module, "shared")  # noqa: B009 (a dynamic class)
            products[id(shared)] = shared
    for product in products.values():
        product.start_calibration()
    with torch.inference_mode():
        model(input_ids=torch.tensor([list(token_ids)]), use_cache=False, logits_to_keep=1)
    for product in products.values():
        product.keep_tail(channels)
