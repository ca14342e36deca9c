"""Running a study on the embedded model: real scores, a complete run directory, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from culture_probe.backends import Backend, BackendInfo, ScoredPrompt, ScoringRequest
from culture_probe.errors import CultureProbeError
from culture_probe.planning import PlanFilter, prepare
from culture_probe.runner import RunSettings, run_study
from culture_probe.scoring import requests_for, score_plan, to_canonical
from culture_probe.store import RunDirectory

SLICE = ["--items", "family_importance", "--proxies", "JP,NG"]


def _cli(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "culture_probe.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "160", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, repo: Path) -> Path:
    """One uninterrupted `culture-probe run` on a small slice of the values study."""
    out = tmp_path_factory.mktemp("run") / "values"
    subprocess.run(
        _cli(
            repo,
            "run",
            "taxonomy/values.yaml",
            *SLICE,
            "--out",
            str(out),
            "--bootstrap",
            "200",
            "--chunk-size",
            "6",
        ),
        cwd=repo,
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return out


@pytest.mark.slow
def test_run_directory_holds_every_stage(finished_run: Path) -> None:
    for name in (
        "manifest.json",
        "plan.parquet",
        "responses.parquet",
        "summary.json",
        "report.html",
    ):
        assert (finished_run / name).is_file(), name
    assert list((finished_run / "stats").glob("*.parquet"))
    manifest = json.loads((finished_run / "manifest.json").read_text())
    assert manifest["backend"]["model"] == "SmolLM2-135M-Instruct"
    assert manifest["backend"]["backend"] == "hf"
    assert len(manifest["backend"]["model_hash"]) == 64
    assert manifest["versions"]["transformers"]
    assert manifest["files"] and all(len(digest) == 64 for digest in manifest["files"].values())
    assert manifest["n_prompts"] == len(pd.read_parquet(finished_run / "plan.parquet"))


@pytest.mark.slow
def test_scores_are_distributions_over_the_options(finished_run: Path) -> None:
    plan = pd.read_parquet(finished_run / "plan.parquet")
    responses = pd.read_parquet(finished_run / "responses.parquet")
    assert list(responses["prompt_id"]) == list(plan["prompt_id"])
    probs = np.stack(responses["probs"].to_numpy())
    assert probs.shape == (len(plan), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs >= 0).all()
    assert ((responses["option_mass"] > 0) & (responses["option_mass"] <= 1.0 + 1e-6)).all()
    # the model reads the prompt: answers are not all the same distribution
    assert np.ptp(probs[:, 0]) > 0.05
    assert (responses["answer"] == probs.argmax(axis=1)).all()


@pytest.mark.slow
def test_canonical_order_undoes_the_display_order(hf_backend: object, repo: Path) -> None:
    plan = prepare(
        repo / "taxonomy" / "values.yaml",
        PlanFilter(items=("family_importance",), proxies=("JP",)),
    ).plan
    pair = plan[(plan["paraphrase"] == "p1") & (plan["framing"] == "imagine")].reset_index()
    results = hf_backend.score(requests_for(pair))  # type: ignore[attr-defined]
    canonical = int(pair.index[pair["order"] == "canonical"][0])
    reversed_ = int(pair.index[pair["order"] == "reversed"][0])
    # label "A" shows the first canonical option in one prompt and the last in the other
    assert list(pair.loc[reversed_, "display_to_canonical"]) == [3, 2, 1, 0]
    moved = to_canonical(results[reversed_], pair.loc[reversed_, "display_to_canonical"])
    assert moved["probs"][3] == pytest.approx(results[reversed_].label_probs[0])
    assert moved["probs"][0] == pytest.approx(results[reversed_].label_probs[3])
    kept = to_canonical(results[canonical], pair.loc[canonical, "display_to_canonical"])
    assert kept["probs"] == pytest.approx(list(results[canonical].label_probs))


@pytest.mark.slow
def test_killed_run_resumes_with_nothing_lost_or_scored_twice(
    tmp_path: Path, repo: Path, finished_run: Path
) -> None:
    out = tmp_path / "killed"
    command = _cli(
        repo, "score", "taxonomy/values.yaml", *SLICE, "--out", str(out), "--chunk-size", "6"
    )
    process = subprocess.Popen(
        command, cwd=repo, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while len(list((out / "chunks").glob("chunk-*.parquet"))) < 2:
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "no chunk was written in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before = len(RunDirectory(out).results())
    total = len(pd.read_parquet(out / "plan.parquet"))
    assert 0 < written_before < total
    assert not (out / "responses.parquet").exists()

    resumed = subprocess.run(command, cwd=repo, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {written_before:,} of {total:,} prompts already scored" in resumed.stderr
    chunks = pd.concat(pd.read_parquet(p) for p in sorted((out / "chunks").glob("chunk-*.parquet")))
    assert len(chunks) == total and chunks["prompt_id"].is_unique  # none twice, none lost
    assert not list(out.rglob("*.tmp"))

    expected = pd.read_parquet(finished_run / "responses.parquet")
    actual = pd.read_parquet(out / "responses.parquet")
    assert list(actual["prompt_id"]) == list(expected["prompt_id"])
    np.testing.assert_allclose(np.stack(actual["probs"]), np.stack(expected["probs"]), atol=1e-6)
    assert list(actual["answer"]) == list(expected["answer"])


def test_a_run_directory_refuses_another_design(
    tmp_path: Path, repo: Path, hf_backend: object
) -> None:
    from culture_probe.scoring import build_manifest

    first = prepare(
        repo / "taxonomy" / "values.yaml", PlanFilter(items=("family_importance",), proxies=("JP",))
    )
    second = prepare(
        repo / "taxonomy" / "values.yaml", PlanFilter(items=("family_importance",), proxies=("NG",))
    )
    RunDirectory.open(tmp_path / "run", build_manifest(first, hf_backend), first.plan)  # type: ignore[arg-type]
    with pytest.raises(CultureProbeError, match="holds a different run"):
        RunDirectory.open(tmp_path / "run", build_manifest(second, hf_backend), second.plan)  # type: ignore[arg-type]


def test_identical_prompts_are_scored_once(tmp_path: Path, repo: Path) -> None:
    prepared = prepare(
        repo / "taxonomy" / "values.yaml", PlanFilter(items=("family_importance",), proxies=("JP",))
    )
    plan = prepared.plan.head(3)
    doubled = pd.concat(
        [plan, plan.assign(prompt_id=plan["prompt_id"] + "-copy")], ignore_index=True
    )

    class CountingBackend(Backend):
        preferred_chunk_size = 100
        seen = 0

        def info(self) -> BackendInfo:
            return BackendInfo("counting", "none", "0", "float32")

        def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
            self.seen += len(requests)
            return [ScoredPrompt(r.prompt_id, (0.4, 0.3, 0.2, 0.1), 0.9) for r in requests]

    backend = CountingBackend()
    run = RunDirectory(tmp_path)
    score_plan(run, doubled, backend)
    assert backend.seen == 3
    assert len(run.results()) == 6


def test_the_progress_rate_counts_this_sessions_prompts_over_its_time() -> None:
    from culture_probe.terminal import ScoringRate

    rate = ScoringRate(started=10.0)

    assert rate.add(1024, now=42.0) == "32.0 prompts/s"  # 1,024 in 32 s
    assert rate.add(1024, now=74.0) == "32.0 prompts/s"  # 2,048 in 64 s
    assert rate.add(96, now=75.0) == "33.0 prompts/s"  # 2,144 in 65 s, not the last chunk's 96/s
    assert ScoringRate(started=5.0).add(3, now=5.0) == ""  # no time has passed yet


@pytest.mark.slow
def test_a_damaged_chunk_is_set_aside_and_its_prompts_scored_again(
    tmp_path: Path, repo: Path, hf_backend: object, recording_events: Any
) -> None:
    settings = RunSettings(
        study=repo / "taxonomy" / "values.yaml",
        out=tmp_path / "run",
        filters=PlanFilter(items=("family_importance",), proxies=("JP",)),
        chunk_size=10,
    )
    whole = run_study(settings, backend=hf_backend, analyse=False)  # type: ignore[arg-type]
    chunks = sorted((settings.out / "chunks").glob("chunk-*.parquet"))  # type: ignore[operator]
    assert [len(pd.read_parquet(path)) for path in chunks] == [10, 10, 4]
    # a disk that filled up, or a copy cut short, leaves a chunk that does not read
    last = chunks[-1]
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(CultureProbeError, match=f"{last.name}.*run the same command again"):
        RunDirectory(settings.out).results()  # type: ignore[arg-type]

    events = recording_events()
    resumed = run_study(settings, backend=hf_backend, analyse=False, events=events)  # type: ignore[arg-type]

    damaged = last.with_name(last.name + ".damaged")
    assert events.set_aside == [damaged] and len(damaged.read_bytes()) == 100  # kept, not lost
    assert events.resumed == (24, 20) and events.advanced == 4
    repairs = json.loads((settings.out / "manifest.json").read_text())["repairs"]  # type: ignore[operator]
    assert [repair["set_aside"] for repair in repairs] == ["chunks/chunk-000003.parquet.damaged"]
    saved = pd.concat(pd.read_parquet(p) for p in (settings.out / "chunks").glob("*.parquet"))  # type: ignore[operator]
    assert len(saved) == 24 and saved["prompt_id"].is_unique  # nothing lost, nothing twice
    pd.testing.assert_frame_equal(resumed.responses, whole.responses)
    pd.testing.assert_frame_equal(
        pd.read_parquet(settings.out / "responses.parquet"),
        whole.responses,  # type: ignore[operator]
    )


def test_a_backend_failing_mid_run_keeps_what_was_scored_and_says_what_to_do(
    tmp_path: Path, repo: Path
) -> None:
    plan = prepare(
        repo / "taxonomy" / "values.yaml", PlanFilter(items=("family_importance",), proxies=("JP",))
    ).plan

    class RunsOutOfMemory(Backend):
        preferred_chunk_size = 10
        calls = 0

        def info(self) -> BackendInfo:
            return BackendInfo("failing", "none", "0", "float32")

        def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return [ScoredPrompt(r.prompt_id, (0.4, 0.3, 0.2, 0.1), 0.9) for r in requests]

    run = RunDirectory(tmp_path)
    with pytest.raises(CultureProbeError, match=r"out of memory.*lower --batch-size") as failed:
        score_plan(run, plan, RunsOutOfMemory())
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert len(run.results()) == 10  # the first chunk is kept for the resume


def test_a_chunk_number_damaged_twice_keeps_both_damaged_files(tmp_path: Path) -> None:
    run = RunDirectory.open(tmp_path, {"run_key": "k", "plan_hash": "h"}, pd.DataFrame())

    def results(*ids: str) -> pd.DataFrame:
        return pd.DataFrame(
            {"prompt_id": list(ids), "probs": [[1.0, 0.0]] * len(ids), "option_mass": 1.0}
        ).assign(answer=0, outcome="answered", generated="")

    run.append_chunk(results("a", "b"))
    for attempt in range(2):
        damaged = run.append_chunk(results("c"))
        damaged.write_bytes(b"PAR1 cut short")
        assert run.set_aside_damaged_chunks() == [
            damaged.with_name(damaged.name + (".damaged", ".damaged-2")[attempt])
        ]
    assert list(run.results()["prompt_id"]) == ["a", "b"]  # c counts as not scored: it is redone
    repairs = run.manifest()["repairs"]
    assert [repair["set_aside"] for repair in repairs] == [
        "chunks/chunk-000002.parquet.damaged",
        "chunks/chunk-000002.parquet.damaged-2",
    ]
