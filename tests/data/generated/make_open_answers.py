"""Sample open answers from the embedded model for the mapper's hand-labelled check.

Run from the repository root:  python tests/data/generated/make_open_answers.py OUT.csv
It asks the values study's questions with the options hidden, as the ``open`` elicitation level does,
and writes one row per answer: answer_id, source (model and setting), item_id, language, options
(JSON list, canonical order), system (the persona, if any), question, answer, and empty ``label`` and
``notes`` columns. The labels in tests/data/open_answers.csv were then written by reading each
answer, before the mapper was run on any of them (docs/statistics.md#open-answers-and-the-mapper).

Settings: greedy decoding with no persona and with two personas per question, sampling at
temperature 0.7 under two seeds with a persona, and the translated items (values_languages) in six
languages, two paraphrases each, sampled at temperature 0.7.

The model is the embedded one as the ``hf`` backend loads it (the converted copy of the GGUF file),
in float32 with transformers, prompts generated in left-padded batches of 16: on the shared two-core
machine the answers were written, the backend's one-prompt-at-a-time generation took 75 to 130 s per
40-token answer. torch runs one thread (two OpenMP threads on an oversubscribed machine spend their
time waiting on each other). Sampled answers are seeded per batch, not per prompt; the set only
needs to be reproducible as a whole.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from culture_probe.models import converted_copy, resolve_model

REPO = Path(__file__).resolve().parents[3]
MODEL = "SmolLM2-135M-Instruct"
MAX_NEW_TOKENS = 40
COUNTRIES = (
    "the United States",
    "Germany",
    "Slovakia",
    "Russia",
    "Brazil",
    "Nigeria",
    "Iran",
    "China",
    "Japan",
    "Indonesia",
)
#: "answer in your own words" in each probe language
INSTRUCTIONS = {
    "en": "Answer in your own words, in a sentence or two.",
    "es": "Responde con tus propias palabras, en una o dos frases.",
    "ja": "あなた自身の言葉で、一、二文で答えてください。",
    "zh": "请用你自己的话回答，一两句话即可。",
    "ar": "أجب بكلماتك الخاصة، في جملة أو جملتين.",
    "hi": "अपने शब्दों में, एक या दो वाक्यों में उत्तर दीजिए।",
    "id": "Jawablah dengan kata-kata Anda sendiri, dalam satu atau dua kalimat.",
}
COLUMNS = (
    "answer_id",
    "source",
    "item_id",
    "language",
    "options",
    "system",
    "question",
    "answer",
    "label",
    "notes",
)


@dataclass(frozen=True)
class OpenPrompt:
    """One question put with its options hidden, and how it is decoded."""

    setting: str
    temperature: float
    seed: int
    item_id: str
    language: str
    options: tuple[str, ...]
    system: str
    question: str

    def answer_id(self) -> str:
        key = json.dumps([self.setting, self.seed, self.item_id, self.system, self.question])
        return hashlib.sha256(key.encode()).hexdigest()[:10]

    def messages(self) -> list[dict[str, str]]:
        user = f"{self.question}\n\n{INSTRUCTIONS[self.language]}"
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": user}]


def _persona(country: str) -> str:
    return f"Imagine you are a person from {country}."


def english_prompts() -> list[OpenPrompt]:
    """Every values question greedy (no persona, two personas) and sampled under two seeds."""
    items = yaml.safe_load((REPO / "probes" / "values" / "items.yaml").read_text())["items"]
    draw = random.Random(20261207)
    prompts = []
    for item in items:
        options = tuple(item["options"])
        for question in item["paraphrases"]:
            personas = ["", *(_persona(c) for c in draw.sample(COUNTRIES, 2))]
            for system in personas:
                prompts.append(
                    OpenPrompt("greedy", 0.0, 0, item["id"], "en", options, system, question)
                )
            for seed in (1, 2):
                system = _persona(draw.choice(COUNTRIES))
                prompts.append(
                    OpenPrompt("t0.7", 0.7, seed, item["id"], "en", options, system, question)
                )
    return prompts


def translated_prompts() -> list[OpenPrompt]:
    """The translated items, two paraphrases in every language but English, sampled once."""
    path = REPO / "probes" / "values_languages" / "items.yaml"
    prompts = []
    for item in yaml.safe_load(path.read_text())["items"]:
        for language, translation in item["translations"].items():
            options = tuple(translation["options"])
            for question in translation["paraphrases"][:2]:
                prompts.append(
                    OpenPrompt("t0.7", 0.7, 1, item["id"], language, options, "", question)
                )
    return prompts


BATCH = 16


def answers(model: Any, tokenizer: Any, batch: list[OpenPrompt], start: int) -> list[str]:
    """The model's answers to one left-padded batch of prompts of one setting."""
    import torch

    chats = [
        tokenizer.apply_chat_template(p.messages(), tokenize=False, add_generation_prompt=True)
        for p in batch
    ]
    encoded = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(batch[0].seed + start)
    sampled = batch[0].temperature > 0
    with torch.inference_mode():
        output = model.generate(
            **encoded,
            do_sample=sampled,
            temperature=batch[0].temperature if sampled else None,
            top_p=None,
            top_k=None,
            max_new_tokens=MAX_NEW_TOKENS,
            pad_token_id=tokenizer.pad_token_id,
        )
    width = encoded["input_ids"].shape[1]
    return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in output]


def row(prompt: OpenPrompt, text: str) -> dict[str, str]:
    decoding = "greedy" if prompt.temperature == 0 else f"t=0.7 seed {prompt.seed}"
    return {
        "answer_id": prompt.answer_id(),
        "source": f"{MODEL} hf float32 {decoding}",
        "item_id": prompt.item_id,
        "language": prompt.language,
        "options": json.dumps(list(prompt.options), ensure_ascii=False),
        "system": prompt.system,
        "question": prompt.question,
        "answer": text,
        "label": "",
        "notes": "",
    }


def main(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # one thread: on a shared, oversubscribed machine two OpenMP threads wait on each other
    torch.set_num_threads(1)
    folder = str(converted_copy(resolve_model("embedded")))
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
    prompts = english_prompts() + translated_prompts()
    settings = sorted({(p.temperature, p.seed) for p in prompts})
    batches = [
        (start, [p for p in prompts if (p.temperature, p.seed) == setting][start : start + BATCH])
        for setting in settings
        for start in range(0, len(prompts), BATCH)
    ]
    # the settings take turns, so that the first answers written already span them all
    batches = sorted((b for b in batches if b[1]), key=lambda b: b[0])
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for start, batch in batches:
            for prompt, text in zip(batch, answers(model, tokenizer, batch, start), strict=True):
                writer.writerow(row(prompt, text))
            handle.flush()  # written as they come, to be read early
    print(f"{len(prompts)} answers written to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
