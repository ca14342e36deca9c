"""Backends: ``hf`` (transformers, CPU or one GPU), ``vllm``, ``openai`` (any compatible server).

Heavy libraries are imported only when a backend is created, so that ``culture-probe --help`` stays fast
and a missing optional extra gives a clear message.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
    ScoringStopped,
    check_elicitation,
    renormalise,
)
from culture_probe.backends.options import format_options_help, parse_options
from culture_probe.errors import CultureProbeError, InputError, expected_one_of

#: backend name -> (module, class name)
REGISTRY: dict[str, tuple[str, str]] = {
    "hf": ("culture_probe.backends.hf", "HFBackend"),
    "vllm": ("culture_probe.backends.vllm", "VLLMBackend"),
    "openai": ("culture_probe.backends.openai", "OpenAIBackend"),
}


#: what the CLI passes to every backend; one that a backend does not take is dropped while it
#: keeps the CLI's default, and refused when the user set it
CLI_DEFAULTS: dict[str, Any] = {"dtype": "auto", "batch_size": 16}


def backend_class(name: str) -> type[Backend]:
    """The class of a backend, importing its module only now."""
    if name not in REGISTRY:
        raise CultureProbeError(f"unknown backend '{name}' ({expected_one_of(name, REGISTRY)})")
    module_name, class_name = REGISTRY[name]
    found: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return found


def create_backend(name: str, **options: Any) -> Backend:
    """Instantiate a backend by name with its declared options (:mod:`.options`).

    An option the backend does not declare is an error that lists the ones it does.
    """
    cls = backend_class(name)
    declared = {spec.name for spec in dataclasses.fields(cls.options_class)}
    for key, default in CLI_DEFAULTS.items():
        if key in options and key not in declared:
            if options[key] != default:
                raise InputError(
                    f"the {name} backend does not take --{key.replace('_', '-')}; "
                    f"leave it out (its options: {', '.join(sorted(declared))})",
                    key=key,
                )
            options = {k: v for k, v in options.items() if k != key}
    parse_options(cls.options_class, options)  # refuses before any import or model load
    return cls(**options)


def options_help(name: str) -> str:
    """The options a backend takes (``--option KEY=VALUE``): key, type, default and what it does.

    Example:
        >>> print(options_help("openai").splitlines()[0])
        options of the openai backend (--option KEY=VALUE):
    """
    return format_options_help(
        backend_class(name).options_class, f"options of the {name} backend (--option KEY=VALUE):"
    )


__all__ = [
    "REGISTRY",
    "Backend",
    "BackendInfo",
    "ScoredPrompt",
    "ScoringRequest",
    "ScoringStopped",
    "backend_class",
    "check_elicitation",
    "create_backend",
    "options_help",
    "renormalise",
]
