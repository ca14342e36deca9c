"""Soak test of resuming: random ``kill -9`` during scoring, concurrent writers, a damaged chunk.

Scores a small slice of the values study on the embedded model with ``culture-probe score``, killing
the process with SIGKILL at random moments while it scores, then resuming, until the run finishes; it
repeats with fresh run folders until ``--kills`` kills have landed during scoring. Along the way it:

- starts a second ``culture-probe score`` on the same folder while the first one scores, and counts
  how often the second is refused (exit code 2, naming the PID that holds the lock);
- after some kills, truncates the last chunk file (as a crash in the middle of a write on a file
  system without atomic rename would), and checks that the resume sets it aside and scores its
  prompts again.

Every finished run is compared with one uninterrupted run of the same slice: prompts lost, prompts
scored twice (a prompt id in two chunk files, not counting a server's spoiled result asked again),
and the largest difference in any option probability.

Once per soak it also checks that folders are adopted only when they are the run's: ``--out`` at a
folder of the user's own (a ``report.html`` and ``summary.json``) is refused and left unchanged, and
chunks copied into a folder with no manifest are set aside, not counted as this run's answers
(rows wrongly attributed: prompts the resumed run did not score itself).

With ``--healing-rounds N`` it also scores the slice N times through llama.cpp's server behind a
proxy that spoils a random fifth of the replies (an HTML page, a reply cut in half, a reply with no
choices), kills one scoring process in two at a random moment, then lets the server heal and runs
the same command again until the run is whole: prompts lost, prompts scored twice, prompts still
``invalid`` after the healed resume, and the largest probability difference from a clean run
through the same server.

Run: python benchmarks/soak.py [--kills 50] [--seed 0] [--healing-rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SLICE = ["--items", "family_importance,generalised_trust", "--proxies", "US,JP,NG"]
#: ``--proxies`` narrows the slice on a busy machine (each finished run scores the whole slice)


def score_command(out: Path) -> list[str]:
    return [
        sys.executable, "-m", "culture_probe.cli", "score", "taxonomy/values.yaml", *SLICE,
        "--out", str(out), "--chunk-size", "4", "--dtype", "float32",
    ]  # fmt: skip


def environment() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160", "OMP_NUM_THREADS": "2"}


def chunk_files(out: Path) -> list[Path]:
    return sorted((out / "chunks").glob("chunk-*.parquet"))


@dataclass
class Tally:
    kills: int = 0
    runs: int = 0
    lost: int = 0
    duplicated: int = 0
    max_probability_difference: float = 0.0
    concurrent_tries: int = 0
    concurrent_refused: int = 0
    adoption_tries: int = 0
    adoption_refused: int = 0
    wrongly_attributed: int = 0
    damaged: int = 0
    damaged_repaired: int = 0
    resume_seconds: list[float] = field(default_factory=list)
    healing_rounds: int = 0
    spoiled: int = 0
    healing_kills: int = 0
    healing_lost: int = 0
    healing_duplicated: int = 0
    still_invalid: int = 0
    healing_max_difference: float = 0.0


def reference_responses(work: Path) -> pd.DataFrame:
    out = work / "reference"
    subprocess.run(score_command(out), cwd=REPO, env=environment(), check=True, capture_output=True)
    return pd.read_parquet(out / "responses.parquet")


def kill_while_scoring(out: Path, rng: random.Random, tally: Tally) -> bool:
    """Start scoring, kill it at a random moment after its first new chunk; True if it finished."""
    before = len(chunk_files(out))
    started = time.monotonic()
    process = subprocess.Popen(
        score_command(out), cwd=REPO, env=environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while len(chunk_files(out)) <= before and process.poll() is None:
        time.sleep(0.02)
    tally.resume_seconds.append(time.monotonic() - started)
    if process.poll() is not None:
        _check_exit(process)
        return True
    if rng.random() < 0.3:
        try_concurrent(out, process, tally)
    time.sleep(rng.uniform(0.0, 1.5))
    if process.poll() is not None:
        _check_exit(process)
        return True
    process.send_signal(signal.SIGKILL)
    process.wait()
    tally.kills += 1
    return False


def _check_exit(process: subprocess.Popen[str]) -> None:
    stderr = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"scoring failed with exit code {process.returncode}:\n{stderr[-2000:]}")


def try_concurrent(out: Path, first: subprocess.Popen[str], tally: Tally) -> None:
    """A second writer on a folder that is being scored must be refused with the holder's PID.

    A try counts only if the first process still ran when the second had its answer: one that
    finished in between left the folder free, and the second rightly took it over.
    """
    second = subprocess.run(
        score_command(out), cwd=REPO, env=environment(), capture_output=True, text=True, timeout=300
    )
    if first.poll() is not None:
        return
    tally.concurrent_tries += 1
    if second.returncode == 2 and "PID" in (second.stdout + second.stderr):
        tally.concurrent_refused += 1


def damage_last_chunk(out: Path, tally: Tally) -> None:
    files = chunk_files(out)
    if not files:
        return
    last = files[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    tally.damaged += 1


def check_finished(out: Path, reference: pd.DataFrame, tally: Tally, damaged: bool) -> None:
    chunks = pd.concat(pd.read_parquet(path) for path in chunk_files(out))
    own = chunks[chunks.get("failure", pd.Series("", index=chunks.index)) != "server"]
    tally.duplicated += int(own["prompt_id"].duplicated().sum())
    responses = pd.read_parquet(out / "responses.parquet").set_index("prompt_id")
    expected = reference.set_index("prompt_id")
    tally.lost += len(set(expected.index) - set(responses.index))
    shared = expected.index.intersection(responses.index)
    got = np.stack(responses.loc[shared, "probs"].to_numpy())
    want = np.stack(expected.loc[shared, "probs"].to_numpy())
    tally.max_probability_difference = max(
        tally.max_probability_difference, float(np.abs(got - want).max())
    )
    if damaged and any(out.rglob("*.damaged")):
        tally.damaged_repaired += 1
    tally.runs += 1


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def check_adoption(work: Path, tally: Tally) -> None:
    """A user's folder is refused and unchanged; chunks without a manifest are not adopted."""
    mine = work / "my-paper"
    mine.mkdir()
    (mine / "report.html").write_text("<p>my own report</p>")
    (mine / "summary.json").write_text('{"mine": true}')
    before = folder_contents(mine)
    refused = subprocess.run(
        score_command(mine), cwd=REPO, env=environment(), capture_output=True, text=True
    )
    tally.adoption_tries += 1
    if refused.returncode == 2 and "not a run directory" in refused.stderr:
        tally.adoption_refused += int(folder_contents(mine) == before)
    orphans = work / "orphans"
    shutil.copytree(work / "reference" / "chunks", orphans / "chunks")
    subprocess.run(
        score_command(orphans), cwd=REPO, env=environment(), check=True, capture_output=True
    )
    tally.adoption_tries += 1
    adopted = pd.concat(pd.read_parquet(path) for path in chunk_files(orphans))
    # every prompt of the plan must have been scored again by this run, none read from the orphans
    plan = pd.read_parquet(orphans / "plan.parquet")
    tally.wrongly_attributed += len(set(plan["prompt_id"]) - set(adopted["prompt_id"]))
    tally.adoption_refused += int((orphans / "chunks.orphaned").is_dir())


