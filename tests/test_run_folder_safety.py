"""A run folder that cannot lie or be turned against its user.

The lock and every file are opened without following links; a folder is adopted only when it is
this run's; a stage's output is written as a set or not at all; a chunk whose probabilities are
not a distribution is set aside and scored again; a prompt a server spoiled is asked again on
resume while a model's own invalid answer stays; ``report`` refuses a run that was not analysed;
``compare`` and ``export`` refuse probabilities that are not a distribution, naming the run.

Each case asserts the exit code, the message, that nothing outside the run folder changed and
that nothing half-written remains. The runs are scored by small deterministic backends (real
``Backend`` subclasses, no model), so that each case takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import culture_probe as cp
from culture_probe.backends import Backend, BackendInfo, ScoredPrompt, ScoringRequest
from culture_probe.cli import app
from culture_probe.errors import InputError
from culture_probe.planning import PlanFilter
from culture_probe.runner import RunSettings, run_study
from culture_probe.store._chunks import SERVER_FAILURE

LEANING = (0.4, 0.3, 0.2, 0.1)


class Leaning(Backend):
    """Leans to the first option shown; named ``name`` so that two of them are two models."""

    def __init__(self, name: str = "leaning") -> None:
        self.name = name
        self.asked: list[str] = []

    def info(self) -> BackendInfo:
        return BackendInfo(self.name, "none", "0", "float32")

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        self.asked += [request.prompt_id for request in requests]
        return [self.answer(request) for request in requests]

    def answer(self, request: ScoringRequest) -> ScoredPrompt:
        return ScoredPrompt(request.prompt_id, LEANING, 1.0)


class FlakyServer(Leaning):
    """Spoils a third of the prompts the way a server does (a malformed reply) until it heals."""

    healed = False

    def answer(self, request: ScoringRequest) -> ScoredPrompt:
        if not self.healed and int(request.prompt_id, 16) % 3 == 0:
            return ScoredPrompt(
                request.prompt_id, (), 0.0, "invalid", "malformed reply: cut", failure="server"
            )
        return super().answer(request)


class GivesNaN(Leaning):
    """A backend whose log-probabilities come back NaN for one option of half the prompts."""

    def answer(self, request: ScoringRequest) -> ScoredPrompt:
        if int(request.prompt_id, 16) % 2:
            return ScoredPrompt(request.prompt_id, (float("nan"), 0.5, 0.3, 0.2), 1.0)
        return super().answer(request)


def scored_run(
    repo: Path, out: Path, backend: Backend | None = None, analyse: bool = True
) -> cp.Run:
    """The family_importance x (JP, NG) slice of the values study scored by ``backend``."""
    settings = RunSettings(
        study=repo / "taxonomy" / "values.yaml",
        out=out,
        filters=PlanFilter(("family_importance",), ("JP", "NG")),
    )
    run_study(settings, backend=backend or Leaning(), analyse=analyse, report=False, bootstrap=50)
    return cp.Run(out)


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (links as links) with a hash of each regular file."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = "-> " + os.readlink(path)
        elif path.is_file():
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[str(path.relative_to(folder))] = "<other>"
    return found


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output
    return result.exit_code, " ".join(output.split())


@pytest.fixture(scope="module")
def analysed(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One analysed run, copied by the tests that change it."""
    out = tmp_path_factory.mktemp("safety") / "run"
    scored_run(repo, out)
    return out


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run", symlinks=True))


