"""Backends: ``hf`` (transformers, CPU or one GPU), ``vllm``, ``openai`` (any compatible server).

Heavy libraries are imported only when a backend is created, so that ``culture-probe --help`` stays fast
and a missing optional extra gives a clear message.
"""

from __future__ import annotations

import importlib
from typing import Any

from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
    ScoringStopped,
    renormalise,
)
from culture_probe.errors import CultureProbeError, expected_one_of

#: backend name -> (module, class name)
REGISTRY: dict[str, tuple[str, str]] = {
    "hf": ("culture_probe.backends.hf", "HFBackend"),
    "vllm": ("culture_probe.backends.vllm", "VLLMBackend"),
    "openai": ("culture_probe.backends.openai", "OpenAIBackend"),
}


def create_backend(name: str, **options: Any) -> Backend:
    """Instantiate a backend by name, importing its module only now."""
    if name not in REGISTRY:
        raise CultureProbeError(f"unknown backend '{name}' ({expected_one_of(name, REGISTRY)})")
    module_name, class_name = REGISTRY[name]
    module = importlib.import_module(module_name)
    backend: Backend = getattr(module, class_name)(**options)
    return backend


__all__ = [
    "REGISTRY",
    "Backend",
    "BackendInfo",
    "ScoredPrompt",
    "ScoringRequest",
    "ScoringStopped",
    "create_backend",
    "renormalise",
]
