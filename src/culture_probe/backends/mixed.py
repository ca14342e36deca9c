"""Mixed precision on the CPU: bfloat16 matrix products, float32 everything else.

On CPUs with AMX or AVX512-BF16 a bfloat16 matrix product runs three to four times faster than a
float32 one. Running the whole model in bfloat16 costs fidelity, though: on the values study it moves
option distributions by a median 0.02 and up to 0.06 bits (Jensen-Shannon distance) from a float32
run, and most of that comes from rounding every activation and every product to 8 significant bits.

``mixed`` keeps the model in float32 (embeddings, residual stream, norms, rotary embeddings,
attention, the vocabulary projection) and computes the linear layers of the decoder with MKL's
``cblas_gemm_bf16bf16f32``: bfloat16 operands, float32 accumulation and float32 output. Each
activation ``x`` is split into a bfloat16 head and a bfloat16 remainder, ``x = hi + lo`` to about
16 significant bits, and the two products accumulate into one float32 output, so the only rounding
left is the weights' (to bfloat16, once, at load). That keeps every option distribution within
about 0.005 bits of float32 and still runs the products on the bfloat16 units.

MKL is the one inside PyTorch's own CPU library, which exports the function; nothing extra is
installed. Where it is missing (a PyTorch built without MKL), :func:`bfloat16_gemm` says so.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def linear_bfloat16_split(inputs: Any, weight: Any) -> Any:
    """``inputs @ weight.T`` in float32 from bfloat16 products on the split ``inputs``.

    Args:
        inputs: float32 ``[m, k]``, contiguous.
        weight: bfloat16 ``[n, k]``, contiguous.
    """
    import torch

    rows, inner = inputs.shape
    columns = weight.shape[0]
    out = torch.empty((rows, columns), dtype=torch.float32)
    if rows == 0:
        return out
    head = inputs.to(torch.bfloat16)
    # the remainder the head could not hold; float32 - bfloat16 promotes to float32, exactly
    tail = (inputs - head).to(torch.bfloat16)
    gemm = bfloat16_gemm()
    for part, beta in ((head, 0.0), (tail, 1.0)):  # the tail's product adds to the head's
        gemm(
            _ROW_MAJOR, _NO_TRANSPOSE, _TRANSPOSE, rows, columns, inner,
            1.0, part.data_ptr(), inner, weight.data_ptr(), inner,
            beta, out.data_ptr(), columns,
        )  # fmt: skip
    return out


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
            self, linear: torch.nn.Linear, shared: SharedInputProduct | None = None, column: int = 0
        ) -> None:
            super().__init__()
            self.in_features = linear.in_features
            self.out_features = linear.out_features
            self.shared = shared or SharedInputProduct([linear])
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

    def __init__(self, linears: Sequence[Any]) -> None:
        import torch

        self.in_features = linears[0].in_features
        weights = [linear.weight.detach() for linear in linears]
        self.weight = torch.cat(weights).to(torch.bfloat16).contiguous()
        biases = [
            linear.bias.detach().float()
            if linear.bias is not None
            else torch.zeros(linear.out_features)
            for linear in linears
        ]
        has_bias = any(linear.bias is not None for linear in linears)
        self.bias = torch.cat(biases) if has_bias else None
        self.members = len(linears)
        self._input: Any = None
        self._output: Any = None
        self._unclaimed = 0

    def output_for(self, inputs: Any) -> Any:
        if inputs is not self._input or self._unclaimed == 0:
            flat = inputs.reshape(-1, self.in_features).float().contiguous()
            out = linear_bfloat16_split(flat, self.weight)
            if self.bias is not None:
                out += self.bias
            self._input, self._output = inputs, out.reshape(*inputs.shape[:-1], -1)
            self._unclaimed = self.members
        output = self._output
        self._unclaimed -= 1
        if self._unclaimed == 0:  # every member has its columns: hold no activations between calls
            self._input = self._output = None
        return output


def use_mixed_precision(model: Any, keep: tuple[str, ...] = ("lm_head",)) -> int:
    """Swap every ``nn.Linear`` of a float32 model for a split-bfloat16 one; returns how many.

    Projections of one input (:data:`SHARED_INPUT_SETS`, where a module has them all with the same
    input width) share one product. ``keep`` names modules left in float32: the vocabulary
    projection by default, which the backends only apply at the positions they read and which is
    tied to the embeddings in many models.
    """
    import torch

    bfloat16_gemm()  # fail before touching the model when MKL's function is missing
    module_class = split_linear_class()
    swapped = 0
    for parent_name, parent in list(model.named_modules()):
        children = dict(parent.named_children())
        for names in SHARED_INPUT_SETS:
            members = [children.get(name) for name in names]
            if all(isinstance(m, torch.nn.Linear) for m in members) and (
                len({m.in_features for m in members}) == 1  # type: ignore[union-attr]
            ):
                shared = SharedInputProduct(members)
                column = 0
                for name, member in zip(names, members, strict=True):
                    setattr(parent, name, module_class(member, shared, column))
                    column += member.out_features  # type: ignore[union-attr]
                    swapped += 1
        for child_name, child in list(parent.named_children()):
            qualified = f"{parent_name}.{child_name}" if parent_name else child_name
            if isinstance(child, torch.nn.Linear) and qualified not in keep:
                setattr(parent, child_name, module_class(child))
                swapped += 1
    return swapped
