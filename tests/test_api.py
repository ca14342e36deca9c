"""The Python API: ``cp.run`` returns what it wrote, ``cp.load_run`` reads it back, runs resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import culture_probe as cp
from culture_probe.backends import Backend, BackendInfo
from culture_probe.errors import CultureProbeError, InputError
from packaged_studies import SLICES

SLICE = {"items": ["family_importance"], "proxies": "JP,NG"}


@pytest.fixture(scope="module")
def api_run(packaged_study_runs: Any) -> cp.Run:
    """One run of a small slice through ``cp.run`` on the session's embedded model: the
    session's run of the values study's slice, which is this one."""
    items, proxies = SLICES["values"]
    assert (items.split(","), proxies) == (SLICE["items"], SLICE["proxies"])
    return packaged_study_runs["values"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_run_returns_every_table_it_wrote(api_run: cp.Run) -> None:
    folder = api_run.path
    pd.testing.assert_frame_equal(api_run.plan, pd.read_parquet(folder / "plan.parquet"))
    pd.testing.assert_frame_equal(api_run.responses, pd.read_parquet(folder / "responses.parquet"))
    written = sorted(path.stem for path in (folder / "stats").glob("*.parquet"))
    assert sorted(api_run.stats) == written and "item_stats" in written
    for name in written:
        pd.testing.assert_frame_equal(
            api_run.stats[name].reset_index(drop=True),
            pd.read_parquet(folder / "stats" / f"{name}.parquet"),
            check_dtype=False,
        )
    assert api_run.summary == json.loads((folder / "summary.json").read_text())
    assert api_run.summary["headline"]
    assert api_run.manifest["n_prompts"] == len(api_run.plan) == len(api_run.tidy)
    assert api_run.report_path == folder / "report.html" and api_run.report_path.is_file()


@pytest.mark.slow
def test_tidy_joins_each_prompt_with_its_answer(api_run: cp.Run) -> None:
    tidy = api_run.tidy.set_index("prompt_id")
    responses = api_run.responses.set_index("prompt_id")
    assert set(tidy["proxy"]) == {"JP", "NG"}
    assert (tidy["answer"] == responses.loc[tidy.index, "answer"]).all()
    assert tidy["score"].between(0, 1).all()


@pytest.mark.slow
def test_load_run_reads_back_what_run_returned(api_run: cp.Run) -> None:
    loaded = cp.load_run(api_run.path)
    assert isinstance(loaded, cp.Run) and loaded.path == api_run.path
    pd.testing.assert_frame_equal(loaded.responses, api_run.responses)
    pd.testing.assert_frame_equal(loaded.tidy, api_run.tidy)
    assert loaded.summary == api_run.summary
    assert sorted(loaded.stats) == sorted(api_run.stats)
    pd.testing.assert_frame_equal(
        loaded.stats["item_stats"], api_run.stats["item_stats"], check_dtype=False
    )


@pytest.mark.slow
def test_running_again_resumes_and_scores_nothing(
    api_run: cp.Run, hf_backend: Any, repo: Path
) -> None:
    chunks = sorted((api_run.path / "chunks").iterdir())
    stamps = [path.stat().st_mtime_ns for path in chunks]

    class SameModelScoringNothing(Backend):
        """The session model's identity (so the same run key); any prompt sent fails the test."""

        def info(self) -> BackendInfo:
            return hf_backend.info()  # type: ignore[no-any-return]

        def score(self, requests: Any) -> Any:
            raise AssertionError(f"{len(requests)} prompts scored again")

    again = cp.run(
        repo / "taxonomy" / "values.yaml",
        backend=SameModelScoringNothing(),
        out=api_run.path,
        bootstrap=100,
        report=False,
        **SLICE,  # type: ignore[arg-type]
    )
    assert sorted((api_run.path / "chunks").iterdir()) == chunks
    assert [path.stat().st_mtime_ns for path in chunks] == stamps
    pd.testing.assert_frame_equal(again.responses, api_run.responses)


def test_a_backend_object_and_a_model_name_are_not_both_given(hf_backend: Any) -> None:
    with pytest.raises(CultureProbeError, match="either a backend name"):
        cp.run("taxonomy/values.yaml", model="embedded", backend=hf_backend)


def test_load_run_of_a_folder_that_is_not_a_run_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"{tmp_path}: is not a run directory"):
        cp.load_run(tmp_path)


def test_importing_the_package_loads_no_heavy_library() -> None:
    heavy = ("torch", "pandas", "transformers", "numpy", "culture_probe.compare")
    code = (
        "import sys, culture_probe as cp; cp.run; cp.load_run; cp.Run; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_compare_and_export_are_public_names() -> None:
    assert {"run", "load_run", "Run", "compare", "export"} <= set(cp.__all__)
