"""The ``vllm`` backend: an in-process ``vllm.LLM`` on one or more GPUs.

Prompts go to vLLM as token ids built by the model's own tokenizer and chat template, exactly as the
``hf`` backend builds them, so that both score the same tokens. Scoring asks for one token
(``max_tokens=1``) with its top log-probabilities and reads the option labels' tokens ("A" and " A")
out of them with the same function as ``hf`` (:func:`culture_probe.backends.labels.label_probabilities`).
A prompt with a label none of whose tokens is in the top ``top_logprobs`` (default 20) is then scored
exactly (``exact_rescore``, on by default): vLLM is sent the prompt followed by each spelling of each
label, with ``prompt_logprobs``, and a spelling's probability is the sum of its tokens'
log-probabilities, so a label is never silently 0. The manifest counts the prompts rescored.

The ``constrained`` level samples one label per prompt under ``guided_choice`` (the labels), at
temperature 1 under the prompt's seed and messages, and its distribution is the labels' continuation
probabilities (each spelling, "A" and " A") summed per label and renormalised.

Prefix caching is on: the prompts of a study share long prefixes (system message, framing, question),
which vLLM then computes once. The runner hands over large chunks (``preferred_chunk_size``) so that
vLLM can batch freely, and saves each chunk, so that a killed run resumes.

Options (``--option KEY=VALUE``): see :class:`VLLMOptions`.

vLLM is the optional extra ``vllm``: ``pip install 'culture-probe[vllm]'``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from culture_probe.backends._server_exact import (
    RescoreStats,
    all_spellings,
    chosen_label,
    server_draw_seed,
)
from culture_probe.backends.base import (
    Backend,
    BackendInfo,
    ScoredPrompt,
    ScoringRequest,
    renormalise,
)
from culture_probe.backends.generation import (
    GenerationSettings,
    generated_result,
    require_mode,
    short_answer_result,
)
from culture_probe.backends.labels import label_probabilities, label_spellings, label_token_ids
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


def exact_sampling_fields() -> dict[str, Any]:
    """``SamplingParams`` fields for the log-probability of every prompt token (exact rescoring).

    Example:
        >>> exact_sampling_fields()
        {'max_tokens': 1, 'temperature': 0.0, 'prompt_logprobs': 0, 'detokenize': False}
    """
    return {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0, "detokenize": False}


#: a constrained answer is drawn at temperature 1, from the distribution its ``probs`` hold
CONSTRAINED_TEMPERATURE = 1.0


def constrained_sampling_fields(
    labels: Sequence[str], seed: int, max_tokens: int, constraint: Callable[..., Any]
) -> dict[str, Any]:
    """``SamplingParams`` fields that draw one label under a choice constraint.

    ``constraint`` builds vLLM's choice parameters (:func:`choice_constraint`).

    Example:
        >>> fields = constrained_sampling_fields(["A", "B"], 7, 2, lambda labels: labels)
        >>> fields["guided_decoding"], fields["seed"], fields["temperature"]
        (['A', 'B'], 7, 1.0)
    """
    return {
        "max_tokens": max_tokens,
        "temperature": CONSTRAINED_TEMPERATURE,
        "seed": seed,
        "guided_decoding": constraint(list(dict.fromkeys(labels))),
    }


def choice_constraint(vllm: Any) -> Callable[[list[str]], Any]:
    """vLLM's ``GuidedDecodingParams(choice=...)`` maker (``sampling_params`` module)."""

    def make(labels: list[str]) -> Any:
        return vllm.sampling_params.GuidedDecodingParams(choice=labels)

    return make


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


