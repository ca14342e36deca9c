"""The ``hf`` backend: a transformers causal language model on the CPU or one GPU.

Scoring is one forward pass per prompt: the chat template is applied, and the next-token
distribution at the last position is read at the tokens each option label can start with ("A" and
" A" are both counted). Prompts are sorted by length and batched with left padding so that little
compute is spent on padding, and only the last position's logits are computed
(``logits_to_keep=1``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
)
from culture_probe.backends.generation import GenerationSettings, hf_generate, require_mode
from culture_probe.backends.labels import label_probabilities, label_token_ids
from culture_probe.models import ModelSource, converted_copy, resolve_model

DTYPES = ("auto", "bfloat16", "float16", "float32")


def cpu_supports_bfloat16() -> bool:
    """True where the CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16).

    Without it, PyTorch emulates bfloat16 matrix products, which is many times slower than float32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(requested: str, device: str) -> str:
    """bfloat16 where the hardware computes it natively, float32 otherwise."""
    if requested != "auto":
        return requested
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_supports_bfloat16() else "float32"


class HFBackend(Backend):
    """transformers on CPU or one GPU, scoring option labels by next-token log-probability."""

    preferred_chunk_size = 256

    def __init__(
        self,
        model: str = "embedded",
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        threads: int | None = None,
        mode: str = "logprobs",
        temperature: float = 0.7,
        max_new_tokens: int = 32,
        **_: Any,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.source: ModelSource = resolve_model(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = pick_dtype(dtype, self.device)
        location = (
            str(converted_copy(self.source)) if self.source.gguf_file else self.source.location
        )
        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model_on_host = AutoModelForCausalLM.from_pretrained(
            location, dtype=getattr(torch, self.dtype)
        )
        self.model = model_on_host.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self.batch_size = batch_size
        self._label_tokens: dict[str, list[int]] = {}
        self.mode = require_mode(mode)
        self.generation = GenerationSettings(temperature, max_new_tokens)

    def info(self) -> BackendInfo:
        return BackendInfo(
            backend="hf",
            model=self.source.name,
            model_hash=self.source.content_hash,
            dtype=self.dtype,
            mode=self.mode,
            options={"device": self.device, "batch_size": self.batch_size, **self._decoding()},
        )

    def _decoding(self) -> dict[str, Any]:
        if self.mode != "generate":
            return {}
        return {
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_new_tokens,
        }

    def label_token_ids(self, label: str) -> list[int]:
        """Token ids a label can be spoken as in first position: "A" and " A" where distinct."""
        if label not in self._label_tokens:
            self._label_tokens[label] = label_token_ids(self.tokenizer, label)
        return self._label_tokens[label]

    def prompt_text(self, request: ScoringRequest) -> str:
        text = self.tokenizer.apply_chat_template(
            request.messages(), tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        import torch

        if self.mode == "generate":
            return hf_generate(self.model, self.tokenizer, requests, self.generation, self.device)

        encoded = [
            self.tokenizer.encode(self.prompt_text(r), add_special_tokens=False) for r in requests
        ]
        order = sorted(range(len(requests)), key=lambda index: len(encoded[index]))
        results: dict[int, ScoredPrompt] = {}
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                log_probs = self._last_token_log_probs([encoded[index] for index in batch])
                for row, index in enumerate(batch):
                    results[index] = self._score_one(requests[index], log_probs[row])
        return [results[index] for index in range(len(requests))]

    def _last_token_log_probs(self, sequences: list[list[int]]) -> Any:
        import torch

        width = max(len(sequence) for sequence in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        attention = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            input_ids[row, width - len(sequence) :] = torch.tensor(sequence)
            attention[row, width - len(sequence) :] = 1
        output = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=attention.to(self.device),
            logits_to_keep=1,
        )
        return torch.log_softmax(output.logits[:, -1, :].float(), dim=-1).cpu()

    def _score_one(self, request: ScoringRequest, log_probs: Any) -> ScoredPrompt:
        probs, mass = label_probabilities(
            lambda token: float(log_probs[token]),
            [self.label_token_ids(label) for label in request.option_labels],
        )
        return ScoredPrompt(request.prompt_id, probs, mass)


def default_threads() -> int:
    """All cores: scoring is compute-bound and the runner does nothing else meanwhile."""
    return os.cpu_count() or 1
