"""The values study asked four ways on one model: per-level shares, agreement and wall time.

Writes the values study (``taxonomy/values.yaml``) with ``elicitation: [first_token, constrained,
written, open]`` added into a scratch folder, runs it with ``culture-probe run`` (whole process,
optionally on a subset of items and proxies, since the written and open levels are generations),
and prints a Markdown section for ``benchmarks/RESULTS.md``: the run's design, each level's
prompts and scoring seconds (from the manifest), the N-way shares of the declared factors, and
per level the agreement with the first-token choice, the distribution shift, the outcome rates,
the item verdicts and the headline sentences about elicitation.

``--partial`` analyses what a stopped run scored (its chunks) in a copy beside it,
``<out>-partial``, when generation is too slow to finish: the levels then hold different numbers of
prompts, and the decomposition is the Type I one of an incomplete design.

``--simulate`` instead checks the verdict on planted synthetic runs
(:mod:`culture_probe.analysis.synthetic`): how often "elicitation-dominated" is called with no
effect, with culture only, and with the level only.

Example:
    python benchmarks/elicitation_levels.py --items family_importance,religion_importance \\
        --proxies US,DE,NG,JP --out /tmp/values-four-levels
    python benchmarks/elicitation_levels.py --simulate
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from culture_probe.formatting import ValueFormat, format_interval, format_ratio

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "taxonomy" / "values.yaml"
LEVELS = ("first_token", "constrained", "written", "open")
#: the study keys whose paths are relative to the study file
PATH_KEYS = ("items", "template", "framings")


def four_level_study(folder: Path, levels: tuple[str, ...]) -> Path:
    """The values study with an ``elicitation:`` key, its paths made absolute, in ``folder``
    beside a copy of the taxonomy."""
    lines = []
    for line in STUDY.read_text(encoding="utf-8").splitlines():
        key = line.split(":", 1)[0]
        if key in PATH_KEYS:
            relative = line.split(":", 1)[1].strip()
            line = f"{key}: {(STUDY.parent / relative).resolve()}"
        if key == "study":
            line = "study: values_four_levels"
        lines.append(line)
    lines.append(f"elicitation: [{', '.join(levels)}]")
    target = folder / "values_four_levels.yaml"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(STUDY.parent / "taxonomy.yaml", folder / "taxonomy.yaml")
    return target


def run(study: Path, out: Path, items: str | None, proxies: str | None, extra: list[str]) -> float:
    """``culture-probe run``, whole process; returns its wall time in seconds."""
    command = [sys.executable, "-c", "from culture_probe.cli import main; main()"]
    command += ["run", str(study), "--out", str(out)]
    command += ["--items", items] if items else []
    command += ["--proxies", proxies] if proxies else []
    started = time.perf_counter()
    subprocess.run([*command, *extra], check=True)
    return time.perf_counter() - started


def markdown(out: Path, wall: float) -> str:
    """The section for RESULTS.md, from the run directory."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    shares = pd.read_parquet(out / "stats" / "factor_summary.parquet")
    table = pd.read_parquet(out / "stats" / "elicitation_stats.parquet")
    study = table.loc[table["scope"] == "study"].set_index("level")
    per_level = manifest.get("elicitation", {})
    ran = f"`culture-probe run` wall time {wall:.0f} s" if wall == wall else "stopped, scored part"
    lines = [f"Design: {manifest['design']}; {ran}.", ""]
    lines += [
        "| level | prompts | scoring s | agreement with first_token [95% Wilson] | cells "
        "| JS shift, bits [95%] | refused | abstained | invalid |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level, row in study.iterrows():
        cost = per_level.get(level, {})
        lines.append(
            f"| {level} | {cost.get('prompts', '')} | {cost.get('seconds', float('nan')):.0f} "
            f"| {_interval(row, 'agreement')} | {int(row['n_pairs'])} "
            f"| {_interval(row, 'js_shift', format_ratio)} | {row['refusal_rate']:.1%} "
            f"| {row['abstention_rate']:.1%} | {row['invalid_rate']:.1%} |"
        )
    lines += ["", "| factor | share [95%] | items leading |", "|---|---|---|"]
    for _, row in shares.sort_values("share", ascending=False).iterrows():
        lines.append(
            f"| {row['factor']} | {row['share']:.1%} [{row['share_low']:.1%}, "
            f"{row['share_high']:.1%}] | {int(row['n_items_leading'])} |"
        )
    items = table.loc[(table["scope"] == "item") & (table["level"] == study.index[0])]
    lines += ["", "| item | elicitation share | culture share | p (BH) | verdict |"]
    lines += ["|---|---|---|---|---|"]
    for _, row in items.iterrows():
        lines.append(
            f"| {row['item_id']} | {row['elicitation_share']:.1%} | {row['culture_share']:.1%} "
            f"| {row['p_elicitation_bh']:.2g} | {row['verdict']} |"
        )
    sentences = [c["sentence"] for c in summary.get("claims", []) if "elicitation" in c["key"]]
    return "\n".join([*lines, "", *(f"- {s}" for s in sentences)])


def partial_copy(out: Path) -> Path:
    """``<out>-partial``: the scored prompts of a stopped run, analysed."""
    from culture_probe.analysis.cli import analyze_run

    target = out.with_name(out.name + "-partial")
    target.mkdir(exist_ok=True)
    chunks = sorted((out / "chunks").glob("chunk-*.parquet"))
    responses = pd.concat([pd.read_parquet(path) for path in chunks], ignore_index=True)
    responses = responses.drop_duplicates("prompt_id", keep="last")
    plan = pd.read_parquet(out / "plan.parquet")
    plan.loc[plan["prompt_id"].isin(responses["prompt_id"])].to_parquet(target / "plan.parquet")
    responses.to_parquet(target / "responses.parquet")
    shutil.copy(out / "manifest.json", target / "manifest.json")
    analyze_run(target)
    return target


def simulated_verdicts(n_runs: int = 4, n_items: int = 50) -> str:
    """Share of items called elicitation-dominated, and of unadjusted F tests below 0.05, over
    planted runs of 4 proxies x 3 paraphrases x 2 orders x the four levels."""
    from culture_probe.analysis import analyze, tidy_responses
    from culture_probe.analysis.synthetic import PlantedEffects, simulate_study

    settings = {
        "no effect": PlantedEffects(noise=0.05),
        "culture only (sd 0.2)": PlantedEffects(culture=0.2, noise=0.02),
        "elicitation only (sd 0.25)": PlantedEffects(elicitation=0.25, noise=0.02),
    }
    lines = ["| planted | items | elicitation-dominated | F p < 0.05 |", "|---|---|---|---|"]
    for name, effects in settings.items():
        verdicts, rejected = [], []
        for run in range(n_runs):
            plan, responses = simulate_study(
                effects, n_items=n_items, n_proxies=4, n_paraphrases=3,
                elicitation_levels=LEVELS, seed=100 + run,
            )  # fmt: skip
            result = analyze(tidy_responses(plan, responses), n_bootstrap=20, n_permutations=9)
            table = result.tables["elicitation_stats"]
            items = table.loc[(table["scope"] == "item") & (table["level"] == LEVELS[0])]
            verdicts += list(items["verdict"] == "elicitation-dominated")
            rejected += list(items["p_elicitation"] < 0.05)
        share, tests = sum(verdicts) / len(verdicts), sum(rejected) / len(rejected)
        lines.append(f"| {name} | {len(verdicts)} | {share:.1%} | {tests:.1%} |")
    return "\n".join(lines)


def _interval(row: pd.Series, column: str, style: ValueFormat = "{:.1%}") -> str:
    if pd.isna(row[column]):
        return "-"
    return format_interval(row[column], row[f"{column}_low"], row[f"{column}_high"], style)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", help="item ids, comma-separated (default: all 14)")
    parser.add_argument("--proxies", help="proxy ids, comma-separated (default: all)")
    parser.add_argument("--levels", default=",".join(LEVELS), help="elicitation levels")
    parser.add_argument("--out", type=Path, help="run directory")
    parser.add_argument("--simulate", action="store_true", help="planted synthetic runs instead")
    parser.add_argument("--partial", action="store_true", help="analyse a stopped run's chunks")
    parser.add_argument("extra", nargs="*", help="more `culture-probe run` options, after --")
    arguments = parser.parse_args()
    if arguments.simulate:
        print(simulated_verdicts())
        return
    if arguments.out is None:
        parser.error("--out is required for a run")
    if arguments.partial:
        print(markdown(partial_copy(arguments.out), float("nan")))
        return
    with tempfile.TemporaryDirectory() as folder:
        study = four_level_study(Path(folder), tuple(arguments.levels.split(",")))
        wall = run(study, arguments.out, arguments.items, arguments.proxies, arguments.extra)
    print(markdown(arguments.out, wall))


if __name__ == "__main__":
    main()
