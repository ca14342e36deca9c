"""lm-evaluation-harness ``generate_until`` on the benchmark's prompts: one whole process.

Runs under the interpreter of lm-eval's own virtual environment (``benchmarks/throughput.py`` sets it
up), so it imports nothing from culture_probe. It does what ``lm_eval --model hf --tasks ...
--include_path ... --log_samples`` does on a ``generate_until`` task, and additionally times the
generation calls (``HFLM.generate_until``) so that tokens per second exclude the model load.

Run: <lm-eval venv>/bin/python benchmarks/lm_eval_generate_driver.py --task-dir D --task NAME
         --model PATH --dtype float32 --batch-size 32 --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task-dir", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--model", required=True, help="a model folder")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(pretrained=args.model, dtype=args.dtype, batch_size=args.batch_size, device="cpu")
    loaded = time.perf_counter()
    timing = {"load_s": loaded - start, "generation_s": 0.0, "requests": 0}
    generate_until = model.generate_until

    def timed_generate_until(requests: Any, *rest: Any, **options: Any) -> Any:
        began = time.perf_counter()
        answers = generate_until(requests, *rest, **options)
        timing["generation_s"] += time.perf_counter() - began
        timing["requests"] += len(requests)
        return answers

    model.generate_until = timed_generate_until  # type: ignore[method-assign]
    results = simple_evaluate(
        model=model,
        tasks=[args.task],
        task_manager=TaskManager(include_path=args.task_dir),
        batch_size=args.batch_size,
        log_samples=True,
    )
    samples = [
        {"prompt_id": sample["doc"]["prompt_id"], "text": _text(sample["resps"])}
        for sample in results["samples"][args.task]
    ]
    Path(args.out).write_text(json.dumps({"timing": timing, "samples": samples}))


def _text(response: Any) -> str:
    """A response is the generated string, nested in a list or two."""
    while isinstance(response, (list, tuple)):
        response = response[0]
    return str(response)


if __name__ == "__main__":
    main()
