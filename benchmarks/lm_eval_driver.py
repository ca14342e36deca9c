"""lm-evaluation-harness on the benchmark's prompts: one whole process, from import to written results.

Runs under the interpreter of lm-eval's own virtual environment (``benchmarks/throughput.py`` sets it
up), so it imports nothing from culture_probe. It does what ``lm_eval --model hf --tasks ...
--include_path ... --log_samples --output_path ...`` does, and additionally times the scoring calls
(``HFLM.loglikelihood``) so that prompts per second exclude the model load.

Run: <lm-eval venv>/bin/python benchmarks/lm_eval_driver.py --task-dir D --task NAME --model PATH
         [--gguf-file FILE] --dtype bfloat16 --batch-size 16 --out results.json
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
    parser.add_argument("--gguf-file", help="a GGUF file inside --model, dequantized at load")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(
        pretrained=args.model,
        gguf_file=args.gguf_file,
        dtype=args.dtype,
        batch_size=args.batch_size,
        device="cpu",
    )
    timing = {"scoring_s": 0.0, "requests": 0}
    loglikelihood = model.loglikelihood

    def timed_loglikelihood(requests: Any, *rest: Any, **options: Any) -> Any:
        start = time.perf_counter()
        answers = loglikelihood(requests, *rest, **options)
        timing["scoring_s"] += time.perf_counter() - start
        timing["requests"] += len(requests)
        return answers

    model.loglikelihood = timed_loglikelihood  # type: ignore[method-assign]
    results = simple_evaluate(
        model=model,
        tasks=[args.task],
        task_manager=TaskManager(include_path=args.task_dir),
        batch_size=args.batch_size,
        log_samples=True,
    )
    samples = [
        {
            "prompt_id": sample["doc"]["prompt_id"],
            "loglikelihoods": [_number(response) for response in sample["filtered_resps"]],
        }
        for sample in results["samples"][args.task]
    ]
    Path(args.out).write_text(json.dumps({"timing": timing, "samples": samples}))


def _number(response: Any) -> float:
    """A response is ``(loglikelihood, is_greedy)``, nested once more in some versions."""
    while isinstance(response, (list, tuple)):
        response = response[0]
    return float(response)


if __name__ == "__main__":
    main()
