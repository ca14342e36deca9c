"""Generation throughput: written answers on the ``hf`` backend against lm-eval and llama.cpp's server.

Each contender writes a greedy answer of at most ``--max-new-tokens`` tokens to the same prompts (a
seeded sample of the values study as ``generate`` mode shows them: options listed, the answer
written freely; chat template applied), from the same weights, each as a whole process of its own
from start to written results, one after the other in one command:

- **culture-probe**: the ``hf`` backend in ``generate`` mode, float32, prompts decoded in batches
  of ``--batch-rows`` rows, each prompt copying the prefix it shares with the one admitted before
  and each row leaving at its own end (:mod:`culture_probe.engine.generate`); from
  the runtime environment ``throughput.py`` sets up (culture-probe as a user installs it), ending
  as the CLI ends, without the interpreter's teardown;
- **lm-evaluation-harness** ``generate_until`` (``lm-eval==0.4.13``, in its own environment), float32,
  on the safetensors folder culture-probe converts the embedded GGUF into, through
  ``lm_eval_generate_driver.py``: a local task whose text is the rendered prompt, stopping at the
  chat template's end of turn, the same batch size;
- **llama.cpp's server** (``llama-cpp-python[server]``), started by the process and stopped at its
  end, one completion request a prompt, greedy, no repeat penalty, the prompts sent sorted so that
  its reuse of the previous prompt's prefix finds the most: on an F32 GGUF of the same weights
  (the embedded Q4_1 file dequantized by llama.cpp's own quantize tool, as the ``hf`` backend
  dequantizes it), and on the Q4_1 file as shipped;
- culture-probe one prompt at a time (``batch_rows=1``): what batching gains, and how often its
  float32 greedy answers differ from the batched ones (float rounding of other batch shapes).

Tokens are counted the same way for every contender: the written text encoded again with the
model's tokenizer. Tokens per second and prompts per second are over the generation calls alone
(the load excluded); "whole s" is the process from start to end, and the ratio to lm-eval is given
for both. With ``--repeats N`` every contender runs N whole processes, the contenders taking turns,
and the table keeps each one's fastest: on a shared machine other load only ever slows a process
down, and taking turns gives every contender the same chances at a quiet moment.

Run: python benchmarks/generation.py [--prompts 96] [--max-new-tokens 48] [--batch-rows 32]
         [--seed 0] [--repeats 1] [--no-one-at-a-time] [--no-llama-cpp] [--report-only]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from throughput import (
    BENCH,
    LM_EVAL_VERSION,
    ProcessRun,
    ensure_lm_eval,
    ensure_runtime,
    run_process,
    sample_prompts,
)

TASK_NAME = "culture_probe_values_written"
WORK = BENCH / "generation"
#: the end of turn of the embedded model's chat template, where every contender stops
END_OF_TURN = "<|im_end|>"


# ---------------------------------------------------------------------------------------------
# The contenders' own processes


def write_in_process(args: argparse.Namespace) -> None:
    """The ``hf`` backend as a whole process: load, write the answers, save them."""
    start = time.perf_counter()
    from culture_probe._exit import end_process
    from culture_probe.backends import ScoringRequest, create_backend
    from culture_probe.engine import tune_process

    tune_process()  # as the CLI does: this process only generates
    rows = [json.loads(line) for line in Path(args.prompts_file).read_text().splitlines()]
    requests = [
        ScoringRequest(r["prompt_id"], r["system"], r["user"], tuple(r["option_labels"]))
        for r in rows
    ]
    backend = create_backend(
        "hf",
        model="embedded",
        dtype=args.dtype,
        mode="generate",
        temperature=0.0,
        max_new_tokens=args.max_new_tokens,
    )
    backend.generation = replace(backend.generation, batch_rows=args.batch_rows)  # type: ignore[attr-defined]
    loaded = time.perf_counter()
    chunk = backend.preferred_chunk_size
    results = []
    for first in range(0, len(requests), chunk):
        results.extend(backend.score(requests[first : first + chunk]))
    written = time.perf_counter()
    samples = [{"prompt_id": r.prompt_id, "text": r.generated} for r in results]
    save(args.out, {"load_s": loaded - start, "generation_s": written - loaded}, samples)
    end_process()  # as the CLI ends: no interpreter teardown


def serve_and_ask(args: argparse.Namespace) -> None:
    """llama.cpp's server as a whole process: start it, ask every prompt, stop it."""
    import httpx

    start = time.perf_counter()
    rows = [json.loads(line) for line in Path(args.prompts_file).read_text().splitlines()]
    port = free_port()
    threads = str(os.cpu_count() or 1)
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", args.gguf,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--n_threads", threads, "--n_threads_batch", threads,
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(url, server)
        loaded = time.perf_counter()
        samples = []
        with httpx.Client(timeout=600) as client:
            for row in sorted(rows, key=lambda r: r["text"]):
                reply = client.post(
                    f"{url}/completions",
                    json={
                        "prompt": row["text"],
                        "max_tokens": args.max_new_tokens,
                        "temperature": 0.0,
                        "repeat_penalty": 1.0,
                        "stop": [END_OF_TURN],
                    },
                )
                reply.raise_for_status()
                text = reply.json()["choices"][0]["text"]
                samples.append({"prompt_id": row["prompt_id"], "text": text})
        written = time.perf_counter()
    finally:
        server.terminate()
        server.wait(timeout=60)
    save(args.out, {"load_s": loaded - start, "generation_s": written - loaded}, samples)


def wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("llama_cpp.server exited while starting")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("llama_cpp.server did not start within 300 s")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def save(out: str, timing: dict[str, float], samples: list[dict[str, str]]) -> None:
    temporary = Path(out + ".tmp")
    temporary.write_text(json.dumps({"timing": timing, "samples": samples}))
    temporary.replace(out)


# ---------------------------------------------------------------------------------------------
# Set-up: the lm-eval task and the F32 GGUF


def write_lm_eval_task(prompts: list[dict[str, Any]], folder: Path, max_new_tokens: int) -> None:
    """A local ``generate_until`` task: the rendered prompt as context, greedy, to the end of turn.

    ``exact_match`` against an empty target is only there because a task needs a metric.
    """
    folder.mkdir(parents=True, exist_ok=True)
    dataset = folder / "prompts.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"prompt_id": p["prompt_id"], "text": p["text"]}) + "\n" for p in prompts
        )
    )
    (folder / f"{TASK_NAME}.yaml").write_text(
        f"task: {TASK_NAME}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {dataset}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        'doc_to_text: "{{text}}"\n'
        'doc_to_target: ""\n'
        'target_delimiter: ""\n'
        "generation_kwargs:\n"
        f'  until: ["{END_OF_TURN}"]\n'
        "  do_sample: false\n"
        "  temperature: 0.0\n"
        f"  max_gen_toks: {max_new_tokens}\n"
        "metric_list:\n  - metric: exact_match\n"
    )


def float32_gguf(source: Path, target: Path) -> Path:
    """The GGUF with every tensor dequantized to F32 by llama.cpp's quantize tool, made once."""
    if target.exists():
        return target
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_ALL_F32
    params.allow_requantize = True  # Q4_1 tensors in, F32 out
    partial = target.with_suffix(".partial")
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), ctypes.byref(params)
    )
    if status != 0:
        raise SystemExit(f"llama.cpp could not write an F32 copy of {source} (status {status})")
    partial.replace(target)
    return target


# ---------------------------------------------------------------------------------------------
# The comparison


@dataclass
class Contender:
    name: str
    command: list[str]
    out: Path


