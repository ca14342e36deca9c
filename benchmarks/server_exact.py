"""Exact option scores through llama.cpp's server against the hf float32 run of the same GGUF.

Starts ``python -m llama_cpp.server`` (``--logits_all true``) on the embedded SmolLM2-135M-Instruct
GGUF file and runs the values study (``--proxies``, default JP: every item and wording) twice with
``culture-probe run``, and reads the server run a second way:

- ``hf-float32``: ``--backend hf --dtype float32``, the reference;
- ``openai-exact``: ``--backend openai``, labels outside the server's top 20 scored exactly
  (``exact_rescore``, the default);
- with rescoring off (``--option exact_rescore=false``), such labels counted as 0: read from the
  same run, asking the server again only for the prompts where a label may be outside its top 20;
- ``openai-f32`` (with ``--arithmetic``): the server on a float32 copy of the same GGUF file (every
  tensor dequantized, as transformers dequantizes it), which tells llama.cpp's arithmetic on
  quantized weights (8-bit activations in every Q4_1 dot product) apart from everything else
  (tokens, chat template, label reading);
- ``openai-local-q4_1`` and ``openai-local-f32`` (with ``--local-tokens``): ``prompt_tokens=local``,
  the chats rendered and tokenized by the model's own tokenizer and sent as token ids, to the
  server on the Q4_1 file and on its float32 copy. The server is ``llama_cpp.server`` with its
  request declaration widened to take token ids (``python -m culture_probe.serve``, what
  ``culture-probe serve`` starts).

It prints, with rescoring on and off: labels at probability 0, the largest and mean Jensen-Shannon distance
(bits) to hf float32 over all prompts and over the rescored ones, the prompts rescored and their
summed time, and the runs' wall times; then ``culture-probe compare`` of the server run with
hf float32. Run folders go under ``--out`` (reused: a finished run is not scored again).

Run: python benchmarks/server_exact.py [--proxies JP] [--out /tmp/server_exact] [--threads 2]
         [--arithmetic ITEMS] [--local-tokens]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from openai_concurrency import free_port, start_server

import culture_probe as cp
from culture_probe.backends.openai import OpenAIBackend
from culture_probe.models import embedded_gguf
from culture_probe.scoring import requests_for, to_canonical
from culture_probe.serve import float32_gguf

REPO = Path(__file__).resolve().parents[1]
CLI = [str(Path(sys.executable).with_name("culture-probe"))]


def run_study(name: str, out: Path, proxies: str, extra: list[str]) -> float:
    """``culture-probe run`` of the values study into ``out/name``; its wall time in seconds.

    A finished run (its ``responses.parquet`` written) is not run again: its wall time is read
    as the time from its plan to its responses.
    """
    folder = out / name
    if (folder / "responses.parquet").exists():
        return (folder / "responses.parquet").stat().st_mtime - (
            folder / "plan.parquet"
        ).stat().st_mtime
    command = [
        *CLI, "run", str(REPO / "taxonomy" / "values.yaml"), "--proxies", proxies,
        "--bootstrap", "100", "-o", str(folder), *extra,
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def probabilities(run_dir: Path) -> pd.Series:
    """Each prompt's option probabilities (canonical order), by prompt id."""
    responses = cp.load_run(run_dir).responses
    return responses.set_index("prompt_id")["probs"].map(lambda p: np.asarray(p, dtype=float))


