"""Model as a factor beside culture and wording: compare runs of different models on one plan.

The entry point is :func:`compare` (also ``culture_probe.compare`` and ``culture-probe compare``):
it reads two or more run directories, pairs their prompts by ``prompt_id`` and returns a
:class:`Comparison` whose tables say, per item, how far apart the models are (with intervals that
resample wordings), whether that gap is larger than the wording noise (model x wording tests with
Benjamini-Hochberg across items), how stable the ranking of the models is across wordings
(Kendall's W, reversal probabilities) and, with human data, which model is closer to the people of
each country (MaxP / AvgP / MinP / CPS). Runs of different plans are refused unless
``shared_only=True``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from culture_probe.compare._comparison import Comparison, compare, compare_runs
from culture_probe.compare._plans import PlanMismatchError
from culture_probe.compare._runs import ComparedRun, read_run, unique_labels

__all__ = [
    "ComparedRun",
    "Comparison",
    "PlanMismatchError",
    "compare",
    "compare_runs",
    "read_run",
    "unique_labels",
]


class _CallableModule(types.ModuleType):
    """Importing ``culture_probe.compare`` binds the package attribute ``compare`` to this module,
    which would hide the function of the same name that ``culture_probe`` re-exports; calling the
    module calls the function, so ``cp.compare([...])`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Comparison:
        return compare(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
