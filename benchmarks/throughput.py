"""Scoring throughput: the ``hf`` backend against lm-evaluation-harness on the values study's prompts.

Both harnesses score the same prompts (a seeded sample of the default values study, chat template
applied) with the same weights (the safetensors folder ``culture_probe.models.converted_copy`` makes
of the embedded SmolLM2-135M-Instruct GGUF) in the same dtype, each as a whole process of its own
from start to written results. The table gives prompts per second over the scoring calls alone,
whole-process seconds, peak resident memory, the ratios, and the fraction of the machine's compute
limit (a 2048 x 2048 float32 matmul measured here) that the FLOPs each harness actually computed
reach. Fidelity: every prompt's distribution from the default (prefix-sharing) path against a
float32 run with no reuse (padded batches), as a Jensen-Shannon distance in bits.

lm-evaluation-harness (``lm-eval==0.4.13``) is installed in its own virtual environment under
``.bench/`` (ignored by git), with the same CPU torch wheel as the project. Its task is written as
local files: a JSONL dataset whose ``text`` is the prompt with the chat template already rendered
(its ``--apply_chat_template`` and ``--system_instruction`` cannot vary the system message per
prompt) and a task YAML with ``output_type: multiple_choice`` and the option labels as choices.

Run: python benchmarks/throughput.py [--prompts 200] [--batch-size 16] [--repeats 1]
         [--dtype float32] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
LM_EVAL_VENV = BENCH / "lm-eval-venv"
LM_EVAL_VERSION = "0.4.13"
TORCH_VERSION = "2.13.0"
TASK_NAME = "culture_probe_values"
STUDY = REPO / "taxonomy" / "values.yaml"


# ---------------------------------------------------------------------------------------------
# Machine and FLOP accounting


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 ``size x size`` matmul rate: the machine's compute limit."""
    import torch

    left, right = torch.randn(size, size), torch.randn(size, size)
    left @ right  # warm-up: thread pool and caches
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count needs from a decoder's config.json."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int

    @classmethod
    def read(cls, folder: Path) -> ModelShape:
        config = json.loads((folder / "config.json").read_text())
        return cls(
            config["hidden_size"],
            config["intermediate_size"],
            config["num_hidden_layers"],
            config["num_attention_heads"],
            config.get("num_key_value_heads", config["num_attention_heads"]),
            config["vocab_size"],
        )

    def non_embedding_params(self) -> int:
        """q, k, v, o projections and the gated MLP of every layer (norms are negligible)."""
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        mlp = 3 * self.hidden * self.intermediate
        return self.layers * (attention + mlp)

    def linear_flops_per_token(self) -> int:
        return 2 * self.non_embedding_params()

    def attention_flops_per_pair(self) -> int:
        """QK^T and AV for one (query, key) pair over all heads and layers."""
        return 4 * self.hidden * self.layers

    def logits_flops(self) -> int:
        return 2 * self.hidden * self.vocab


def packed_flops(shape: ModelShape, sequences: list[list[int]], pack_tokens: int) -> dict[str, int]:
    """FLOPs of the prefix-tree path: every node once, dense attention inside each pack."""
    from culture_probe.backends.hf import pack_prefix_trees

    packs = pack_prefix_trees(sequences, pack_tokens)
    nodes = sum(len(pack.token_ids) for pack in packs)
    pairs = sum(len(pack.token_ids) ** 2 for pack in packs)
    flops = (
        nodes * shape.linear_flops_per_token()
        + pairs * shape.attention_flops_per_pair()
        + len(sequences) * shape.logits_flops()
    )
    return {"tokens": nodes, "flops": flops}


def batched_flops(
    shape: ModelShape, lengths: list[int], batch_size: int, every_position_logits: bool
) -> dict[str, int]:
    """FLOPs of length-sorted padded batches; lm-eval computes logits at every position."""
    ordered = sorted(lengths)
    tokens = pairs = 0
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        tokens += len(batch) * max(batch)
        pairs += len(batch) * max(batch) ** 2
    logits = tokens if every_position_logits else len(lengths)
    flops = (
        tokens * shape.linear_flops_per_token()
        + pairs * shape.attention_flops_per_pair()
        + logits * shape.logits_flops()
    )
    return {"tokens": tokens, "flops": flops}


# ---------------------------------------------------------------------------------------------
# Prompts and the lm-eval task