def spelling_token_ids(tokenizer: Any, label: str) -> list[list[int]]:
    """The token ids of each spelling of a label ("A", " A") that starts with a token spelling it.

    The spellings :func:`culture_probe.backends.labels.label_token_ids` counts, whole: the exact
    score of a spelling is the log-probability of all its tokens. The bare label always counts
    (a label of several tokens, such as "10" where digits are split, has no token of its own).
    """
    found: list[list[int]] = []
    for spelling in label_spellings(label):
        ids = list(tokenizer.encode(spelling, add_special_tokens=False))
        spoken = str(tokenizer.decode(ids[:1])) if ids else ""
        if ids and (spoken.strip() == label or spelling == label) and ids not in found:
            found.append(ids)
    return found


def continuation_logprob(output: Any, n_tokens: int) -> float:
    """The summed log-probability of the last ``n_tokens`` prompt tokens of a ``RequestOutput``.

    vLLM's ``prompt_logprobs`` hold, for each prompt position after the first, a map from token id
    to ``Logprob`` that always includes the token of the prompt itself.
    """
    positions = output.prompt_logprobs
    tokens = output.prompt_token_ids
    if not positions:
        raise CultureProbeError(
            f"vLLM returned no prompt log-probabilities for request {output.request_id}"
        )
    start = len(tokens) - n_tokens
    return float(sum(positions[i][tokens[i]].logprob for i in range(start, len(tokens))))


