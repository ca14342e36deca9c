"""Imports follow the flow: no module imports one from a later stage.

taxonomy and study -> plan (design) -> responses (backends, store) -> stats (analysis) -> report,
with the pipeline (runner) and the interfaces (command line, Python API) over all of them. Every
import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import from a
later stage is still a dependency the wrong way round.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "culture_probe"

#: the stages of the flow, first to last; a module may import from its own stage or earlier ones
STAGES: list[tuple[str, set[str]]] = [
    ("foundations", {"errors", "_lazy", "atomic", "columns", "yamlio", "schema", "formatting"}),
    ("statistics", {"agreement"}),  # kappa and alpha, shared by the analysis and the survey
    ("spreadsheets", {"spreadsheet"}),
    ("study", {"taxonomy", "templates", "study", "catalogue"}),
    ("importers", {"importers"}),  # public datasets turned into studies and reference tables
    ("design", {"budget", "design", "planning"}),
    ("backends", {"models", "backends", "engine", "distributed"}),
    ("store", {"store"}),
    ("scoring", {"scoring"}),  # the scoring loop, the run's identity, short-answer matching
    ("analysis", {"analysis"}),
    ("report", {"report", "compare"}),  # compare: the model as a factor, and its page
    ("survey", {"survey"}),  # the literature review's spreadsheets, rendered with report/
    ("events", {"events"}),  # what a run tells its caller; the runner calls it, never back
    ("runner", {"runner"}),
    ("interfaces", {"cli", "_api", "", "export"}),  # "" is the package itself
]
STAGE_OF = {name: index for index, (_, names) in enumerate(STAGES) for name in names}


def unit(module: str) -> str:
    """The part of the package a module belongs to: ``culture_probe.analysis._anova`` -> analysis."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The culture_probe modules a file imports, wherever the import statement sits."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # the version string is package metadata, which any stage may read
            if node.module == "culture_probe" and [a.name for a in node.names] == ["__version__"]:
                continue
            found.add(node.module)
    return {name for name in found if name.split(".")[0] == "culture_probe"}


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(path) for path in MODULES])
def test_no_module_imports_from_a_later_stage(path: Path) -> None:
    own = unit(module_name(path))
    assert own in STAGE_OF, f"{module_name(path)}: add '{own}' to a stage in STAGES"
    later = {
        name
        for name in imported(path)
        if unit(name) in STAGE_OF and STAGE_OF[unit(name)] > STAGE_OF[own]
    }
    assert not later, f"{module_name(path)} ({STAGES[STAGE_OF[own]][0]}) imports {sorted(later)}"


def test_every_import_names_a_module_of_a_known_stage() -> None:
    unknown = {
        f"{module_name(path)} -> {name}"
        for path in MODULES
        for name in imported(path)
        if unit(name) not in STAGE_OF
        and unit(name) not in {"compare", "export"}  # may not be merged yet
    }
    assert not unknown


@pytest.mark.parametrize("path", MODULES, ids=[module_name(path) for path in MODULES])
def test_each_module_imports_without_its_optional_dependencies(path: Path) -> None:
    # vllm, ray and the GPU libraries are imported where they are used, never at module level
    importlib.import_module(module_name(path))
