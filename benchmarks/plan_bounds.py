"""Peak memory and time of ``culture-probe plan`` at and just over the design limit.

Writes, into a scratch folder, studies over the packaged values items (14 items x 4 paraphrases x
2 orders x 3 framings = 336 prompts per persona) that cross the packaged taxonomy's axes, and
times ``culture-probe plan`` on each with ``/usr/bin/time -v`` (``nice -n 5``):

- ``at the limit``: region x 7 religions = 595 personas, 199,920 prompts (the default limit is
  200,000), planned whole and written to parquet;
- ``just over``: the same with one placebo, 200,256 prompts: refused;
- ``budget at the limit``: region x all 19 religions, 542,640 prompts, with ``--budget 200000``:
  drawn item by item from the levels, never expanded;
- ``three axes``: region x religion x ethnicity, 37,145 personas, 12.5 million prompts: refused,
  with and without ``--budget 1000`` (whose smallest estimable budget is 4.2 million).

Run: python benchmarks/plan_bounds.py [--only NAME ...]; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from culture_probe.taxonomy import load_taxonomy  # noqa: E402

RELIGIONS_AT_LIMIT = 7


def study_text(axes: dict[str, list[str]], placebos: list[str]) -> str:
    """A study over the packaged values items crossing ``axes``."""
    listed = "".join(f"  {axis}: [{', '.join(values)}]\n" for axis, values in axes.items())
    persona = " ".join(
        {"religion": "{{ religion.adjective }}", "ethnicity": "{{ ethnicity.name }}"}.get(a, "")
        for a in axes
    )
    controls = f"controls:\n  placebos: [{', '.join(placebos)}]\n" if placebos else ""
    return (
        "study: bounds\n"
        "semantic_proxy: emotions_and_values\n"
        f"taxonomy: {REPO / 'taxonomy' / 'taxonomy.yaml'}\n"
        f"items: {REPO / 'probes' / 'values' / 'items.yaml'}\n"
        f"template: {REPO / 'probes' / 'templates' / 'multiple_choice.en.j2'}\n"
        f"framings: {REPO / 'probes' / 'framings' / 'persona.en.yaml'}\n"
        f"axes:\n{listed}cross: [{', '.join(axes)}]\n"
        f'persona:\n  culture: "a {persona} person {{{{ region.in_phrase }}}}"\n'
        '  placebo: "a person {{ placebo.clause }}"\n' + controls
    )


def cases(folder: Path) -> dict[str, list[str]]:
    """Each case's ``culture-probe plan`` arguments, after writing its study."""
    values = {
        c.id: [v.id for v in c.values]
        for c in load_taxonomy(REPO / "taxonomy" / "taxonomy.yaml").categories
        if c.values
    }
    region, religion = values["region"], values["religion"]
    studies = {
        "at the limit": study_text(
            {"region": region, "religion": religion[:RELIGIONS_AT_LIMIT]}, []
        ),
        "just over": study_text(
            {"region": region, "religion": religion[:RELIGIONS_AT_LIMIT]}, ["colour_green"]
        ),
        "budget at the limit": study_text({"region": region, "religion": religion}, []),
        "three axes": study_text(
            {"region": region, "religion": religion, "ethnicity": values["ethnicity"]}, []
        ),
    }
    paths = {}
    for name, text in studies.items():
        paths[name] = folder / (name.replace(" ", "_") + ".yaml")
        paths[name].write_text(text)
    plan = str(folder / "plan.parquet")
    return {
        "at the limit": [str(paths["at the limit"]), "-o", plan],
        "just over": [str(paths["just over"])],
        "budget at the limit": [
            str(paths["budget at the limit"]),
            "--budget",
            "200000",
            "-o",
            plan,
        ],
        "three axes": [str(paths["three axes"])],
        "three axes, --budget 1000": [str(paths["three axes"]), "--budget", "1000"],
    }


def measure(arguments: list[str]) -> dict[str, str]:
    """Exit status, wall and CPU time and peak memory of one ``plan`` under /usr/bin/time -v."""
    command = ["nice", "-n", "5", "/usr/bin/time", "-v", sys.executable, "-m"]
    command += ["culture_probe.cli", "plan", *arguments]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    report = done.stderr

    def field(label: str) -> str:
        found = re.search(rf"{re.escape(label)}: (.+)", report)
        return found.group(1).strip() if found else "?"

    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    message = next((line for line in report.splitlines() if line.startswith("error:")), "")
    design = next((line for line in done.stdout.splitlines() if " = " in line), "")
    return {
        "exit": field("Exit status"),
        "wall": field("Elapsed (wall clock) time (h:mm:ss or m:ss)"),
        "cpu": f"{cpu:.1f} s",
        "peak": f"{int(field('Maximum resident set size (kbytes)')) / 1024:.0f} MB",
        "says": (message or design)[:150],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only these cases")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        chosen = cases(Path(scratch))
        print("| case | exit | wall | CPU | peak memory | what plan says |")
        print("|---|---|---|---|---|---|")
        for name, arguments in chosen.items():
            if options.only and name not in options.only:
                continue
            row = measure(arguments)
            print(
                f"| {name} | {row['exit']} | {row['wall']} | {row['cpu']} | {row['peak']} | "
                f"{row['says']} |",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
