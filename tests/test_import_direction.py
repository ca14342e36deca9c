"""Imports follow the flow: no module imports one from a later stage, nor another package's privates.

taxonomy and study -> plan (design) -> responses (backends, store) -> stats (analysis) -> report ->
comparison, with the pipeline (runner) and the interfaces (terminal display, Python API, command
line) over all of them. Each stage is its own step, so that two stages importing each other is a
failure, not a pair hidden in one stage: compare after report (the comparison page uses report's
blocks, never the reverse), events before runner (the runner announces, the events do not know it),
importers after runner (the pipeline scores answers without the dataset importers), the API before
the command line (both share :mod:`culture_probe.terminal`). Every import counts, including those
inside functions and under ``TYPE_CHECKING``: a lazy import from a later stage is still a dependency
the wrong way round. Across packages only public names are imported: ``culture_probe.analysis``, not
``culture_probe.analysis._items``. The rules are explained in ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "culture_probe"

#: the stages of the flow, first to last; a module may import from its own stage or earlier ones
STAGES: list[tuple[str, set[str]]] = [
    (
        "foundations",
        {
            "errors",
            "_lazy",
            "_exit",
            "atomic",
            "columns",
            "yamlio",
            "schema",
            "formatting",
            "bounds",
            "arguments",
            "identifiers",
        },
    ),
    ("statistics", {"agreement"}),  # kappa and alpha, shared by the analysis and the survey
    ("spreadsheets", {"spreadsheet"}),
    ("study", {"taxonomy", "templates", "study", "catalogue"}),
    ("design", {"budget", "design", "planning"}),
    # serve: a GGUF file behind llama.cpp's server, for the openai backend
    ("backends", {"models", "backends", "engine", "distributed", "serve"}),
    ("store", {"store"}),
    # the scoring loop, the run's identity, short-answer matching, the numeric noise floor of a run,
    # open answers mapped to options
    ("scoring", {"scoring", "noise_floor", "mapper"}),
    ("analysis", {"analysis"}),
    ("report", {"report"}),
    ("compare", {"compare"}),  # the model as a factor, and its page built from report's blocks
    ("survey", {"survey"}),  # the literature review's spreadsheets, rendered with report/
    ("events", {"events"}),  # what a run announces; the runner's types only as annotations
    ("runner", {"runner"}),
    ("importers", {"importers"}),  # public datasets turned into studies: a command, not a stage
    ("terminal", {"terminal"}),  # the display of a run, shared by the API and the command line
    ("api", {"_api", "export", ""}),  # "" is the package itself
    ("cli", {"cli"}),
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
    """The culture_probe modules a file imports, wherever the import statement sits.

    ``from culture_probe.analysis import _items`` counts as importing ``culture_probe.analysis._items``.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # the version string is package metadata, which any stage may read
            if node.module == "culture_probe" and [a.name for a in node.names] == ["__version__"]:
                continue
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")}
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


def private_part(module: str) -> bool:
    """Whether a module is private to its package: ``culture_probe.analysis._items`` is,
    ``culture_probe.analysis`` and the top-level ``culture_probe._lazy`` are not."""
    return any(part.startswith("_") for part in module.split(".")[2:])


@pytest.mark.parametrize("path", MODULES, ids=[module_name(path) for path in MODULES])
def test_no_module_imports_another_packages_private_module(path: Path) -> None:
    own = unit(module_name(path))
    private = {name for name in imported(path) if unit(name) != own and private_part(name)}
    assert not private, (
        f"{module_name(path)} imports {sorted(private)}: import the name from the package's "
        "public __init__ (or a public module) instead"
    )


def test_every_import_names_a_module_of_a_known_stage() -> None:
    unknown = {
        f"{module_name(path)} -> {name}"
        for path in MODULES
        for name in imported(path)
        if unit(name) not in STAGE_OF
    }
    assert not unknown


def test_each_unit_belongs_to_one_stage() -> None:
    units = [name for _, names in STAGES for name in names]
    assert len(units) == len(set(units))


@pytest.mark.parametrize(
    ("importer", "imported_unit"),
    [
        ("report", "compare"),  # the comparison page renders a Comparison: it lives in compare/
        ("events", "runner"),  # events annotate with the runner's types: a circle
        ("runner", "importers"),  # short-answer matching belongs beside the scorer
        ("_api", "cli"),  # the API shares the terminal display, it does not reach into the CLI
    ],
)
def test_the_circles_named_in_the_layering_are_each_forbidden(
    importer: str, imported_unit: str
) -> None:
    # each of these edges existed once; the stages above must keep ruling it out
    assert STAGE_OF[imported_unit] > STAGE_OF[importer]


@pytest.mark.parametrize("path", MODULES, ids=[module_name(path) for path in MODULES])
def test_each_module_imports_without_its_optional_dependencies(path: Path) -> None:
    # vllm, ray and the GPU libraries are imported where they are used, never at module level
    importlib.import_module(module_name(path))
