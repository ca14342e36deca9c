"""Package attributes imported on first use (PEP 562), to keep ``culture-probe --help`` fast."""

from __future__ import annotations

import importlib
import sys
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
        value = getattr(importlib.import_module(f"{package}.{sources[name]}"), name)
        # Kept in the package, so that later lookups skip this function, and so that a submodule
        # of the same name (``compare`` in ``culture_probe.compare``), which importing it binds
        # on the package, does not shadow the function.
        setattr(sys.modules[package], name, value)
        return value

    return module_getattr
