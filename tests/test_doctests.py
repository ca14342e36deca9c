"""Every ``>>>`` example in the package's docstrings runs and shows what it says it shows.

One test per module, so a failure names the module; every module must import without its optional
engines (vLLM, Ray), which the package imports only when a backend asks for them. The examples
run in an empty temporary folder, so an example that writes a file leaves nothing in the
repository. The folder links to the repository's ``taxonomy/`` and ``probes/``, so that an example
names a study as a user would (``"taxonomy/values.yaml"``).
"""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src"
PACKAGE = SOURCE / "culture_probe"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("name", _module_names())
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module(name)
    for shipped in ("taxonomy", "probes"):
        (tmp_path / shipped).symlink_to(SOURCE.parent / shipped, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in finder.find(module, name):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
