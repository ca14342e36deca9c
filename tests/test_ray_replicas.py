"""Scoring over Ray actors: a local Ray instance, two CPU actors each holding the hf backend.

A slice of 2 items x 2 proxies is scored once in this process and once sharded over the two
actors; the responses must be the same, and a run stopped half-way and resumed under Ray must end
with every prompt scored once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from culture_probe.distributed import RayBackend, shard
from culture_probe.planning import PlanFilter, prepare
from culture_probe.runner import RunSettings, run_study
from culture_probe.scoring import build_manifest, score_plan
from culture_probe.store import RunDirectory

#: starts a local Ray instance and two actors that each load the model
pytestmark = pytest.mark.slow

SLICE = PlanFilter(("family_importance", "generalised_trust"), ("JP", "none"))


@pytest.fixture(scope="module")
def prepared(repo: Path) -> Any:
    return prepare(repo / "taxonomy" / "values.yaml", SLICE)


@pytest.fixture(scope="module")
def replicas() -> Iterator[RayBackend]:
    import ray

    backend = RayBackend(
        "hf", {"model": "embedded", "dtype": "float32", "threads": 1}, address="local", replicas=2
    )
    yield backend
    backend.close()
    ray.shutdown()


def settings(repo: Path, out: Path) -> RunSettings:
    return RunSettings(study=repo / "taxonomy" / "values.yaml", out=out, filters=SLICE)


def test_two_actors_give_the_responses_of_one_process(
    hf_backend: Any, replicas: RayBackend, repo: Path, tmp_path: Path
) -> None:
    single = run_study(settings(repo, tmp_path / "single"), backend=hf_backend, analyse=False)
    sharded = run_study(settings(repo, tmp_path / "ray"), backend=replicas, analyse=False)
    assert len(single.responses) == 96
    assert sharded.responses["prompt_id"].tolist() == single.responses["prompt_id"].tolist()
    assert sharded.responses["answer"].tolist() == single.responses["answer"].tolist()
    # the same prompts in other batches: float32 rounding of the padded batch only
    for ours, theirs in zip(sharded.responses["probs"], single.responses["probs"], strict=True):
        assert list(ours) == pytest.approx(list(theirs), abs=1e-5)
    assert sharded.responses["option_mass"].tolist() == pytest.approx(
        single.responses["option_mass"].tolist(), abs=1e-5
    )


def test_a_run_resumed_under_ray_keeps_its_key_and_scores_only_the_rest(
    hf_backend: Any,
    replicas: RayBackend,
    prepared: Any,
    repo: Path,
    tmp_path: Path,
    recording_events: Any,
) -> None:
    single_manifest = build_manifest(prepared, hf_backend)
    ray_manifest = build_manifest(prepared, replicas)
    assert ray_manifest["run_key"] == single_manifest["run_key"]
    assert ray_manifest["backend"]["options"]["ray"] == {"address": "local", "replicas": 2}
    # a run stopped after 20 prompts in one process ...
    run = RunDirectory.open(tmp_path / "run", single_manifest, prepared.plan)
    score_plan(run, prepared.plan.iloc[:20], hf_backend)
    # ... resumed over the actors
    events = recording_events()
    resumed = run_study(settings(repo, run.path), backend=replicas, analyse=False, events=events)
    assert events.resumed == (96, 20) and events.advanced == 76
    assert resumed.responses["prompt_id"].is_unique and len(resumed.responses) == 96


def test_each_replica_gets_one_contiguous_shard_of_a_chunk(
    hf_backend: Any, replicas: RayBackend
) -> None:
    assert [len(part) for part in shard(list(range(9)), 2)] == [5, 4]
    assert shard(list(range(3)), 4) == [[0], [1], [2]]
    assert replicas.preferred_chunk_size == 2 * hf_backend.preferred_chunk_size