def constrained_result(
    request: ScoringRequest, text: str, exact: tuple[tuple[float, ...], float]
) -> ScoredPrompt:
    """A constrained answer: the label written, with the exact distribution and mass ``exact``."""
    choice = chosen_label(text, request.option_labels)
    if choice < 0:
        return ScoredPrompt(
            request.prompt_id, (), 0.0, "invalid", f"the constraint was not kept: {text[:200]!r}"
        )
    probs, mass = exact
    return ScoredPrompt(request.prompt_id, probs, mass, generated=text, choice=choice)


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
    exact_rescore: bool = field(
        default=True,
        metadata={
            "help": "score exactly (prompt log-probabilities) the prompts with a label outside "
            "the top log-probabilities; false: such a label counts as 0"
        },
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
            declared.exact_rescore,
            choice_constraint(vllm),
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
        exact_rescore: bool = True,
        constraint: Callable[[list[str]], Any] | None = None,
    ) -> VLLMBackend:
        """A backend around an engine that is already built (an ``LLM`` shared with other code).

        ``constraint`` makes vLLM's choice constraint from the labels (default: a plain
        ``{"choice": labels}``, for an engine that takes dictionaries).
        """
        backend = cls.__new__(cls)
        backend.source = source
        backend.options = {"model": source.location}
        backend._setup(
            engine,
            tokenizer,
            sampling_params,
            mode,
            top_logprobs,
            exact_rescore,
            constraint or (lambda labels: {"choice": labels}),
        )
        backend.generation = generation or GenerationSettings()
        return backend

    def _setup(
        self,
        engine: Any,
        tokenizer: Any,
        sampling_params: Callable[..., Any],
        mode: str,
        top_logprobs: int,
        exact_rescore: bool,
        constraint: Callable[[list[str]], Any],
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.sampling_params = sampling_params
        self.mode = require_mode(mode)
        self.top_logprobs = int(top_logprobs)
        self.exact_rescore = exact_rescore
        self.constraint = constraint
        self.rescore_stats = RescoreStats()
        self._label_tokens: dict[str, list[int]] = {}

    def max_options(self) -> int | None:
        # with exact rescoring a label outside the top k is scored from prompt log-probabilities
        return self.top_logprobs if self.mode == "logprobs" and not self.exact_rescore else None

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
            options["exact_rescore"] = self.exact_rescore
            if self.exact_rescore:
                options.update(self.rescore_stats.as_options(), rescore_method="prompt_logprobs")
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

    def max_prompt_tokens(self, writing: bool = False) -> int | None:
        config = getattr(getattr(self.engine, "llm_engine", None), "model_config", None)
        context = getattr(config, "max_model_len", None)
        if not isinstance(context, int):
            return None
        writes = writing or self.mode == "generate"
        return context - (self.generation.max_new_tokens if writes else 0)

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
        results = []
        outside = []
        for request, output in zip(requests, outputs, strict=True):
            label_ids = [self.label_token_ids(label) for label in request.option_labels]
            results.append(scored_from_output(output, request, label_ids))
            table = first_token_logprobs(output)
            if self.exact_rescore and any(not set(ids) & set(table) for ids in label_ids):
                outside.append(len(results) - 1)
        if outside:
            self._rescore(requests, results, outside)
        return results

    def _rescore(
        self, requests: Sequence[ScoringRequest], results: list[ScoredPrompt], which: list[int]
    ) -> None:
        """Replace the results at ``which`` by exact scores: each spelling's prompt log-probability."""
        started = time.monotonic()
        chosen = [requests[i] for i in which]
        for index, (probs, mass) in zip(which, self._exact_scores(chosen), strict=True):
            results[index] = ScoredPrompt(requests[index].prompt_id, probs, mass)
        elapsed = time.monotonic() - started
        for request in chosen:
            spellings = sum(len(self.spelling_token_ids(label)) for label in request.option_labels)
            self.rescore_stats.record(spellings, elapsed / len(which))

    def _exact_scores(
        self, requests: Sequence[ScoringRequest]
    ) -> list[tuple[tuple[float, ...], float]]:
        """Each request's label probabilities from its spellings' prompt log-probabilities.

        A label's probability is the sum over its spellings ("A", " A"), renormalised, with the
        mass before renormalising: the first-token distribution read without a top-k cut, and the
        exact distribution of a constrained answer.
        """
        spellings = [
            [self.spelling_token_ids(label) for label in request.option_labels]
            for request in requests
        ]
        logprobs = self._continuation_logprobs(
            requests, [[ids for label in labels for ids in label] for labels in spellings]
        )
        scores = []
        for labels, found in zip(spellings, logprobs, strict=True):
            masses, position = [], 0
            for label in labels:
                masses.append(sum(math.exp(v) for v in found[position : position + len(label)]))
                position += len(label)
            scores.append(renormalise(masses))
        return scores

    def _continuation_logprobs(
        self, requests: Sequence[ScoringRequest], continuations: Sequence[Sequence[list[int]]]
    ) -> list[list[float]]:
        """For each request, the log-probability of each continuation after its prompt, in one call."""
        prompts = []
        for request, ids_per_continuation in zip(requests, continuations, strict=True):
            prompt = prompt_token_ids(self.tokenizer, request)
            prompts += [{"prompt_token_ids": prompt + ids} for ids in ids_per_continuation]
        params = self.sampling_params(**exact_sampling_fields())
        outputs = iter(self.engine.generate(prompts, params, use_tqdm=False))
        return [
            [continuation_logprob(next(outputs), len(ids)) for ids in ids_per_continuation]
            for ids_per_continuation in continuations
        ]

    def spelling_token_ids(self, label: str) -> list[list[int]]:
        return spelling_token_ids(self.tokenizer, label)

    def score_constrained(self, requests: Sequence[ScoringRequest]) -> list[ScoredPrompt]:
        """One label per prompt drawn under a choice constraint, with the exact distribution.

        The choices are every spelling of every label ("A", " A"); the draw is at temperature 1
        under the prompt's seed and messages; the distribution is each spelling's whole token sequence after
        the prompt (prompt log-probabilities), summed per label and renormalised.
        """
        params = [
            self.sampling_params(
                **constrained_sampling_fields(
                    all_spellings(r.option_labels),
                    server_draw_seed(r),
                    max(
                        len(ids)
                        for label in r.option_labels
                        for ids in self.spelling_token_ids(label)
                    )
                    + 1,
                    self.constraint,
                )
            )
            for r in requests
        ]
        outputs = self.engine.generate(self._prompts(requests), params, use_tqdm=False)
        return [
            constrained_result(request, str(output.outputs[0].text), score)
            for request, output, score in zip(
                requests, outputs, self._exact_scores(requests), strict=True
            )
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
