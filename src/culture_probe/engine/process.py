"""Settings that belong to the whole process, not to one model: who changes them, and when.

A library should not change its caller's process behind its back. The engine therefore touches
process-wide state in two ways only:

Opt-in, for a process that does nothing but score (the CLI calls :func:`tune_process` before it
loads a model; a notebook may too). These cannot be undone, so nothing does them implicitly:

- ``MKL_DISABLE_FAST_MM=1``: MKL's own allocator pools the packing buffers of the bfloat16
  products and grew by a varying 0.1-0.6 GB per process; plain malloc/free keeps peak memory
  steady at the same speed. MKL reads it before its first allocation, so it only takes effect when
  set before any tensor exists, and once read it stays for the life of the process.
- glibc's ``mallopt`` (:func:`reuse_freed_activations`): freed activation buffers stay in the heap
  for the next layer (2-8% faster packs). glibc has no way to read the old values back, so it
  cannot be restored.

Scoped, for the life of one backend (set when it is built, restored by its ``close()``):

- ``torch.set_num_threads`` when the ``threads`` option is given (:class:`ThreadCount`). It must
  stay while the backend lives: PyTorch's intra-op pool is process-wide and each product reads it.

Scoped to one call: transformers' progress bars are turned off while a model loads
(:func:`quiet_loading`) and turned back on afterwards if they were on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: allocations up to this size come from the heap: glibc's ceiling on 64-bit Linux, above the
#: largest activation of a bfloat16 pack (4,096 x 3,072 x 2 bytes = 25 MB)
_HEAP_ALLOCATIONS_UP_TO = 32 * 1024 * 1024
#: freed memory the heap keeps for reuse before returning any to the system
_HEAP_KEEPS = 256 * 1024 * 1024
MKL_ALLOCATOR_VARIABLE = "MKL_DISABLE_FAST_MM"


def tune_process() -> None:
    """Tune the allocators of a process that scores and does nothing else (see the module docs).

    Call it before the first tensor is made; both settings last as long as the process.
    """
    os.environ.setdefault(MKL_ALLOCATOR_VARIABLE, "1")
    reuse_freed_activations()


def reuse_freed_activations() -> bool:
    """Have glibc keep freed activation buffers for the next layer instead of unmapping them.

    By default glibc serves each allocation above 128 kB (every activation of a pack) with a fresh
    mapping, returns it to the system when freed, and the next layer's tensor of the same size is
    page-faulted in and zeroed again. A 4,096-row bfloat16 MLP here took 20 ms that way and 8.5 ms
    with the heap kept; whole packs score 2-8% faster, at the same peak memory. Returns whether the
    setting took (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # another C library, such as musl
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _HEAP_ALLOCATIONS_UP_TO)
        and mallopt(_M_TRIM_THRESHOLD, _HEAP_KEEPS)
    )


class ThreadCount:
    """PyTorch's intra-op thread count, set for a backend's life and restored by :meth:`restore`."""

    def __init__(self, threads: int | None) -> None:
        import torch

        self._previous: int | None = None
        if threads:
            self._previous = torch.get_num_threads()
            torch.set_num_threads(threads)

    def restore(self) -> None:
        """Put back the count found at construction (once; later calls do nothing)."""
        import torch

        if self._previous is not None:
            torch.set_num_threads(self._previous)
            self._previous = None


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' progress bars off while a model loads; as they were afterwards."""
    from transformers.utils import logging as transformers_logging

    were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if were_on:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def default_threads() -> int:
    """All cores: scoring is compute-bound and the runner does nothing else meanwhile."""
    return os.cpu_count() or 1
