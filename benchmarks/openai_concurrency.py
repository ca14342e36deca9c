"""Throughput of the openai backend against a local llama.cpp server at several concurrency levels.

Starts ``python -m llama_cpp.server`` on loopback with the embedded SmolLM2-135M-Instruct GGUF file,
scores the same prompts of the values study at each concurrency level (``logprobs`` mode, one
request per prompt), and prints prompts per second.

Run: python benchmarks/openai_concurrency.py [--prompts 96] [--levels 1,2,4,8] [--server-threads 2]
"""

from __future__ import annotations

import argparse
import platform
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx

from culture_probe.backends.openai import OpenAIBackend
from culture_probe.models import embedded_gguf
from culture_probe.planning import prepare
from culture_probe.scoring import requests_for

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    port: int, threads: int, model: Path | None = None, module: str = "llama_cpp.server"
) -> subprocess.Popen[bytes]:
    """``python -m llama_cpp.server`` (or another ``module`` that takes its arguments, such as
    ``culture_probe.serve``) on ``port``."""
    command = [
        sys.executable, "-m", module, "--model", str(model or embedded_gguf()),
        "--host", "127.0.0.1", "--port", str(port), "--logits_all", "true",
        "--n_ctx", "2048", "--n_threads", str(threads),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("llama_cpp.server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--levels", default="1,2,4,8")
    parser.add_argument("--server-threads", type=int, default=2)
    args = parser.parse_args()
    requests = requests_for(prepare(REPO / "taxonomy" / "values.yaml").plan)[: args.prompts]
    port = free_port()
    server = start_server(port, args.server_threads)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        OpenAIBackend(base_url=url).score(requests[:4])  # warm-up: load pages, fill caches
        print(
            f"{date.today()}  {platform.processor() or platform.machine()}  {args.prompts} prompts"
        )
        print("| concurrency | seconds | prompts/s |\n|---|---|---|")
        for level in (int(value) for value in args.levels.split(",")):
            backend = OpenAIBackend(base_url=url, concurrency=level)
            started = time.perf_counter()
            backend.score(requests)
            elapsed = time.perf_counter() - started
            backend.close()
            print(f"| {level} | {elapsed:.1f} | {len(requests) / elapsed:.1f} |")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