# --- the lock --------------------------------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True], ids=["to_a_file", "dangling"])
def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(
    analysed: Path, tmp_path: Path, dangling: bool
) -> None:
    run = copy_of(analysed, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    if not dangling:
        victim.write_text("39 bytes the user wants to keep, really\n")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    before_run, before_outside = snapshot(run), snapshot(outside)

    code, message = cli("analyze", str(run))

    assert code == 2
    assert f"{run / '.lock'}: is a symbolic link" in message
    assert "never follows links out of a run folder" in message
    assert snapshot(outside) == before_outside  # the target neither emptied nor created
    assert snapshot(run) == before_run


def test_a_lock_that_is_a_fifo_is_refused_with_a_clear_message(
    analysed: Path, tmp_path: Path
) -> None:
    run = copy_of(analysed, tmp_path)
    (run / ".lock").unlink(missing_ok=True)
    os.mkfifo(run / ".lock")
    before = snapshot(run)
    code, message = cli("report", str(run))
    assert code == 2
    assert (
        f"{run / '.lock'}: is a FIFO (named pipe), where the run folder holds a regular file"
        in (message)
    )
    assert snapshot(run) == before


def test_a_stats_folder_that_links_out_is_refused_before_anything_is_written(
    analysed: Path, tmp_path: Path
) -> None:
    run = copy_of(analysed, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "stats", elsewhere)
    (run / "stats").symlink_to(elsewhere)
    before_run, before_elsewhere = snapshot(run), snapshot(elsewhere)
    code, message = cli("analyze", str(run), "--bootstrap", "100")
    assert code == 2 and f"{run / 'stats'}: is a symbolic link" in message
    assert snapshot(run) == before_run and snapshot(elsewhere) == before_elsewhere


# --- adopting a folder -----------------------------------------------------------------------


def test_chunks_without_a_manifest_are_set_aside_not_adopted(repo: Path, tmp_path: Path) -> None:
    first = scored_run(repo, tmp_path / "other", Leaning("another-model"), analyse=False)
    out = tmp_path / "run"
    out.mkdir()
    shutil.copytree(first.path / "chunks", out / "chunks")  # another model's answers, no manifest
    backend = Leaning("this-model")

    run = scored_run(repo, out, backend, analyse=False)

    assert len(backend.asked) == len(run.plan)  # every prompt asked of this model
    assert sorted(os.listdir(out / "chunks.orphaned")) == sorted(os.listdir(first.path / "chunks"))
    repairs = run.manifest["repairs"]
    assert [repair["set_aside"] for repair in repairs] == ["chunks.orphaned"]
    assert "no manifest" in repairs[0]["reason"]


def test_out_pointing_at_a_users_folder_is_refused_and_nothing_in_it_changes(
    repo: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "my-paper"
    mine.mkdir()
    (mine / "report.html").write_text("<p>my own report</p>")
    (mine / "summary.json").write_text('{"mine": true}')
    before = snapshot(mine)
    with pytest.raises(InputError, match="is not empty and is not a run directory") as refused:
        scored_run(repo, mine)
    assert "report.html, summary.json" in str(refused.value)
    assert "give --out a new or empty folder" in str(refused.value)
    assert snapshot(mine) == before


# --- a stage's output is a set ---------------------------------------------------------------

ANALYSE_UNDER_LIMIT = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
from culture_probe.cli import main
sys.argv = ["culture-probe", "analyze", sys.argv[1], "--bootstrap", "100"]
main()
"""


def test_analysis_that_cannot_write_every_table_leaves_no_part_of_a_set(
    analysed: Path, tmp_path: Path
) -> None:
    run = copy_of(analysed, tmp_path)
    sizes = sorted(path.stat().st_size for path in (run / "stats").glob("*.parquet"))
    # the kernel refuses (EFBIG) any file larger than the limit: the smaller tables fit, one does not
    limit = (sizes[len(sizes) // 2] + sizes[-1]) // 2
    shutil.rmtree(run / "stats")
    (run / "summary.json").unlink()
    before = snapshot(run)

    done = subprocess.run(
        [sys.executable, "-c", ANALYSE_UNDER_LIMIT, str(run), str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert done.returncode == 2, done.stderr
    assert "file larger than this process may write" in done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(run) == before  # no stats/ with some of the tables, no summary, no temporary
    code, message = cli("report", str(run))
    assert code == 2 and "the run was not analysed" in message


def test_a_full_analysis_replaces_the_old_set_whole(analysed: Path, tmp_path: Path) -> None:
    run = copy_of(analysed, tmp_path)
    (run / "stats" / "stale_table.parquet").write_bytes(b"from an older version")
    code, _ = cli("analyze", str(run), "--bootstrap", "100")
    assert code == 0
    assert not (run / "stats" / "stale_table.parquet").exists()
    assert sorted(p.stem for p in (run / "stats").glob("*.parquet")) == sorted(
        cp.load_run(analysed).stats
    )
    assert json.loads((run / "summary.json").read_text())["headline"]
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != ".lock"]


# --- chunks checked on read ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spoil, reason",
    [
        (lambda probs: [float("nan"), *probs[1:]], "probability nan is not a finite number"),
        (lambda probs: [-1.0, *probs[1:]], "probability -1 is outside [0, 1]"),
        (lambda probs: [2.0, *probs[1:]], "probability 2 is outside [0, 1]"),
        (lambda probs: [p / 2 for p in probs], "sum to 0.5, not 1"),
    ],
    ids=["nan", "negative", "above_one", "not_summing_to_one"],
)
def test_a_chunk_with_invalid_probabilities_is_set_aside_and_scored_again(
    repo: Path, tmp_path: Path, spoil: object, reason: str
) -> None:
    whole = scored_run(repo, tmp_path / "run", analyse=False)
    chunk = sorted((whole.path / "chunks").glob("chunk-*.parquet"))[0]
    frame = pd.read_parquet(chunk)
    frame.at[3, "probs"] = spoil(list(frame.at[3, "probs"]))  # type: ignore[operator]
    frame.to_parquet(chunk, index=False)
    (whole.path / "responses.parquet").unlink()
    backend = Leaning()

    resumed = scored_run(repo, whole.path, backend, analyse=False)

    assert sorted(backend.asked) == sorted(frame["prompt_id"].unique())  # the chunk, re-scored
    assert chunk.with_name(chunk.name + ".damaged").is_file()
    repair = resumed.manifest["repairs"][0]
    assert repair["set_aside"] == f"chunks/{chunk.name}.damaged" and reason in repair["reason"]
    assert len(resumed.responses) == len(resumed.plan)
    assert all(np.isclose(sum(probs), 1.0) for probs in resumed.responses["probs"])


def test_a_nan_log_probability_is_an_invalid_outcome_never_probability_zero(
    repo: Path, tmp_path: Path
) -> None:
    run = scored_run(repo, tmp_path / "run", GivesNaN(), analyse=False)
    invalid = run.responses[run.responses["outcome"] == "invalid"]
    odd = run.responses["prompt_id"].map(lambda prompt: int(prompt, 16) % 2 == 1)
    assert odd.any() and list(invalid["prompt_id"]) == list(run.responses.loc[odd, "prompt_id"])
    assert invalid["generated"].str.contains("probability nan is not a finite number").all()
    assert all(len(probs) == 0 for probs in invalid["probs"])
    answered = run.responses[run.responses["outcome"] == "answered"]
    assert all(np.isclose(sum(probs), 1.0) for probs in answered["probs"])


def test_a_nan_in_a_servers_log_probabilities_is_a_malformed_reply() -> None:
    from culture_probe.backends.openai import MalformedReply, top_logprobs_of

    reply = {
        "choices": [
            {
                "logprobs": {
                    "content": [
                        {
                            "top_logprobs": [
                                {"token": "A", "logprob": float("nan")},
                                {"token": "B", "logprob": -0.1},
                            ]
                        }
                    ]
                }
            }
        ]
    }
    with pytest.raises(MalformedReply, match="'A' has log-probability nan"):
        top_logprobs_of(reply)


# --- a server's failure is asked again, a model's invalid answer is not ----------------------


def test_prompts_a_server_spoiled_are_asked_again_on_resume(repo: Path, tmp_path: Path) -> None:
    flaky = FlakyServer()
    first = scored_run(repo, tmp_path / "run", flaky, analyse=False)
    spoiled = set(first.responses.loc[first.responses["failure"] == SERVER_FAILURE, "prompt_id"])
    assert (
        spoiled
        and (
            first.responses.loc[first.responses["prompt_id"].isin(spoiled), "outcome"] == "invalid"
        ).all()
    )

    flaky.healed, flaky.asked = True, []
    resumed = scored_run(repo, first.path, flaky, analyse=False)

    assert set(flaky.asked) == spoiled  # only those, each once
    assert (resumed.responses["outcome"] == "answered").all()
    assert (resumed.responses["failure"] == "").all()
    again = Leaning()
    scored_run(repo, first.path, again, analyse=False)
    assert again.asked == []  # nothing left to ask


def test_a_models_own_invalid_answer_stays_an_outcome(repo: Path, tmp_path: Path) -> None:
    class Mumbles(Leaning):
        def answer(self, request: ScoringRequest) -> ScoredPrompt:
            return ScoredPrompt(request.prompt_id, (), 0.0, "invalid", "hmm")

    first = scored_run(repo, tmp_path / "run", Mumbles(), analyse=False)
    assert (first.responses["outcome"] == "invalid").all()
    again = Leaning()
    scored_run(repo, first.path, again, analyse=False)
    assert again.asked == []


# --- report, export and compare --------------------------------------------------------------


def test_report_refuses_a_run_that_was_not_analysed(repo: Path, tmp_path: Path) -> None:
    run = scored_run(repo, tmp_path / "run", analyse=False).path
    before = snapshot(run)
    code, message = cli("report", str(run))
    assert code == 2
    assert f"{run}: the run was not analysed (no summary.json)" in message
    assert f"run `culture-probe analyze {run}` first" in message
    assert snapshot(run) == before


def test_exporting_one_run_twice_writes_its_rows_once(analysed: Path, tmp_path: Path) -> None:
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    assert cli("export", str(analysed), "-o", str(once))[0] == 0
    assert cli("export", str(analysed), str(analysed) + "/", "-o", str(twice))[0] == 0
    assert once.read_bytes() == twice.read_bytes()


@pytest.mark.parametrize("value", [float("nan"), -1.0, 2.0], ids=["nan", "negative", "above_one"])
@pytest.mark.parametrize("command", ["export", "compare"])
def test_compare_and_export_refuse_probabilities_that_are_not_a_distribution(
    analysed: Path, tmp_path: Path, value: float, command: str
) -> None:
    good = analysed
    bad = copy_of(analysed, tmp_path)
    responses = pd.read_parquet(bad / "responses.parquet")
    probs = list(responses.at[5, "probs"])
    responses.at[5, "probs"] = [value, *probs[1:]]
    responses.to_parquet(bad / "responses.parquet", index=False)
    target = tmp_path / ("out.csv" if command == "export" else "out.html")
    before = snapshot(tmp_path)

    code, message = cli(command, str(good), str(bad), "-o", str(target))

    assert code == 2
    assert f"{bad / 'responses.parquet'}: key 'probs': row 5" in message
    assert f"the run {bad} was changed after it was scored" in message
    assert snapshot(tmp_path) == before and not target.exists()


def test_compare_names_the_run_whose_file_is_damaged(analysed: Path, tmp_path: Path) -> None:
    bad = copy_of(analysed, tmp_path)
    (bad / "responses.parquet").write_bytes(b"PAR1 cut short")
    code, message = cli("compare", str(analysed), str(bad), "-o", str(tmp_path / "c.html"))
    assert code == 2
    assert f"{bad / 'responses.parquet'}: does not read as Parquet" in message


def test_a_staging_folder_left_by_a_killed_analysis_is_cleared_on_resume(
    repo: Path, tmp_path: Path
) -> None:
    run = scored_run(repo, tmp_path / "run", analyse=False).path
    staging = run / ".stats.0123456789ab.tmp"  # what atomic_folder leaves after kill -9
    staging.mkdir()
    (staging / "item_stats.parquet").write_bytes(b"half")
    (run / "responses.parquet").unlink()
    scored_run(repo, run, analyse=False)
    assert not staging.exists() and (run / "responses.parquet").is_file()


def test_a_report_that_is_a_link_is_replaced_never_written_through(
    analysed: Path, tmp_path: Path
) -> None:
    run = copy_of(analysed, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.html").write_text("<p>the user's own page</p>")
    (run / "report.html").unlink(missing_ok=True)
    (run / "report.html").symlink_to(outside / "victim.html")
    before = snapshot(outside)
    code, _ = cli("report", str(run))
    assert code == 0
    assert snapshot(outside) == before
    assert not (run / "report.html").is_symlink() and "<html" in (run / "report.html").read_text()
