"""Sample real answers from the embedded model for the answer-parser tests.

Run from the repository root:  python tests/data/generated/make_answer_corpus.py
It writes tests/data/generated/smollm2_answers.json: for each sample, the prompt's labels and option
texts in display order, the temperature and seed, and the generated text exactly as the model wrote
it. The expected parse of each text is annotated by hand in smollm2_answers_expected.json.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from culture_probe.backends import create_backend
from culture_probe.backends.base import ScoringRequest
from culture_probe.planning import prepare
from culture_probe.scoring import requests_for

HERE = Path(__file__).parent
REPO = HERE.parents[2]
SETTINGS = ((0.7, (1,)), (1.2, (1, 2)))  # (temperature, seeds)
N_PROMPTS = 16


def sample_prompts() -> list[ScoringRequest]:
    """Sixteen prompts spread over items, proxies, framings and option orders."""
    plan = prepare(REPO / "taxonomy" / "values.yaml").plan
    rows = plan.sample(n=N_PROMPTS, random_state=20240917).sort_values("row")
    return requests_for(rows)


def main() -> None:
    prompts = sample_prompts()
    samples = []
    for temperature, seeds in SETTINGS:
        backend = create_backend(
            "hf", model="embedded", mode="generate", temperature=temperature, max_new_tokens=24
        )
        for seed in seeds:
            seeded = [
                ScoringRequest(
                    p.prompt_id, p.system, p.user, p.option_labels, seed, p.options, p.language
                )
                for p in prompts
            ]
            for request, result in zip(seeded, backend.score(seeded), strict=True):
                samples.append(
                    {
                        "id": f"{request.prompt_id}-t{temperature}-s{seed}",
                        "labels": list(request.option_labels),
                        "options": list(request.options),
                        "language": request.language,
                        "temperature": temperature,
                        "seed": seed,
                        "text": result.generated,
                    }
                )
    random.Random(0).shuffle(samples)
    target = HERE / "smollm2_answers.json"
    target.write_text(json.dumps(samples, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(samples)} samples written to {target}")


if __name__ == "__main__":
    main()
