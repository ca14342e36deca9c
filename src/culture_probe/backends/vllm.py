"""The ``vllm`` backend: an in-process ``vllm.LLM`` on one or more GPUs.

Prompts go to vLLM as token ids built by the model's own tokenizer and chat template, exactly as the
``hf`` backend builds them, so that both score the same tokens. Scoring asks for one token
(``max_tokens=1``) with its top log-probabilities and reads the option labels' tokens ("A" and " A")
out of them with the same function as ``hf`` (:func:`culture_probe.backends.labels.label_probabilities`).
A label token outside the top ``top_logprobs`` (default 20) counts as probability 0; that is the only
way the two backends can differ, and it only touches tokens less likely than the 20th.

Prefix caching is on: the prompts of a study share long prefixes (system message, framing, question),
which vLLM then computes once. The runner hands over large chunks (``preferred_chunk_size``) so that
vLLM can batch freely, and saves each chunk, so that a killed run resumes.

Options (``--option KEY=VALUE``): see :class:`VLLMOptions`.

vLLM is the optional extra ``vllm``: ``pip install 'culture-probe[vllm]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from culture_probe.backends.base import Backend, BackendInfo, ScoredPrompt, ScoringRequest
from culture_probe.backends.generation import (
    GenerationSettings,
    generated_result,
    require_mode,
    short_answer_result,
)
from culture_probe.backends.labels import label_probabilities, label_token_ids
from culture_probe.backends.options import parse_options
from culture_probe.bounds import NON_NEGATIVE, POSITIVE, Range
from culture_probe.errors import CultureProbeError
from culture_probe.models import ModelSource, converted_copy, resolve_model

INSTALL_HINT = "pip install 'culture-probe[vllm]'"
DEFAULT_TOP_LOGPROBS = 20


def import_vllm() -> Any:
    """The ``vllm`` module, or a clear error saying how to install it."""
    try:
        import vllm
    except ImportError as error:
        raise CultureProbeError(
            f"the vllm backend needs vLLM and a GPU: {INSTALL_HINT} "
            f"(import failed: {error}); on a CPU use --backend hf"
        ) from error
    return vllm


def engine_options(
    location: str,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    dtype: str = "auto",
    max_model_len: int | None = None,
    gpu_memory_utilization: float = 0.9,
    top_logprobs: int = DEFAULT_TOP_LOGPROBS,
    seed: int = 0,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``.

    Example:
        >>> engine_options("/models/x", tensor_parallel_size=2)["enable_prefix_caching"]
        True
    """
    if dtype == "mixed":
        raise CultureProbeError(
            "--dtype mixed is the hf backend's CPU arithmetic; vLLM takes auto, bfloat16, "
            "float16 or float32"
        )
    options: dict[str, Any] = {
        "model": location,
        "tokenizer": location,
        "tensor_parallel_size": int(tensor_parallel_size),
        "pipeline_parallel_size": int(pipeline_parallel_size),
        "dtype": dtype,
        "gpu_memory_utilization": float(gpu_memory_utilization),
        "enable_prefix_caching": True,
        # vLLM refuses requests for more log-probabilities than the engine was started with
        "max_logprobs": max(DEFAULT_TOP_LOGPROBS, int(top_logprobs)),
        "seed": seed,
    }
    if max_model_len:
        options["max_model_len"] = int(max_model_len)
    return options


