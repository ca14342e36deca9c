"""The quickstart notebook runs from top to bottom: every cell, on the embedded model, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The notebook runner is a test extra (pyproject's [test]); without it the test cannot run and
# says so in the summary (-ra) rather than passing.
nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (ipykernel)")


def test_the_quickstart_notebook_runs_every_cell(repo: Path) -> None:
    import culture_probe

    if not hasattr(culture_probe, "run"):
        pytest.skip("the notebook uses the public API (culture_probe.run), not in this checkout")
    notebook = nbformat.read(repo / "examples" / "quickstart.ipynb", as_version=4)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(repo)}},  # cwd: the repository root
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "the chart cell should display a figure"
    texts = "".join(str(o.get("text", "")) for o in outputs)
    assert "items differ by more than the wording noise" in texts