def compare_runs(reference: Path, other: Path) -> str:
    result = subprocess.run(
        [*CLI, "compare", str(reference), str(other), "-o", str(other / "compare.html")],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def without_rescoring(out: Path, url: str, exact: pd.Series) -> tuple[pd.Series, int]:
    """The exact run's distributions as they read with ``exact_rescore=false``.

    Where every label is in the top 20 the two read the same; so only the prompts where a label
    could be outside it are asked again with rescoring off: the 20th token has probability at
    most 1/20, so a label outside the top 20 (two spellings) has less than 0.1 before
    renormalising. Returns the distributions, and which prompts have a label at 0.
    """
    run = cp.load_run(out / "openai-exact")
    responses = run.responses.set_index("prompt_id")
    unnormalised = responses["probs"].map(np.asarray) * responses["option_mass"]
    candidates = unnormalised.index[unnormalised.map(lambda p: bool((p < 0.1).any()))]
    plan = run.plan.set_index("prompt_id").loc[candidates].reset_index()
    backend = OpenAIBackend(base_url=url, model=str(embedded_gguf()), exact_rescore=False)
    try:
        results = backend.score(requests_for(plan))
    finally:
        backend.close()
    truncated = exact.copy()
    for prompt, result, order in zip(
        plan["prompt_id"], results, plan["display_to_canonical"], strict=True
    ):
        truncated[prompt] = np.asarray(to_canonical(result, order)["probs"], dtype=float)
    outside = truncated.map(lambda p: bool((p == 0).any()))
    return truncated, outside


def summary(
    name: str, probs: pd.Series, reference: pd.Series, outside: pd.Series
) -> dict[str, object]:
    """One reading of the server run against hf float32; ``outside``: prompts with a label
    outside the top 20."""
    probs = probs.reindex(reference.index)
    distances = pd.Series(
        [jensenshannon(p, q, base=2) for p, q in zip(probs, reference, strict=True)],
        index=reference.index,
    )
    return {
        "exact_rescore": name,
        "prompts": len(probs),
        "labels at 0": int(sum((p == 0).sum() for p in probs)),
        "max JS (bits)": round(float(distances.max()), 4),
        "mean JS (bits)": round(float(distances.mean()), 5),
        "max JS, prompts rescored": round(float(distances[outside].max()), 4),
        "mean JS, prompts rescored": round(float(distances[outside].mean()), 4),
    }


def arithmetic_check(out: Path, items: str, threads: int, reference: pd.Series) -> str:
    """The same prompts through the server on a float32 copy of the GGUF file, against hf float32.

    Separates llama.cpp's arithmetic on quantized weights from everything else it shares with the
    Q4_1 run: tokens, chat template, label reading. Returns a markdown table.
    """
    copy = out / "smollm2-float32.gguf"
    if not copy.exists():
        float32_gguf(embedded_gguf(), copy)
    plan = cp.load_run(out / "openai-exact").plan
    plan = plan[plan["item_id"].isin(items.split(","))]
    port = free_port()
    server = start_server(port, threads, model=copy)
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model=str(copy), concurrency=2)
    try:
        same_tokens = tokens_agree(f"http://127.0.0.1:{port}", requests_for(plan))
        started = time.monotonic()
        results = backend.score(requests_for(plan))
        seconds = time.monotonic() - started
    finally:
        backend.close()
        server.kill()
    float32 = pd.Series(
        [
            np.asarray(to_canonical(result, order)["probs"], dtype=float)
            for result, order in zip(results, plan["display_to_canonical"], strict=True)
        ],
        index=list(plan["prompt_id"]),
    )
    quantized = probabilities(out / "openai-exact")
    rows = []
    for name, probs in (("Q4_1 file (the runs above)", quantized), ("float32 copy", float32)):
        distances = [
            jensenshannon(probs[prompt], reference[prompt], base=2) for prompt in plan["prompt_id"]
        ]
        rows.append(
            {
                "server on": name,
                "prompts": len(distances),
                "max JS (bits)": round(max(distances), 5),
                "mean JS (bits)": round(float(np.mean(distances)), 5),
            }
        )
    return (
        pd.DataFrame(rows).to_markdown(index=False)
        + f"\n\n(float32 copy scored in {seconds:.0f} s; llama.cpp's token ids equal transformers' "
        + f"for {same_tokens} of {len(plan)} prompts)"
    )


