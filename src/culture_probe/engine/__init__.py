"""The CPU engine behind the ``hf`` backend: packed prefix trees, mixed precision, the split kernel.

The ``hf`` backend enters it through one function, :func:`prepare`, which takes a transformers
model loaded on the host and returns an :class:`Engine` that scores packs of prompts. Nothing here
is needed for correctness: float32 through plain transformers (``--option prefix_sharing=false``)
is the reference every part of the engine is tested against, and it runs on any CPU.

Modules, each with one job:

- :mod:`~culture_probe.engine.core`: :func:`prepare`, :class:`Engine`, the choice of dtype;
- :mod:`~culture_probe.engine.packing`: prompts laid out as prefix trees;
- :mod:`~culture_probe.engine.tree_attention`: attention over a pack, block by block;
- :mod:`~culture_probe.engine.mixed`: ``--dtype mixed``, split-bfloat16 products;
- :mod:`~culture_probe.engine.split_kernel` (and ``split_kernel.c``): the products in C, built
  for this CPU where it has AMX or AVX-512 VNNI, loaded only when its content hash checks out;
- :mod:`~culture_probe.engine.fused`: whole decoder layers around the kernel;
- :mod:`~culture_probe.engine.process`: process-wide settings, opt-in or scoped.

This package imports from :mod:`culture_probe.errors` and :mod:`culture_probe.models` only, never
from a later stage of the flow (runner, analysis, report, CLI).
"""

from __future__ import annotations

from culture_probe.engine.core import (
    DTYPES,
    Engine,
    EngineOptions,
    kernel_build,
    pick_dtype,
    prepare,
)
from culture_probe.engine.packing import PrefixTreePack, default_pack_tokens, pack_prefix_trees
from culture_probe.engine.process import ThreadCount, quiet_loading, tune_process

__all__ = [
    "DTYPES",
    "Engine",
    "EngineOptions",
    "PrefixTreePack",
    "ThreadCount",
    "default_pack_tokens",
    "kernel_build",
    "pack_prefix_trees",
    "pick_dtype",
    "prepare",
    "quiet_loading",
    "tune_process",
]
