"""Runs of different plans are refused with an error naming what differs, or compared on the
prompts they share when asked; runs are given as folders or as objects with a ``.path``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from culture_probe.compare import PlanMismatchError, compare
from culture_probe.errors import InputError
from test_compare_stats import make_run, synthetic_plan, synthetic_responses


def two_runs(tmp_path: Path, **second: object) -> tuple[Path, Path]:
    plan = synthetic_plan()
    other_plan = second.pop("plan", plan)
    a = make_run(tmp_path / "a", "model-a", plan, synthetic_responses(plan, seed=1))
    b = make_run(
        tmp_path / "b",
        "model-b",
        other_plan,
        synthetic_responses(other_plan, seed=2),
        **second,  # type: ignore[arg-type]
    )
    return a, b


def test_a_different_study_hash_is_named(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, study_hash="0123456789abcdef" * 4)
    with pytest.raises(PlanMismatchError, match=r"study hash ssssssssssss vs 0123456789ab"):
        compare([a, b])


def test_a_different_template_is_named_with_its_file(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, template_hash="f" * 64)
    with pytest.raises(PlanMismatchError, match=r"template multiple_choice\.en\.j2 hash tttt"):
        compare([a, b])


def test_different_items_are_named_and_shared_only_compares_the_rest(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, plan=synthetic_plan(("q1", "q2", "q4")))
    with pytest.raises(PlanMismatchError, match=r"items only in .*a: q3; only in .*b: q4") as error:
        compare([a, b])
    assert "128 prompts are shared" in str(error.value)
    assert "--shared-only" in str(error.value)
    result = compare([a, b], shared_only=True, n_bootstrap=200)
    assert result.summary["n_prompts"] == 128
    assert result.summary["n_left_out"] == 128  # 64 prompts of q3 in a, 64 of q4 in b
    assert set(result.tables["item_differences"]["item_id"]) == {"q1", "q2"}
    assert result.tables["runs"]["n_left_out"].tolist() == [64, 64]
    assert result.summary["headline"][0].startswith("128 prompts not shared by every run")


def test_runs_without_a_shared_prompt_are_refused_even_with_shared_only(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path, plan=synthetic_plan(("q7",)))
    with pytest.raises(PlanMismatchError, match="share no prompt"):
        compare([a, b], shared_only=True)


def test_the_same_run_twice_and_a_single_run_are_refused(tmp_path: Path) -> None:
    a, _ = two_runs(tmp_path)
    with pytest.raises(InputError, match="the same run is given twice"):
        compare([a, Path(str(a) + "/")])
    with pytest.raises(InputError, match="at least two runs, got 1"):
        compare([a])


def test_a_folder_that_is_not_a_finished_run_is_named(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path)
    (b / "responses.parquet").unlink()
    with pytest.raises(InputError, match=r"b: key 'responses.parquet': missing responses.parquet"):
        compare([a, b])
    with pytest.raises(InputError, match="expected a run directory or a run"):
        compare([a, 42])


@dataclass
class Run:
    """Stands for the API's ``Run``: only ``.path`` is read."""

    path: Path


def test_runs_are_read_from_any_object_with_a_path(tmp_path: Path) -> None:
    a, b = two_runs(tmp_path)
    from_objects = compare([Run(a), Run(b)], n_bootstrap=200)
    from_strings = compare([str(a), str(b)], n_bootstrap=200)
    assert from_objects.models == ["model-a (hf, float32)", "model-b (hf, float32)"]
    assert from_objects.tables["item_differences"].equals(from_strings.tables["item_differences"])


def test_the_package_is_callable_like_the_function_it_exports(tmp_path: Path) -> None:
    import culture_probe.compare as module

    a, b = two_runs(tmp_path)
    assert module([a, b], n_bootstrap=100).models == compare([a, b], n_bootstrap=100).models