def compare(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    from culture_probe.models import converted_copy, embedded_gguf, resolve_model

    model = converted_copy(resolve_model("embedded"))
    if args.report_only:
        prompts = [json.loads(line) for line in (WORK / "prompts.jsonl").read_text().splitlines()]
        record = json.loads((WORK / "runs.json").read_text())
        report(args, prompts, record, AutoTokenizer.from_pretrained(str(model)))
        return
    lm_eval_python = ensure_lm_eval()
    ours_python = ensure_runtime()
    WORK.mkdir(parents=True, exist_ok=True)
    prompts = sample_prompts(args.prompts, args.seed)
    prompts_file = WORK / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    write_lm_eval_task(prompts, WORK / "task", args.max_new_tokens)
    gguf = embedded_gguf()
    gguf_f32 = (
        gguf if args.no_llama_cpp else float32_gguf(gguf, WORK / "SmolLM2-135M-Instruct.F32.gguf")
    )
    script = str(Path(__file__).resolve())
    common = ["--prompts-file", str(prompts_file), "--max-new-tokens", str(args.max_new_tokens)]

    def ours(rows: int) -> list[str]:
        out = WORK / f"hf-{rows}.json"
        return [str(ours_python), script, "write", *common, "--batch-rows", str(rows),
                "--out", str(out)]  # fmt: skip

    def llama(file: Path) -> list[str]:
        return [sys.executable, script, "serve", *common, "--gguf", str(file),
                "--out", str(WORK / f"llama-{file.stem}.json")]  # fmt: skip

    lm_eval = [
        str(lm_eval_python),
        str(Path(__file__).resolve().parent / "lm_eval_generate_driver.py"),
        "--task-dir", str(WORK / "task"), "--task", TASK_NAME, "--model", str(model),
        "--dtype", "float32", "--batch-size", str(args.batch_rows),
        "--out", str(WORK / "lm-eval.json"),
    ]  # fmt: skip
    contenders = [
        (f"lm-eval {LM_EVAL_VERSION} generate_until, float32, batch {args.batch_rows}", lm_eval),
        (f"culture-probe hf, float32, batches of {args.batch_rows}", ours(args.batch_rows)),
    ]
    if not args.no_llama_cpp:
        contenders.append(("llama.cpp server, F32 GGUF (same weights)", llama(gguf_f32)))
        contenders.append(("llama.cpp server, Q4_1 GGUF (as shipped)", llama(gguf)))
    if not args.no_one_at_a_time:
        contenders.append(("culture-probe hf, float32, one prompt at a time", ours(1)))
    started = time.strftime("%Y-%m-%d %H:%M")
    record: dict[str, Any] = {"started": started, "load_before": os.getloadavg(), "runs": {}}
    for repeat in range(args.repeats):
        for name, command in contenders:
            run = run_contender(command, repeat, args.repeats)
            best = record["runs"].get(name)
            if best is None or run["wall_s"] < best["wall_s"]:
                record["runs"][name] = run
            # kept as it goes, so that ``--report-only`` can print the table again
            (WORK / "runs.json").write_text(json.dumps(record))
            print(f"done: {name} in {run['wall_s']:.1f} s", file=sys.stderr)
    record["load_after"] = os.getloadavg()
    (WORK / "runs.json").write_text(json.dumps(record))
    report(args, prompts, record, AutoTokenizer.from_pretrained(str(model)))


def run_contender(command: list[str], repeat: int, repeats: int) -> dict[str, Any]:
    """One whole process of a contender: the load as it started, wall time, peak memory and where
    its answers are (a file of each repeat's own where there are several)."""
    at = command.index("--out") + 1
    out = Path(command[at])
    if repeats > 1:
        out = out.with_name(f"{out.stem}-{repeat}{out.suffix}")
        command = [*command[:at], str(out), *command[at + 1 :]]
    load = os.getloadavg()[0]
    run = run_process(command, out)
    return {"load": load, "wall_s": run.wall_s, "peak": run.peak_rss_mib, "out": str(out)}


def report(
    args: argparse.Namespace, prompts: list[dict[str, Any]], record: dict[str, Any], tokenizer: Any
) -> None:
    """The table of a finished comparison, from its ``runs.json`` and the contenders' outputs."""
    runs = {
        name: ProcessRun(run["wall_s"], run["peak"], json.loads(Path(run["out"]).read_text()))
        for name, run in record["runs"].items()
    }
    loads = {name: run["load"] for name, run in record["runs"].items()}
    # a comparison stopped part way has no load after it: the load now stands in
    before = tuple(record["load_before"])
    after = tuple(record.get("load_after", os.getloadavg()))
    Report(args, prompts, runs, loads, before, after, tokenizer).print(record.get("started", ""))


def cpu_model() -> str:
    found = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in found.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@dataclass
class Report:
    args: argparse.Namespace
    prompts: list[dict[str, Any]]
    runs: dict[str, ProcessRun]
    loads: dict[str, float]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    tokenizer: Any

    def tokens(self, run: ProcessRun) -> int:
        texts = [sample["text"] for sample in run.output["samples"]]
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        return sum(len(ids) for ids in encoded)

    def print(self, started: str) -> None:
        count = len(self.prompts)
        print(
            f"date: {started} to {time.strftime('%H:%M')}; CPU: {cpu_model()}, {os.cpu_count()} cores; "
            f"python {platform.python_version()}"
        )
        print(
            f"prompts: {count} sampled (seed {self.args.seed}) of the values study; greedy; "
            f"max_new_tokens {self.args.max_new_tokens}; batch {self.args.batch_rows}"
        )
        print(f"load average (1/5/15 min): before {self.load_before}, after {self.load_after}")
        names = list(self.runs)
        lm_eval, ours = self.runs[names[0]], self.runs[names[1]]
        lm_rate = self.tokens(lm_eval) / lm_eval.output["timing"]["generation_s"]
        reference = {s["prompt_id"]: s["text"].strip() for s in ours.output["samples"]}
        header = (
            "contender", "tokens", "generation s", "tokens/s", "prompts/s", "x lm-eval tokens/s",
            "whole s", "x lm-eval whole", "peak MiB", "same text as hf batched", "load at start",
        )  # fmt: skip
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for name, run in self.runs.items():
            seconds = run.output["timing"]["generation_s"]
            tokens = self.tokens(run)
            same = sum(
                reference.get(s["prompt_id"]) == s["text"].strip() for s in run.output["samples"]
            )
            cells = (
                name,
                f"{tokens:,}",
                f"{seconds:.1f}",
                f"{tokens / seconds:.1f}",
                f"{count / seconds:.2f}",
                f"{tokens / seconds / lm_rate:.2f}",
                f"{run.wall_s:.1f}",
                f"{lm_eval.wall_s / run.wall_s:.2f}",
                f"{run.peak_rss_mib:.0f}",
                f"{same}/{count}",
                f"{self.loads[name]:.1f}",
            )
            print("| " + " | ".join(cells) + " |")
        generation = (
            lm_eval.output["timing"]["generation_s"] / ours.output["timing"]["generation_s"]
        )
        print(
            f"culture-probe against lm-eval: {generation:.2f}x on generation alone, "
            f"{lm_eval.wall_s / ours.wall_s:.2f}x whole-process (goal: 2x whole-process)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("write", help="(internal) the hf backend as one whole process")
    serve = sub.add_parser("serve", help="(internal) llama.cpp's server as one whole process")
    for internal in (child, serve):
        internal.add_argument("--prompts-file", required=True)
        internal.add_argument("--out", required=True)
        internal.add_argument("--max-new-tokens", type=int, required=True)
    child.add_argument("--dtype", default="float32")
    child.add_argument("--batch-rows", type=int, required=True)
    serve.add_argument("--gguf", required=True)
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-rows", type=int, default=32, help="hf rows and lm-eval's batch")
    parser.add_argument(
        "--no-one-at-a-time", action="store_true", help="skip hf with one prompt at a time"
    )
    parser.add_argument(
        "--no-llama-cpp", action="store_true", help="skip the two llama.cpp server rows"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="whole processes of each contender, taking turns; the table keeps each one's fastest",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="print the last comparison's table again"
    )
    args = parser.parse_args()
    if args.command == "write":
        write_in_process(args)
    elif args.command == "serve":
        serve_and_ask(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