def scoring_sampling_fields(top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> dict[str, Any]:
    """``SamplingParams`` fields for reading the next-token distribution.

    Example:
        >>> scoring_sampling_fields(5)
        {'max_tokens': 1, 'temperature': 0.0, 'logprobs': 5, 'detokenize': False}
    """
    return {"max_tokens": 1, "temperature": 0.0, "logprobs": int(top_logprobs), "detokenize": False}


def generation_sampling_fields(settings: GenerationSettings, seed: int) -> dict[str, Any]:
    """``SamplingParams`` fields for sampling one answer under the prompt's own seed."""
    return {
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": seed,
    }


def prompt_token_ids(tokenizer: Any, request: ScoringRequest) -> list[int]:
    """The prompt as the ``hf`` backend sees it: chat template, generation prompt, no extra BOS."""
    text = tokenizer.apply_chat_template(
        request.messages(), tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer.encode(str(text), add_special_tokens=False))


def first_token_logprobs(output: Any) -> Mapping[int, Any]:
    """Token id -> ``Logprob`` for the first generated token of a ``vllm.RequestOutput``."""
    completion = output.outputs[0]
    if not completion.logprobs:
        raise CultureProbeError(
            f"vLLM returned no log-probabilities for request {output.request_id}"
        )
    position: Mapping[int, Any] = completion.logprobs[0]
    return position


def scored_from_output(
    output: Any, request: ScoringRequest, label_ids: Sequence[Sequence[int]]
) -> ScoredPrompt:
    """A ``vllm.RequestOutput`` of a scoring request as option probabilities."""
    table = first_token_logprobs(output)

    def logprob_of(token: int) -> float | None:
        entry = table.get(token)
        return None if entry is None else float(entry.logprob)

    probs, mass = label_probabilities(logprob_of, label_ids)
    return ScoredPrompt(request.prompt_id, probs, mass)


@dataclass(frozen=True)
class VLLMOptions:
    """The ``vllm`` backend's options (``--option KEY=VALUE``)."""

    model: str = field(
        default="embedded",
        metadata={"help": "embedded, a model folder, a .gguf file or a hub id (--model)"},
    )
    dtype: str = field(default="auto", metadata={"help": "vLLM's dtype (--dtype)"})
    tensor_parallel_size: int = field(
        default=1, metadata={"help": "GPUs per model replica", "range": POSITIVE}
    )
    pipeline_parallel_size: int = field(
        default=1, metadata={"help": "pipeline stages", "range": POSITIVE}
    )
    max_model_len: int | None = field(
        default=None, metadata={"help": "context length; unset: the model's", "range": POSITIVE}
    )
    gpu_memory_utilization: float = field(
        default=0.9,
        metadata={
            "help": "share of GPU memory vLLM may take",
            "range": Range(low=0, high=1, open_low=True),
        },
    )
    top_logprobs: int = field(
        default=DEFAULT_TOP_LOGPROBS,
        metadata={"help": "log-probabilities read per prompt", "range": POSITIVE},
    )
    mode: str = field(default="logprobs", metadata={"help": "logprobs or generate"})
    temperature: float = field(
        default=0.7, metadata={"help": "sampling temperature (generate)", "range": NON_NEGATIVE}
    )
    max_new_tokens: int = field(
        default=32, metadata={"help": "tokens written at most (generate)", "range": POSITIVE}
    )
    chunk_size: int | None = field(
        default=None,
        metadata={"help": "prompts handed to vLLM at once; unset: 8192", "range": POSITIVE},
    )


class VLLMBackend(Backend):
    """vLLM in this process: scoring by top log-probabilities, or sampling and parsing."""

    options_class: ClassVar[type] = VLLMOptions
    preferred_chunk_size = 8192

    def __init__(self, **raw: Any) -> None:
        declared = parse_options(VLLMOptions, raw)
        vllm = import_vllm()
        self.source: ModelSource = resolve_model(declared.model)
        location = (
            str(converted_copy(self.source)) if self.source.gguf_file else self.source.location
        )
        self.options = engine_options(
            location,
            declared.tensor_parallel_size,
            declared.pipeline_parallel_size,
            declared.dtype,
            declared.max_model_len,
            declared.gpu_memory_utilization,
            declared.top_logprobs,
        )
        engine = vllm.LLM(**self.options)
        self._setup(
            engine,
            engine.get_tokenizer(),
            vllm.SamplingParams,
            declared.mode,
            declared.top_logprobs,
        )
        self.generation = GenerationSettings(declared.temperature, declared.max_new_tokens)
        if declared.chunk_size:
            self.preferred_chunk_size = int(declared.chunk_size)

    @classmethod
    def from_parts(
        cls,
        engine: Any,
        tokenizer: Any,
        sampling_params: Callable[..., Any],
        source: ModelSource,
        mode: str = "logprobs",
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
        generation: GenerationSettings | None = None,
    ) -> VLLMBackend:
        """A backend around an engine that is already built (an ``LLM`` shared with other code)."""
        backend = cls.__new__(cls)
        backend.source = source
        backend.options = {"model": source.location}
        backend._setup(engine, tokenizer, sampling_params, mode, top_logprobs)
        backend.generation = generation or GenerationSettings()
        return backend

    def _setup(
        self,
        engine: Any,
        tokenizer: Any,
        sampling_params: Callable[..., Any],
        mode: str,
        top_logprobs: int,
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.sampling_params = sampling_params
        self.mode = require_mode(mode)
        self.top_logprobs = int(top_logprobs)
        self._label_tokens: dict[str, list[int]] = {}

    def max_options(self) -> int | None:
        return self.top_logprobs if self.mode == "logprobs" else None

    def info(self) -> BackendInfo:
        options = {
            key: value
            for key, value in self.options.items()
            if key not in ("model", "tokenizer", "seed")
        }
        if self.mode == "generate":
            options["temperature"] = self.generation.temperature
            options["max_tokens"] = self.generation.max_new_tokens
        else:
            options["top_logprobs"] = self.top_logprobs
        return BackendInfo(
            backend="vllm",
            model=self.source.name,
            model_hash=self.source.content_hash,
            dtype=str(self.options.get("dtype", "auto")),
            mode=self.mode,
            options=options,
        )

    def label_token_ids(self, label: str) -> list[int]:
        if label not in self._label_tokens:
            self._label_tokens[label] = label_token_ids(self.tokenizer, label)
        return self._label_tokens[label]

    def max_prompt_tokens(self) -> int | None:
        config = getattr(getattr(self.engine, "llm_engine", None), "model_config", None)
        context = getattr(config, "max_model_len", None)
        if not isinstance(context, int):
            return None
        return context - (self.generation.max_new_tokens if self.mode == "generate" else 0)

    def prompt_lengths(self, requests: Sequence[ScoringRequest]) -> list[int]:
        return [len(prompt_token_ids(self.tokenizer, request)) for request in requests]

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        if self.mode == "generate":
            texts = self._sampled_texts(requests)
            return [
                generated_result(request, text)
                for request, text in zip(requests, texts, strict=True)
            ]
        shared = self.sampling_params(**scoring_sampling_fields(self.top_logprobs))
        outputs = self.engine.generate(self._prompts(requests), shared, use_tqdm=False)
        return [
            scored_from_output(
                output, request, [self.label_token_ids(label) for label in request.option_labels]
            )
            for request, output in zip(requests, outputs, strict=True)
        ]

    def write_answers(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """Free-text answers under each prompt's seed, with the generate mode's decoding."""
        texts = self._sampled_texts(requests)
        return [
            short_answer_result(request, text)
            for request, text in zip(requests, texts, strict=True)
        ]

    def short_answer_decoding(self) -> dict[str, Any]:
        return {
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_new_tokens,
        }

    def _prompts(self, requests: Sequence[ScoringRequest]) -> list[dict[str, list[int]]]:
        return [{"prompt_token_ids": prompt_token_ids(self.tokenizer, r)} for r in requests]

    def _sampled_texts(self, requests: Sequence[ScoringRequest]) -> list[str]:
        """One sampled completion per request, each under its own seed, in one engine call."""
        params = [
            self.sampling_params(**generation_sampling_fields(self.generation, r.seed))
            for r in requests
        ]
        outputs = self.engine.generate(self._prompts(requests), params, use_tqdm=False)
        return [str(output.outputs[0].text) for output in outputs]

    def close(self) -> None:
        self.engine = None
