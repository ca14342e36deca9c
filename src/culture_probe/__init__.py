"""culture-probe: is it culture or is it wording?

Probe language models with many wordings of culturally framed questions and decompose the variance of
their answers into culture, wording and option order.

The Python API (the command line calls the same functions)::

    import culture_probe as cp

    run = cp.run("taxonomy/values.yaml", model="embedded")  # plan, score, analyse, report
    run.stats["item_stats"]  # every table is a pandas DataFrame
    again = cp.load_run(run.path)  # read a run directory back

Names are imported on first use, so ``import culture_probe`` loads neither pandas nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from culture_probe._lazy import lazy_attributes

if TYPE_CHECKING:
    from culture_probe._api import Run, load_run, run
    from culture_probe.compare import compare  # type: ignore[import-not-found, unused-ignore]
    from culture_probe.errors import CultureProbeError, InputError
    from culture_probe.export import export  # type: ignore[import-not-found, unused-ignore]

__version__ = "0.1.0"

__all__ = [
    "CultureProbeError",
    "InputError",
    "Run",
    "__version__",
    "compare",
    "export",
    "load_run",
    "run",
]

__getattr__ = lazy_attributes(
    __name__,
    {
        "run": "_api",
        "load_run": "_api",
        "Run": "_api",
        "CultureProbeError": "errors",
        "InputError": "errors",
        # written in culture_probe/compare/ and culture_probe/export.py
        "compare": "compare",
        "export": "export",
    },
)