def sample_prompts(count: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of the values study's prompts, with the chat template rendered."""
    from transformers import AutoTokenizer

    from culture_probe.models import converted_copy, resolve_model
    from culture_probe.runner import prepare, requests_for

    plan = prepare(STUDY).plan
    chosen = sorted(random.Random(seed).sample(range(len(plan)), min(count, len(plan))))
    tokenizer = AutoTokenizer.from_pretrained(str(converted_copy(resolve_model("embedded"))))
    prompts = []
    for request in requests_for(plan.iloc[chosen]):
        text = tokenizer.apply_chat_template(
            request.messages(), tokenize=False, add_generation_prompt=True
        )
        prompts.append(
            {
                "prompt_id": request.prompt_id,
                "system": request.system,
                "user": request.user,
                "option_labels": list(request.option_labels),
                "text": str(text),
                "token_ids": tokenizer.encode(str(text), add_special_tokens=False),
            }
        )
    return prompts


def write_lm_eval_task(prompts: list[dict[str, Any]], folder: Path) -> None:
    """A local multiple_choice task: the rendered prompt as context, the labels as choices.

    ``target_delimiter`` is empty because the rendered prompt already ends where the assistant's
    answer starts, so the continuation is the bare label, as the ``hf`` backend reads it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"prompt_id": p["prompt_id"], "text": p["text"], "choices": p["option_labels"]}
        for p in prompts
    ]
    dataset = folder / "prompts.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / f"{TASK_NAME}.yaml").write_text(
        f"task: {TASK_NAME}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {dataset}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{text}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        "doc_to_target: 0\n"
        'target_delimiter: ""\n'
        "metric_list:\n  - metric: acc\n"
    )


def ensure_lm_eval() -> Path:
    """lm-eval's own virtual environment, created once; returns its python."""
    python = LM_EVAL_VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import lm_eval.models.huggingface, importlib.metadata as m; print(m.version('lm_eval'))",
    ]
    if python.exists():
        found = subprocess.run(probe, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == LM_EVAL_VERSION:
            return python
    subprocess.run([sys.executable, "-m", "venv", str(LM_EVAL_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    # the project's CPU torch first, so that lm-eval's dependency on torch is already met
    subprocess.run([*pip, f"torch=={TORCH_VERSION}"], check=True)
    # the hf extra brings transformers and accelerate, which the ``hf`` model type needs
    subprocess.run([*pip, f"lm-eval[hf]=={LM_EVAL_VERSION}"], check=True)
    return python


# ---------------------------------------------------------------------------------------------
# Whole processes


@dataclass
class ProcessRun:
    wall_s: float
    peak_rss_mib: float
    output: dict[str, Any]


def run_process(command: list[str], out: Path) -> ProcessRun:
    """Run a command to its end; wall time, the child's peak RSS, and the JSON it wrote."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(errors.decode(errors="replace")[-4000:])
        raise SystemExit(f"failed: {' '.join(command)}")
    return ProcessRun(wall, usage.ru_maxrss / 1024, json.loads(out.read_text()))


def score_in_process(args: argparse.Namespace) -> None:
    """The ``hf`` backend as a whole process: load, score the prompts file, write the results."""
    start = time.perf_counter()
    from culture_probe.backends import ScoringRequest, create_backend

    rows = [json.loads(line) for line in Path(args.prompts_file).read_text().splitlines()]
    requests = [
        ScoringRequest(r["prompt_id"], r["system"], r["user"], tuple(r["option_labels"]))
        for r in rows
    ]
    options = json.loads(args.backend_options)
    backend = create_backend("hf", model="embedded", dtype=args.dtype, **options)
    loaded = time.perf_counter()
    results = backend.score(requests)
    scored = time.perf_counter()
    output = {
        "timing": {"load_s": loaded - start, "scoring_s": scored - loaded},
        "samples": [
            {"prompt_id": r.prompt_id, "probs": list(r.label_probs), "mass": r.option_mass}
            for r in results
        ],
    }
    temporary = Path(args.out + ".tmp")
    temporary.write_text(json.dumps(output))
    temporary.replace(args.out)


# ---------------------------------------------------------------------------------------------
# The comparison


def js_distance_bits(first: list[float], second: list[float]) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(first, second, base=2))


def run_ours(prompts_file: Path, work: Path, dtype: str, options: dict[str, Any]) -> ProcessRun:
    out = work / f"ours-{dtype}-{'-'.join(f'{k}{v}' for k, v in options.items())}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "score",
        "--prompts-file",
        str(prompts_file),
        "--out",
        str(out),
        "--dtype",
        dtype,
        "--backend-options",
        json.dumps(options),
    ]
    return run_process(command, out)


def run_lm_eval(python: Path, work: Path, model: Path, dtype: str, batch_size: int) -> ProcessRun:
    out = work / f"lm-eval-{dtype}.json"
    command = [
        str(python),
        str(Path(__file__).resolve().parent / "lm_eval_driver.py"),
        "--task-dir",
        str(work / "task"),
        "--task",
        TASK_NAME,
        "--model",
        str(model),
        "--dtype",
        dtype,
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
    ]
    return run_process(command, out)


def best_of(repeats: int, run: Any) -> ProcessRun:
    """The fastest of ``repeats`` runs: other load on a shared machine only ever slows a run down."""
    runs = [run() for _ in range(repeats)]
    return min(runs, key=lambda r: r.output["timing"]["scoring_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("score", help="(internal) the hf backend as one whole process")
    child.add_argument("--prompts-file", required=True)
    child.add_argument("--out", required=True)
    child.add_argument("--dtype", default="float32")
    child.add_argument("--backend-options", default="{}")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sweep", action="store_true", help="also time pack sizes")
    args = parser.parse_args()
    if args.command == "score":
        score_in_process(args)
        return
    compare(args)


def compare(args: argparse.Namespace) -> None:
    from culture_probe.models import converted_copy, resolve_model

    model = converted_copy(resolve_model("embedded"))
    shape = ModelShape.read(model)
    python = ensure_lm_eval()
    work = BENCH / "throughput"
    prompts = sample_prompts(args.prompts, args.seed)
    prompts_file = work / "prompts.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    prompts_file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    write_lm_eval_task(prompts, work / "task")
    load_before = os.getloadavg()
    peak = matmul_gflops()
    sequences = [p["token_ids"] for p in prompts]
    lengths = [len(s) for s in sequences]
    from culture_probe.backends.hf import DEFAULT_PACK_TOKENS

    rows: list[tuple[str, ProcessRun, dict[str, int]]] = []
    lm_eval = best_of(
        args.repeats, lambda: run_lm_eval(python, work, model, args.dtype, args.batch_size)
    )
    rows.append(("lm-eval 0.4.13", lm_eval, batched_flops(shape, lengths, args.batch_size, True)))
    plain_options = {"prefix_sharing": False, "batch_size": args.batch_size}
    plain = best_of(args.repeats, lambda: run_ours(prompts_file, work, args.dtype, plain_options))
    rows.append(
        ("hf, padded batches", plain, batched_flops(shape, lengths, args.batch_size, False))
    )
    sizes = [256, DEFAULT_PACK_TOKENS, 1024] if args.sweep else [DEFAULT_PACK_TOKENS]
    for size in sizes:
        options = {"pack_tokens": size}
        shared = best_of(
            args.repeats, lambda o=options: run_ours(prompts_file, work, args.dtype, o)
        )
        rows.append((f"hf, prefix trees ({size})", shared, packed_flops(shape, sequences, size)))
    peak_after = matmul_gflops()
    load_after = os.getloadavg()
    print_report(args, rows, plain, peak, peak_after, load_before, load_after, model)


def print_report(
    args: argparse.Namespace,
    rows: list[tuple[str, ProcessRun, dict[str, int]]],
    reference: ProcessRun,
    peak: float,
    peak_after: float,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    model: Path,
) -> None:
    count = len(reference.output["samples"])
    lm_eval = rows[0][1]
    lm_rate = count / lm_eval.output["timing"]["scoring_s"]
    limit = max(peak, peak_after)
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, {platform.processor() or 'cpu'}; python {platform.python_version()}"
    )
    print(
        f"prompts: {count} sampled (seed {args.seed}) from {STUDY.name}; dtype {args.dtype}; "
        f"batch {args.batch_size}; weights: {model}"
    )
    print(
        f"compute limit: float32 2048x2048 matmul {peak:.1f} GFLOP/s before, "
        f"{peak_after:.1f} after (limit = the higher)"
    )
    print(f"load average (1/5/15 min): before {load_before}, after {load_after}")
    header = (
        "harness",
        "prompts/s",
        "x lm-eval",
        "whole s",
        "x lm-eval",
        "peak MiB",
        "tokens",
        "GFLOP",
        "of limit",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, run, flops in rows:
        scoring = run.output["timing"]["scoring_s"]
        rate = count / scoring
        cells = (
            name,
            f"{rate:.2f}",
            f"{rate / lm_rate:.2f}",
            f"{run.wall_s:.1f}",
            f"{lm_eval.wall_s / run.wall_s:.2f}",
            f"{run.peak_rss_mib:.0f}",
            f"{flops['tokens']:,}",
            f"{flops['flops'] / 1e9:.0f}",
            f"{flops['flops'] / scoring / 1e9 / limit:.0%}",
        )
        print("| " + " | ".join(cells) + " |")
    reference_probs = {s["prompt_id"]: s["probs"] for s in reference.output["samples"]}
    for name, run, _ in rows[2:]:
        distances = [
            js_distance_bits(s["probs"], reference_probs[s["prompt_id"]])
            for s in run.output["samples"]
        ]
        print(
            f"fidelity, {name} vs padded float32 batches: max JS distance "
            f"{max(distances):.2e} bits, median {statistics.median(distances):.2e}"
        )


if __name__ == "__main__":
    main()
