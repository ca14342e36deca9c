"""Package attributes imported on first use (PEP 562), to keep ``culture-probe --help`` fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<sources[name]>`` when ``name`` is first used.

    Example:
        >>> getattr_ = lazy_attributes("json", {"JSONDecoder": "decoder"})
        >>> getattr_("JSONDecoder").__name__
        'JSONDecoder'
    """

    def module_getattr(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{sources[name]}"), name)

    return module_getattr
