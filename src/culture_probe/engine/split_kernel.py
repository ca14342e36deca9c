"""The split kernel behind ``--dtype mixed``: float32 products from integer and bfloat16 ones.

``mixed`` needs matrix products that accumulate and return float32 from operands that keep more
than bfloat16's 8 bits (see :mod:`culture_probe.engine.mixed`). PyTorch's own bfloat16 product
on the CPU rounds its output to bfloat16, and MKL's ``cblas_gemm_bf16bf16f32``, which does not,
ran at about half of PyTorch's speed and needs the activation split in a separate pass.
``split_kernel.c`` prepares the activations and runs the products in one pass, in one of two
builds (see the C file for the scales and the error bounds):

- ``amx``, on AMX tiles where the CPU has them and Linux grants them: the activation is split into
  a bfloat16 head, multiplied by the bfloat16 weight, and a remainder, which needs only a few
  significant bits and is multiplied in int8, where the tiles do twice the work per instruction.
  A product costs 1.5 bfloat16 products. On all 4,144 prompts of the values study the option
  distributions stay as close to float32 as with MKL's exact split (0.0058 against 0.0061 bits).
- ``avx512``, on CPUs with AVX-512's VNNI dot products (AMD Zen 4 and 5, Intel Cascade Lake and
  later): one int16 product, each group of 64 activations of a row with its own power-of-two
  scale (13 bits of the group's largest value) and each weight column with its own (12 bits,
  from the float32 weight). A product costs one bfloat16 product, and on an AMD EPYC Zen 4 ran at
  about 90% of oneDNN's bfloat16 speed; option distributions stay within 0.0040 bits of float32
  on 200 values-study prompts (0.0049 with the split).

``CULTURE_PROBE_KERNEL`` chooses: ``auto`` (the default: the tiles, else AVX-512), ``amx``,
``avx512`` or ``off``.

The same pass can fold in what a decoder layer does around its products (an RMSNorm of the input,
a residual sum, a SwiGLU gate), and the library has the rotary embedding too: that is how
:mod:`culture_probe.engine.fused` runs whole layers.

The C file ships with the package and is compiled at first use with the system's C compiler
(``$CC``, else ``cc`` or ``gcc``) for this very CPU (``-march=native``), into the cache directory,
under a name that holds a hash of the source, the flags, the compiler and the CPU's feature flags;
later processes load it in milliseconds. It is built only for a build whose instructions the CPU
has, and loaded only if its bytes hash to what was recorded when this version built it
(``<name>.sha256`` beside it); anything else in its place is built over, never loaded. Where the
CPU has neither build's instructions, there is no C compiler, or ``CULTURE_PROBE_KERNEL=off`` is
set, :func:`split_kernel` returns ``None``, says why in :func:`kernel_unavailable_reason`, and
``mixed`` uses MKL as before.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from culture_probe.models import cache_dir

if TYPE_CHECKING:
    from culture_probe.engine.tree_attention import TreeBlocks

SOURCE = Path(__file__).with_name("split_kernel.c")
FLAGS = (
    "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC",
    # a * b + c stays two roundings, as in PyTorch's separate operations, unless written as an FMA
    "-ffp-contract=off",
)  # fmt: skip
#: the products on AMX's tiles; without these flags the same source uses AVX-512 instructions
TILE_FLAGS = ("-mamx-tile", "-mamx-bf16", "-mamx-int8")
#: the AVX-512 build, tiles left out even where ``-march=native`` would turn them on (a CPU with
#: AMX), so that it is the AVX-512 build everywhere
NO_TILE_FLAGS = ("-mno-amx-tile", "-mno-amx-bf16", "-mno-amx-int8")
#: what each build needs of the CPU, as /proc/cpuinfo names it, in the order ``auto`` tries them
BUILDS = {
    "amx": frozenset({"amx_tile", "amx_bf16", "amx_int8", "avx512_bf16"}),
    "avx512": frozenset({"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}),
}
#: a thread's share of the split activations: a band of rows that stays in the core's 2 MB cache
SCRATCH_BYTES = 1 << 20
#: the kernel works in 32 x 32 output blocks and steps of 32 along the inner dimension
ALIGNMENT = 32
#: the int8 layout steps by 64 along the inner dimension, padded with zeros up to it
INT8_STEP = 64
#: auto (the default: AMX where Linux grants it, else AVX-512), amx, avx512, or off
KERNEL_VARIABLE = "CULTURE_PROBE_KERNEL"


def int8_depth(inner: int) -> int:
    """The inner dimension of a weight's int8 layout: ``inner`` rounded up to a step of 64."""
    return -(-inner // INT8_STEP) * INT8_STEP


@dataclass(frozen=True)
class PackedWeight:
    """A ``[columns, inner]`` weight in a build's layouts.

    Attributes:
        head: ``[columns * inner]`` in the layout of the bfloat16 tiles: bfloat16 for the ``amx``
            build, int16 steps for ``avx512``.
        rest: int8 ``[columns * int8_depth(inner)]``, the layout of the int8 tiles (``amx``);
            empty for ``avx512``.
        scales: float32 ``[columns]``, the power of two each column's integers are scaled by.
    """

    head: Any
    rest: Any
    scales: Any

    @property
    def columns(self) -> int:
        return int(self.scales.numel())

    def select(self, first: int, count: int) -> PackedWeight:
        """Columns ``[first, first + count)``, multiples of 32: slices of the same storage."""
        if first % ALIGNMENT or count % ALIGNMENT or first + count > self.columns:
            raise ValueError(f"columns {first}..{first + count} are not whole 32-column blocks")
        inner = self.head.numel() // self.columns
        depth = self.rest.numel() // self.columns
        return PackedWeight(
            self.head[first * inner : (first + count) * inner],
            self.rest[first * depth : (first + count) * depth],
            self.scales[first : first + count],
        )


class SplitKernel:
    """The compiled ``split_kernel.c``: :meth:`pack` a weight once, then :meth:`product` per call."""

    def __init__(self, library: ctypes.CDLL, build: str) -> None:
        #: "amx" (the products on AMX tiles) or "avx512" (AVX-512 int16 dot products)
        self.build = build
        integer, pointer = ctypes.c_int64, ctypes.c_void_p
        if build == "amx":
            self._pack = library.pack_weight
            self._pack.argtypes = [pointer, integer, integer, pointer]
            self._pack.restype = None
            self._pack_int8 = library.pack_weight_int8
            self._pack_int8.argtypes = [pointer, integer, integer, pointer, pointer]
            self._pack_int8.restype = None
        else:
            self._pack_int16 = library.pack_weight_int16
            self._pack_int16.argtypes = [pointer, integer, integer, pointer, pointer]
            self._pack_int16.restype = None
        self._product = library.split_product
        self._product.argtypes = [
            pointer, integer, integer, pointer, pointer, pointer, integer, integer,
            pointer, ctypes.c_float, pointer, ctypes.c_int, pointer,
        ]  # fmt: skip
        self._product.restype = ctypes.c_int
        self._rotary = library.rotary_embedding
        self._rotary.argtypes = [pointer, integer, integer, integer, integer, pointer, pointer]
        self._rotary.restype = None
        self._attention = library.tree_attention
        self._attention.argtypes = [
            pointer, integer, integer, integer, integer, ctypes.c_float, pointer, integer,
            pointer, integer, integer, pointer, pointer,
        ]  # fmt: skip
        self._attention.restype = ctypes.c_int

    @staticmethod
    def supports(inner: int, columns: int) -> bool:
        """Whether a ``[columns, inner]`` weight fits the kernel's blocks."""
        return inner % ALIGNMENT == 0 and columns % ALIGNMENT == 0 and inner > 0 < columns

    def pack(self, weight: Any) -> PackedWeight:
        """The build's layouts of a bfloat16 or float32 ``[columns, inner]`` weight.

        The tiles take the weight in bfloat16 (a float32 one is rounded first); the AVX-512 build
        takes int16 steps of each column, from float32 where given (a bfloat16 weight's steps
        carry its rounding too). Columns ``[c, c + n)`` with ``c`` and ``n`` multiples of 32 are
        contiguous slices of each layout (:meth:`PackedWeight.select`), so projections that share
        a packed weight can each take their own columns.
        """
        import torch

        columns, inner = weight.shape
        if weight.dtype not in (torch.bfloat16, torch.float32) or not self.supports(inner, columns):
            raise ValueError(f"cannot pack a {weight.dtype} weight of shape {tuple(weight.shape)}")
        scales = torch.empty(columns, dtype=torch.float32)
        if self.build != "amx":
            weight = weight.to(torch.float32).contiguous()
            steps = torch.empty(columns * inner, dtype=torch.int16)
            self._pack_int16(weight.data_ptr(), columns, inner, steps.data_ptr(), scales.data_ptr())
            return PackedWeight(steps, torch.empty(0, dtype=torch.int8), scales)
        weight = weight.to(torch.bfloat16).contiguous()
        head = torch.empty(columns * inner, dtype=torch.bfloat16)
        self._pack(weight.data_ptr(), columns, inner, head.data_ptr())
        rest = torch.empty(columns * int8_depth(inner), dtype=torch.int8)
        self._pack_int8(
            weight.data_ptr(),
            columns,
            inner,
            rest.data_ptr(),
            scales.data_ptr(),
        )
        return PackedWeight(head, rest, scales)

    def rest_depth(self, inner: int) -> int:
        """Bytes a column of the int8 layout holds for this build: none for ``avx512``."""
        return int8_depth(inner) if self.build == "amx" else 0

    def product(
        self,
        inputs: Any,
        packed: PackedWeight,
        norm: Any = None,
        eps: float = 0.0,
        residual: Any = None,
        gated: bool = False,
    ) -> Any:
        """float32 ``inputs @ weight.T`` for float32 ``inputs [rows, inner]`` and a packed weight.

        What a decoder layer does around its products can be folded into the same pass:

        - ``norm`` (float32 ``[inner]``) and ``eps``: each row of ``inputs`` is RMS-normalised
          first, ``(x / sqrt(mean(x ** 2) + eps)) * norm``, as transformers' ``RMSNorm``;
        - ``residual`` (float32 ``[rows, columns]``): the result is ``residual + inputs @ W.T``;
        - ``gated``: the weight is a gate and an up projection, one above the other, and the
          result ``[rows, columns / 2]`` is ``silu(inputs @ gate.T) * (inputs @ up.T)``.
        """
        import torch

        inputs = inputs.to(torch.float32).contiguous()
        rows, inner = inputs.shape
        columns = packed.columns
        if packed.head.numel() != columns * inner or (
            packed.rest.numel() != columns * self.rest_depth(inner)
        ):
            raise ValueError(f"the packed weight is not {columns}x{inner}")
        if gated and columns % (2 * ALIGNMENT):
            raise ValueError(f"a gated product needs two halves of whole blocks, not {columns}")
        width = columns // 2 if gated else columns
        if norm is not None and tuple(norm.shape) != (inner,):
            raise ValueError(f"the norm's weight is {tuple(norm.shape)}, not ({inner},)")
        if residual is not None and tuple(residual.shape) != (rows, width):
            raise ValueError(f"the residual is {tuple(residual.shape)}, not ({rows}, {width})")
        out = torch.empty((rows, width), dtype=torch.float32)
        if rows == 0:
            return out
        norm = None if norm is None else norm.to(torch.float32).contiguous()
        residual = None if residual is None else residual.to(torch.float32).contiguous()
        status = self._product(
            inputs.data_ptr(), rows, inner, packed.head.data_ptr(), packed.rest.data_ptr(),
            packed.scales.data_ptr(), columns, SCRATCH_BYTES,
            None if norm is None else norm.data_ptr(), eps,
            None if residual is None else residual.data_ptr(), int(gated), out.data_ptr(),
        )  # fmt: skip
        if status != 0:
            raise MemoryError(f"the split kernel could not allocate its scratch ({rows}x{inner})")
        return out

    def rotate(self, states: Any, heads: int, cos: Any, sin: Any) -> None:
        """transformers' rotary position embedding, in place, on the first ``heads`` heads.

        ``states`` is float32 ``[rows, columns]``, contiguous, its heads side by side from column
        0; ``cos`` and ``sin`` are ``[rows, head_dim]``, as the model's rotary embedding gives
        them. Each head ``x`` becomes ``x * cos + rotate_half(x) * sin``.
        """
        import torch

        rows, columns = states.shape
        head_dim = int(cos.shape[-1])
        if not states.is_contiguous() or states.dtype != torch.float32:
            raise ValueError("rotary embedding works in place on a contiguous float32 tensor")
        if head_dim % ALIGNMENT or heads * head_dim > columns:
            raise ValueError(
                f"{heads} heads of {head_dim} do not fit the kernel's rows of {columns}"
            )
        cos = cos.reshape(rows, head_dim).to(torch.float32).contiguous()
        sin = sin.reshape(rows, head_dim).to(torch.float32).contiguous()
        self._rotary(
            states.data_ptr(), rows, columns, heads, head_dim, cos.data_ptr(), sin.data_ptr()
        )

    @staticmethod
    def attends(head_dim: int) -> bool:
        """Whether :meth:`tree_attention` takes heads of ``head_dim``."""
        return head_dim > 0 and head_dim % 64 == 0

    def tree_attention(
        self, states: Any, blocks: TreeBlocks, heads: int, kv_heads: int, head_dim: int,
        scaling: float,
    ) -> Any:  # fmt: skip
        """:func:`~culture_probe.engine.tree_attention.tree_attention_on_rows` in the kernel.

        ``states`` is float32 ``[nodes, (heads + 2 kv_heads) head_dim]``, contiguous: each node's
        query, key and value heads side by side. Each block's rows attend over the block's own
        keys (not a width padded to the widest block's) and each key head is read once for the
        query heads that share it; the result, ``[nodes, heads * head_dim]``, is SDPA's up to
        float32 summation order.
        """
        import torch

        nodes = states.shape[0]
        if not states.is_contiguous() or states.dtype != torch.float32:
            raise ValueError("tree attention reads a contiguous float32 tensor")
        if states.shape[1] != (heads + 2 * kv_heads) * head_dim or not self.attends(head_dim):
            raise ValueError(
                f"rows of {states.shape[1]} are not {heads} query and 2x{kv_heads} key/value "
                f"heads of {head_dim} (a multiple of 64)"
            )
        keys = blocks.keys.contiguous()
        widths = torch.tensor(blocks.widths, dtype=torch.int64)
        ends = blocks.ends.to(torch.int64).contiguous()
        out = torch.empty((nodes, heads * head_dim), dtype=torch.float32)
        status = self._attention(
            states.data_ptr(), nodes, heads, kv_heads, head_dim, scaling, keys.data_ptr(),
            keys.shape[1], widths.data_ptr(), keys.shape[0], blocks.rows, ends.data_ptr(),
            out.data_ptr(),
        )  # fmt: skip
        if status != 0:
            raise MemoryError(f"tree attention could not allocate its scratch ({nodes} nodes)")
        return out


@functools.cache
def _load() -> tuple[SplitKernel | None, str]:
    choice = os.environ.get(KERNEL_VARIABLE, "auto").strip().lower() or "auto"
    if choice in ("0", "false", "no", "off"):
        return None, f"{KERNEL_VARIABLE}={os.environ[KERNEL_VARIABLE]} turns it off"
    if choice != "auto" and choice not in BUILDS:
        return None, f"{KERNEL_VARIABLE} is {choice!r}, not one of auto, amx, avx512, off"
    cpu_flags = cpu_feature_flags()
    reasons = []
    for build in BUILDS if choice == "auto" else [choice]:
        kernel, reason = load_build(build, cpu_flags)
        if kernel is not None:
            return kernel, ""
        reasons.append(reason)
    return None, "; ".join(reasons)


def load_build(build: str, cpu_flags: set[str]) -> tuple[SplitKernel | None, str]:
    """One build of the kernel (``amx`` or ``avx512``), compiled and loaded, or why it cannot be."""
    missing = BUILDS[build] - cpu_flags
    if missing:
        return None, f"this CPU lacks {', '.join(sorted(missing))} for the {build} build"
    import torch  # first: the kernel's OpenMP calls must resolve to PyTorch's own runtime

    del torch
    flags = build_flags(build)
    try:
        library = _load_verified(*_compiled(flags, sorted(cpu_flags)))
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"the {build} kernel could not be built or loaded ({error})"
    if library.amx_request() != 0:
        return None, "Linux did not grant this process AMX's tile state"
    return SplitKernel(library, build), ""


def build_flags(build: str) -> tuple[str, ...]:
    """The compiler flags of a build (``amx`` or ``avx512``)."""
    return (*FLAGS, *TILE_FLAGS) if build == "amx" else (*FLAGS, *NO_TILE_FLAGS)


def split_kernel() -> SplitKernel | None:
    """The kernel, compiled and loaded once per process, or ``None`` where it cannot run."""
    return _load()[0]


def kernel_unavailable_reason() -> str:
    """Why :func:`split_kernel` is ``None``; empty when it is not."""
    return _load()[1]


@functools.cache
def split_product_op() -> Any:
    """``culture_probe::split_product(inputs, head, rest, scales)``, an operator.

    An operator rather than a plain call so that ``torch.compile`` keeps it as one opaque call
    (with a shape-only version for tracing) and fuses the float32 work around it.
    """
    import torch

    @torch.library.custom_op(
        "culture_probe::split_product",
        mutates_args=(),
        schema="(Tensor inputs, Tensor head, Tensor rest, Tensor scales) -> Tensor",
    )
    def split_product(inputs: Any, head: Any, rest: Any, scales: Any) -> Any:
        kernel = split_kernel()
        if kernel is None:
            raise RuntimeError(f"the split kernel is not available: {kernel_unavailable_reason()}")
        return kernel.product(inputs, PackedWeight(head, rest, scales))

    @split_product.register_fake
    def _(inputs: Any, head: Any, rest: Any, scales: Any) -> Any:
        return inputs.new_empty((inputs.shape[0], scales.shape[0]), dtype=torch.float32)

    return split_product


def cpu_builds() -> list[str]:
    """The builds this CPU has the instructions for, in the order ``auto`` tries them."""
    flags = cpu_feature_flags()
    return [build for build, needs in BUILDS.items() if needs <= flags]


def cpu_feature_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them; empty where ``/proc/cpuinfo`` is not there."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _compiled(flags: tuple[str, ...], cpu_flags: list[str]) -> tuple[Path, str]:
    """The shared library for this source, flags, compiler and CPU, and its SHA-256.

    The library is named by a hash of what it is built from; beside it, ``<name>.sha256`` records
    the hash of the bytes this version built. A file whose bytes do not match its record (planted,
    damaged, or built by something else) is never loaded: it is built again over it.
    """
    compiler = _compiler()
    target = kernel_path(flags, cpu_flags, compiler)
    recorded = _recorded_hash(target)
    if recorded is not None and target.is_file() and _sha256(target) == recorded:
        return target, recorded
    return target, _build(compiler, flags, target)


def kernel_path(flags: tuple[str, ...], cpu_flags: list[str], compiler: str) -> Path:
    """Where the library for this source, flags, compiler and CPU is kept in the cache."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(
        b"\0".join(
            [source, " ".join(flags).encode(), compiler.encode(), *map(str.encode, cpu_flags)]
        )
    ).hexdigest()[:16]
    return cache_dir() / "kernels" / f"split_kernel-{digest}.so"


def hash_record(library: Path) -> Path:
    """The file beside a library that records the SHA-256 of the bytes that were built."""
    return library.with_name(library.name + ".sha256")


def _recorded_hash(library: Path) -> str | None:
    try:
        text = hash_record(library).read_text().strip()
    except OSError:
        return None
    return text if len(text) == 64 else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(compiler: str, flags: tuple[str, ...], target: Path) -> str:
    """Compile into ``target`` and record its hash; returns the hash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # built beside the target and renamed into place: a concurrent process never loads half a file
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        result = subprocess.run(
            [compiler, *flags, "-o", str(built), str(SOURCE)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            summary = (result.stderr.strip().splitlines() or ["no output"])[0][:300]
            raise OSError(f"{compiler} exited with {result.returncode}: {summary}")
        digest = _sha256(built)
        record = Path(scratch) / "record"
        record.write_text(digest + "\n")
        # the library first, then its record: a record never vouches for a file not yet in place
        os.replace(built, target)
        os.replace(record, hash_record(target))
    return digest


#: descriptors of the loaded libraries, open for the life of the process: the loader knows each
#: library by the name and file it was opened from, and these keep both unique
_LOADED_DESCRIPTORS: list[int] = []


def _load_verified(path: Path, expected: str) -> ctypes.CDLL:
    """Load a library only if the bytes loaded are the bytes expected.

    The file is opened once; its bytes are hashed through that descriptor and the loader opens the
    same file through it (``/proc/self/fd/N``), so a file swapped after the check is not the one
    loaded.
    """
    descriptor = os.open(path, os.O_RDONLY)
    digest = hashlib.sha256()
    while block := os.read(descriptor, 1 << 20):
        digest.update(block)
    through = Path(f"/proc/self/fd/{descriptor}")
    if digest.hexdigest() != expected or not through.exists():
        os.close(descriptor)
        raise OSError(f"{path} changed after it was checked, or /proc is missing; not loading it")
    _LOADED_DESCRIPTORS.append(descriptor)
    return ctypes.CDLL(str(through))


def compiler() -> str:
    """The C compiler the kernel is built with: ``$CC``, else ``cc`` or ``gcc``."""
    return _compiler()


def _compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc"):
        if candidate and (found := shutil.which(candidate)):
            return found
    raise OSError("no C compiler: set CC or install gcc")