def soak(kills: int, seed: int, work: Path) -> Tally:
    rng = random.Random(seed)
    reference = reference_responses(work)
    tally = Tally()
    check_adoption(work, tally)
    while tally.kills < kills:
        out = work / f"run-{tally.runs}"
        damaged = False
        while not kill_while_scoring(out, rng, tally):
            if not damaged and rng.random() < 0.2:
                damage_last_chunk(out, tally)
                damaged = True
            print(f"\rkills {tally.kills}/{kills}", end="", file=sys.stderr, flush=True)
        check_finished(out, reference, tally, damaged)
        shutil.rmtree(out)
    print(file=sys.stderr)
    return tally


def openai_command(out: Path, url: str) -> list[str]:
    return [
        sys.executable, "-m", "culture_probe.cli", "score", "taxonomy/values.yaml", *SLICE,
        "--backend", "openai", "--option", f"base_url={url}", "--option", "chunk_size=4",
        "--option", "concurrency=2", "--option", "backoff=0.05", "--out", str(out),
    ]  # fmt: skip


def spoiling_faults(users: list[str], rng: random.Random) -> dict[str, Any]:
    """A malformed reply for a random fifth of the prompts, by their user message."""
    from fault_server import HTML, NO_CHOICES_REPLY, TRUNCATED

    kinds = [HTML, TRUNCATED, NO_CHOICES_REPLY]
    chosen = rng.sample(users, max(1, len(users) // 5))
    return {user: rng.choice(kinds) for user in chosen}


def score_through(out: Path, url: str, rng: random.Random, kill: bool) -> bool:
    """Score through the proxy; with ``kill``, SIGKILL at a random moment. True if it finished."""
    process = subprocess.Popen(
        openai_command(out, url), cwd=REPO, env=environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if kill:
        time.sleep(rng.uniform(2.0, 8.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return False
    process.wait(timeout=900)
    _check_exit(process)
    return True


def healing_round(work: Path, url: str, faults: Any, clean: pd.DataFrame, rng: random.Random,
                  tally: Tally) -> None:  # fmt: skip
    """One run through a server that spoils replies, is maybe killed, then heals and resumes."""
    out = work / f"healing-{tally.healing_rounds}"
    users = clean["user"].tolist()
    spoiled = spoiling_faults(users, rng)
    with faults.lock:
        faults.by_prompt.update(spoiled)
    tally.spoiled += len(spoiled)
    if not score_through(out, url, rng, kill=rng.random() < 0.5):
        tally.healing_kills += 1
        score_through(out, url, rng, kill=False)
    with faults.lock:
        faults.by_prompt.clear()  # the server heals
    score_through(out, url, rng, kill=False)
    chunks = pd.concat(pd.read_parquet(path) for path in chunk_files(out))
    own = chunks[chunks.get("failure", pd.Series("", index=chunks.index)) != "server"]
    tally.healing_duplicated += int(own["prompt_id"].duplicated().sum())
    responses = pd.read_parquet(out / "responses.parquet").set_index("prompt_id")
    expected = clean.set_index("prompt_id")
    tally.healing_lost += len(set(expected.index) - set(responses.index))
    tally.still_invalid += int((responses["outcome"] != "answered").sum())
    shared = expected.index.intersection(responses.index)
    got = np.stack(responses.loc[shared, "probs"].to_numpy())
    want = np.stack(expected.loc[shared, "probs"].to_numpy())
    tally.healing_max_difference = max(
        tally.healing_max_difference, float(np.abs(got - want).max())
    )
    tally.healing_rounds += 1
    shutil.rmtree(out)


def healing_soak(rounds: int, seed: int, work: Path, tally: Tally) -> None:
    """``rounds`` runs through llama.cpp's server behind a proxy that spoils, then heals."""
    sys.path.insert(0, str(REPO / "tests"))
    from fault_server import FaultServer, LlamaServer

    rng = random.Random(seed + 1)
    server = LlamaServer().start()
    try:
        clean_out = work / "healing-clean"
        subprocess.run(
            openai_command(clean_out, server.url), cwd=REPO, env=environment(), check=True,
            capture_output=True,
        )  # fmt: skip
        plan = pd.read_parquet(clean_out / "plan.parquet")[["prompt_id", "user"]]
        clean = pd.read_parquet(clean_out / "responses.parquet").merge(plan, on="prompt_id")
        with FaultServer(server.url, lifetime_s=3600) as faults:
            for _ in range(rounds):
                healing_round(work, faults.url, faults, clean, rng, tally)
                print(f"\rhealing rounds {tally.healing_rounds}/{rounds}", end="", file=sys.stderr)
    finally:
        server.kill()
    print(file=sys.stderr)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proxies", default=SLICE[3], help="comma-separated proxy ids")
    parser.add_argument(
        "--healing-rounds", type=int, default=0,
        help="runs through llama.cpp's server that spoils replies, then heals",
    )  # fmt: skip
    args = parser.parse_args()
    SLICE[3] = args.proxies
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="culture-probe-soak-") as work:
        tally = soak(args.kills, args.seed, Path(work))
        if args.healing_rounds:
            healing_soak(args.healing_rounds, args.seed, Path(work), tally)
    minutes = (time.monotonic() - started) / 60
    print(f"## Soak ({date.today()}, {cpu_model()}, {minutes:.1f} min)")
    narrowed = f" --proxies {args.proxies}" if args.proxies != "US,JP,NG" else ""
    healing = f" --healing-rounds {args.healing_rounds}" if args.healing_rounds else ""
    print(
        f"Command: `python benchmarks/soak.py --kills {args.kills} --seed {args.seed}"
        f"{narrowed}{healing}`\n"
    )
    print(
        "| kill -9 during scoring | finished runs | prompts lost | prompts scored twice | "
        "max probability difference | second writer refused | damaged chunks repaired | "
        "foreign folders refused or set aside | rows wrongly attributed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {tally.kills} | {tally.runs} | {tally.lost} | {tally.duplicated} | "
        f"{tally.max_probability_difference:.2e} | "
        f"{tally.concurrent_refused}/{tally.concurrent_tries} | "
        f"{tally.damaged_repaired}/{tally.damaged} | "
        f"{tally.adoption_refused}/{tally.adoption_tries} | {tally.wrongly_attributed} |"
    )
    if tally.resume_seconds:
        median = np.median(tally.resume_seconds)
        print(f"\nMedian time from start to first new chunk: {median:.1f} s")
    if tally.healing_rounds:
        print_healing(tally)


def print_healing(tally: Tally) -> None:
    print(
        "\nThrough llama.cpp's server behind a proxy that spoils replies, then heals:\n\n"
        "| runs | replies spoiled | kill -9 during scoring | prompts lost | prompts scored twice | "
        "still invalid after the healed resume | max probability difference |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {tally.healing_rounds} | {tally.spoiled} | {tally.healing_kills} | "
        f"{tally.healing_lost} | {tally.healing_duplicated} | {tally.still_invalid} | "
        f"{tally.healing_max_difference:.2e} |"
    )


if __name__ == "__main__":
    main()