def local_token_runs(out: Path, proxies: str, threads: int, reference: pd.Series) -> str:
    """The study with ``prompt_tokens=local`` on the Q4_1 file and on its float32 copy.

    Returns a markdown table: distances to hf float32, the exact rescoring's counts and time from
    each run's manifest, and each run's wall time.
    """
    copy = out / "smollm2-float32.gguf"
    if not copy.exists():
        float32_gguf(embedded_gguf(), copy)
    rows = []
    for name, model in (("openai-local-q4_1", embedded_gguf()), ("openai-local-f32", copy)):
        wall = local_token_run(name, model, out, proxies, threads)
        probs = probabilities(out / name).reindex(reference.index)
        scored = probs.map(len) > 0  # an invalid prompt has no distribution
        distances = [
            jensenshannon(p, q, base=2)
            for p, q in zip(probs[scored], reference[scored], strict=True)
        ]
        options = json.loads((out / name / "manifest.json").read_text())["backend"]["options"]
        rows.append(
            {
                "server on": "Q4_1 file" if name.endswith("q4_1") else "float32 copy",
                "prompts": len(distances),
                "invalid": int((~scored).sum()),
                "labels at 0": int(sum((p == 0).sum() for p in probs)),
                "max JS (bits)": round(max(distances), 5),
                "mean JS (bits)": round(float(np.mean(distances)), 6),
                "rescored": options.get("rescored_prompts"),
                "rescore requests": options.get("rescore_requests"),
                "rescore s": options.get("rescore_s"),
                "run s": round(wall),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def local_token_run(name: str, model: Path, out: Path, proxies: str, threads: int) -> float:
    """One ``prompt_tokens=local`` run, a server started for it unless it is finished already."""
    if (out / name / "responses.parquet").exists():
        return run_study(name, out, proxies, [])
    port = free_port()
    server = start_server(port, threads, model=model, module="culture_probe.serve")
    served = [
        "--backend", "openai", "--model", str(model),
        "--option", f"base_url=http://127.0.0.1:{port}/v1", "--option", "concurrency=2",
        "--option", "prompt_tokens=local",
    ]  # fmt: skip
    try:
        return run_study(name, out, proxies, served)
    finally:
        server.kill()


def tokens_agree(server: str, requests: list) -> int:
    """How many prompts llama.cpp tokenizes (``/extras/tokenize``) into transformers' token ids.

    Both read the text the model's chat template makes of the prompt.
    """
    import httpx
    from transformers import AutoTokenizer

    from culture_probe.models import converted_copy, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(converted_copy(resolve_model("embedded")))
    same = 0
    for request in requests:
        text = tokenizer.apply_chat_template(
            request.messages(), tokenize=False, add_generation_prompt=True
        )
        theirs = httpx.post(f"{server}/extras/tokenize", json={"input": text}, timeout=60)
        same += theirs.json()["tokens"] == tokenizer.encode(text, add_special_tokens=False)
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proxies", default="JP")
    parser.add_argument("--out", type=Path, default=Path("/tmp/server_exact"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--arithmetic",
        default="",
        help="comma-separated items to score again on a float32 copy of the GGUF file",
    )
    parser.add_argument(
        "--local-tokens",
        action="store_true",
        help="also run with prompt_tokens=local on the Q4_1 file and on its float32 copy",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = {
        "hf-float32": run_study("hf-float32", args.out, args.proxies, ["--dtype", "float32"])
    }
    port = free_port()
    server = start_server(port, args.threads)
    url = f"http://127.0.0.1:{port}/v1"
    served = [
        "--backend", "openai", "--model", str(embedded_gguf()), "--option", f"base_url={url}",
        "--option", f"concurrency={args.concurrency}",
    ]  # fmt: skip
    try:
        seconds["openai-exact"] = run_study("openai-exact", args.out, args.proxies, served)
        reference = probabilities(args.out / "hf-float32")
        exact = probabilities(args.out / "openai-exact").reindex(reference.index)
        truncated, outside = without_rescoring(args.out, url, exact)
    finally:
        server.kill()
    options = json.loads((args.out / "openai-exact" / "manifest.json").read_text())["backend"]
    print(f"{date.today()}, {platform.processor() or platform.machine()}, proxies {args.proxies}")
    print(f"wall time: {seconds}")
    print({k: v for k, v in options["options"].items() if "rescore" in k or k == "requests"})
    print(f"prompts with a label at 0 when asked again without rescoring: {int(outside.sum())}")
    rows = [
        summary("on", exact, reference, outside),
        summary("off (asked again)", truncated, reference, outside),
    ]
    print(pd.DataFrame(rows).to_markdown(index=False))
    print("\n### culture-probe compare hf-float32 openai-exact\n")
    print(compare_runs(args.out / "hf-float32", args.out / "openai-exact"))
    if args.arithmetic:
        print(f"\n### The same prompts on a float32 copy ({args.arithmetic})\n")
        print(arithmetic_check(args.out, args.arithmetic, args.threads, reference))
    if args.local_tokens:
        print("\n### prompt_tokens=local: the model's own token ids\n")
        print(local_token_runs(args.out, args.proxies, args.threads, reference))


if __name__ == "__main__":
    main()
