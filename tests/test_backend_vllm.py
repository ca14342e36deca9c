"""The vllm backend without a GPU: engine options, request building, label tokens, result parsing.

vLLM needs a CUDA build of torch and cannot be installed here, so the engine's outputs are built as
small dataclasses with the attribute names of vLLM 0.33:

* ``Logprob(logprob, rank, decoded_token)`` mirrors ``vllm/logprobs.py``;
* ``CompletionOutput(index, text, token_ids, cumulative_logprob, logprobs, finish_reason,
  stop_reason)`` and ``RequestOutput(request_id, prompt, prompt_token_ids, prompt_logprobs,
  outputs, finished)`` mirror ``vllm/outputs.py``.

Their log-probabilities are the embedded model's real ones, computed by transformers, so the tests
check that the vllm backend turns the same logits into the same option probabilities as hf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from culture_probe.backends import create_backend
from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.generation import GenerationSettings, hf_generate, short_answer_result
from culture_probe.backends.labels import label_token_ids
from culture_probe.backends.vllm import (
    VLLMBackend,
    engine_options,
    generation_sampling_fields,
    prompt_token_ids,
    scored_from_output,
    scoring_sampling_fields,
)
from culture_probe.errors import CultureProbeError
from culture_probe.planning import PlanFilter, prepare
from culture_probe.scoring import requests_for


@dataclass
class Logprob:  # vllm/logprobs.py
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm/outputs.py
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm/outputs.py (a plain class there, with these attributes)
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool = True


@dataclass
class TransformersEngine:
    """Answers ``LLM.generate`` with the embedded model's real next-token distribution."""

    model: Any
    tokenizer: Any
    calls: list[tuple[int, Any]] = field(default_factory=list)

    def generate(self, prompts: list[dict[str, list[int]]], params: Any, use_tqdm: bool = True):
        self.calls.append((len(prompts), params))
        outputs = []
        for number, prompt in enumerate(prompts):
            ids = prompt["prompt_token_ids"]
            fields = params[number] if isinstance(params, list) else params
            outputs.append(self._one(str(number), ids, fields))
        return outputs

    def _one(self, request_id: str, ids: list[int], fields: dict[str, Any]) -> RequestOutput:
        with torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        if fields.get("logprobs"):
            top = torch.topk(log_probs, fields["logprobs"])
            table = {
                int(token): Logprob(float(value), rank + 1)
                for rank, (value, token) in enumerate(zip(top.values, top.indices, strict=True))
            }
            best = int(top.indices[0])
            completion = CompletionOutput(0, "", [best], float(top.values[0]), [table], "length")
        else:
            torch.manual_seed(fields["seed"])
            output = self.model.generate(
                input_ids=torch.tensor([ids]),
                do_sample=True,
                temperature=fields["temperature"],
                max_new_tokens=fields["max_tokens"],
                pad_token_id=self.tokenizer.pad_token_id,
            )
            text = self.tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True)
            completion = CompletionOutput(0, text, [], None, None, "stop")
        return RequestOutput(request_id, None, ids, None, [completion])


@pytest.fixture(scope="module")
def requests(repo: Path) -> list[ScoringRequest]:
    prepared = prepare(
        repo / "taxonomy" / "values.yaml",
        PlanFilter(("family_importance", "generalised_trust"), ("JP", "none")),
    )
    # letter labels: with "1." or "(a)" the small model puts little mass on the labels, and a label
    # outside the top log-probabilities reads as 0 in vLLM (a property of top-k, not a difference)
    letters = prepared.plan[prepared.plan["enumerator"] == "A."]
    return requests_for(letters)[:12]


@pytest.fixture(scope="module")
def vllm_backend(hf_backend: Any) -> VLLMBackend:
    engine = TransformersEngine(hf_backend.model, hf_backend.tokenizer)
    return VLLMBackend.from_parts(engine, hf_backend.tokenizer, dict, hf_backend.source)


def test_engine_options_turn_on_prefix_caching_and_pass_parallelism() -> None:
    options = engine_options(
        "/models/smollm2",
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        dtype="bfloat16",
        max_model_len=4096,
        gpu_memory_utilization=0.8,
    )
    assert options == {
        "model": "/models/smollm2",
        "tokenizer": "/models/smollm2",
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
        "dtype": "bfloat16",
        "gpu_memory_utilization": 0.8,
        "enable_prefix_caching": True,
        "max_logprobs": 20,
        "seed": 0,
        "max_model_len": 4096,
    }
    assert "max_model_len" not in engine_options("/m")
    assert engine_options("/m", top_logprobs=50)["max_logprobs"] == 50


def test_the_cpu_only_mixed_dtype_is_refused_with_the_choices_vllm_takes() -> None:
    with pytest.raises(CultureProbeError, match="vLLM takes auto, bfloat16, float16 or float32"):
        engine_options("/models/x", dtype="mixed")


def test_sampling_fields_ask_for_one_token_with_top_logprobs_or_a_seeded_sample() -> None:
    assert scoring_sampling_fields() == {
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": 20,
        "detokenize": False,
    }
    assert generation_sampling_fields(GenerationSettings(0.9, 24, 0.95), seed=7) == {
        "max_tokens": 24,
        "temperature": 0.9,
        "top_p": 0.95,
        "seed": 7,
    }


def test_prompts_are_the_token_ids_hf_scores(hf_backend: Any, requests: list) -> None:
    request = requests[0]
    expected = hf_backend.tokenizer.encode(
        hf_backend.prompt_text(request), add_special_tokens=False
    )
    ids = prompt_token_ids(hf_backend.tokenizer, request)
    assert ids == expected
    text = hf_backend.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert request.user in text


def test_label_tokens_are_the_tokens_the_tokenizer_produces_after_the_chat_template(
    hf_backend: Any, requests: list
) -> None:
    tokenizer = hf_backend.tokenizer
    prompt = hf_backend.prompt_text(requests[0])
    for label in ("A", "B", "C", "D", "1", "2"):
        ids = label_token_ids(tokenizer, label)
        # the answer as the model would write it, right after "<|im_start|>assistant\n"
        answered = tokenizer.encode(prompt + label, add_special_tokens=False)
        assert answered[-1] in ids, label
        # and with a space before it ("assistant\n A")
        spaced = tokenizer.encode(prompt + " " + label, add_special_tokens=False)
        assert spaced[-1] in ids, label
        assert all(tokenizer.decode([token]).strip() == label for token in ids)
        # SmolLM2 has distinct tokens for "A" and " A"; digits are always split off alone
        assert len(ids) == (2 if label.isalpha() else 1), label


def test_parsing_a_request_output_reads_label_tokens_out_of_the_top_logprobs() -> None:
    request = ScoringRequest("p", "", "q", ("A", "B", "C"))
    ids = [[10, 11], [20, 21], [30, 31]]
    table = {
        10: Logprob(math.log(0.4), 1, "A"),
        11: Logprob(math.log(0.1), 3, " A"),
        20: Logprob(math.log(0.2), 2, "B"),
        99: Logprob(math.log(0.05), 4, "The"),
    }  # C is outside the top-k: probability 0
    output = RequestOutput("0", None, [1, 2], None, [CompletionOutput(0, "", [10], -0.9, [table])])
    result = scored_from_output(output, request, ids)
    assert result.label_probs == pytest.approx((0.5 / 0.7, 0.2 / 0.7, 0.0))
    assert result.option_mass == pytest.approx(0.7)


def test_an_output_without_logprobs_is_an_error_naming_the_request() -> None:
    output = RequestOutput("r7", None, [1], None, [CompletionOutput(0, "A", [1], None, None)])
    with pytest.raises(CultureProbeError, match="r7"):
        scored_from_output(output, ScoringRequest("p", "", "q", ("A",)), [[1]])


@pytest.mark.slow
def test_vllm_and_hf_give_the_same_probabilities_for_the_same_model(
    hf_backend: Any, vllm_backend: VLLMBackend, requests: list
) -> None:
    from_hf = hf_backend.score(requests)
    from_vllm = vllm_backend.score(requests)
    assert [r.prompt_id for r in from_vllm] == [r.prompt_id for r in requests]
    for hf_result, vllm_result in zip(from_hf, from_vllm, strict=True):
        # batched left-padded forward passes vs one prompt at a time: float32 rounding only
        assert vllm_result.label_probs == pytest.approx(hf_result.label_probs, abs=1e-4)
        assert vllm_result.option_mass == pytest.approx(hf_result.option_mass, abs=1e-4)
    engine = vllm_backend.engine
    assert engine.calls[-1] == (len(requests), scoring_sampling_fields())


@pytest.mark.slow
def test_generate_mode_sends_one_seeded_sampling_request_per_prompt(
    hf_backend: Any, requests: list
) -> None:
    engine = TransformersEngine(hf_backend.model, hf_backend.tokenizer)
    backend = VLLMBackend.from_parts(
        engine,
        hf_backend.tokenizer,
        dict,
        hf_backend.source,
        mode="generate",
        generation=GenerationSettings(0.7, 12),
    )
    results = backend.score(requests[:3])
    n_prompts, params = engine.calls[-1]
    assert n_prompts == 3
    assert [p["seed"] for p in params] == [r.seed for r in requests[:3]]
    assert all(result.generated for result in results)
    assert all(result.outcome in ("answered", "refused", "invalid") for result in results)
    info = backend.info()
    assert (info.mode, info.options["temperature"], info.options["max_tokens"]) == (
        "generate",
        0.7,
        12,
    )
    assert info.key()["temperature"] == 0.7


def test_short_answers_come_from_one_sampling_call_with_each_prompts_seed(
    hf_backend: Any, blend_study: Path
) -> None:
    engine = TransformersEngine(hf_backend.model, hf_backend.tokenizer)
    settings = GenerationSettings(0.7, 12)
    backend = VLLMBackend.from_parts(
        engine, hf_backend.tokenizer, dict, hf_backend.source, generation=settings
    )
    requests = requests_for(prepare(blend_study).plan)
    written = backend.write_answers(requests)
    n_prompts, params = engine.calls[-1]
    assert n_prompts == len(requests) == 3
    assert [p["seed"] for p in params] == [r.seed for r in requests]
    assert {p["max_tokens"] for p in params} == {12}
    # transformers' own sampler under the same seeds writes the same texts, in the same order
    expected = hf_generate(
        hf_backend.model, hf_backend.tokenizer, requests, settings, read=short_answer_result
    )
    assert [r.generated for r in written] == [r.generated for r in expected]
    assert [r.outcome for r in written] == [r.outcome for r in expected]
    assert backend.short_answer_decoding() == {"temperature": 0.7, "max_tokens": 12}


def test_without_vllm_installed_the_backend_says_how_to_install_it() -> None:
    with pytest.raises(CultureProbeError, match=r"pip install 'culture-probe\[vllm\]'"):
        create_backend("vllm", model="embedded")


def test_an_unknown_mode_is_refused_with_the_modes_offered(hf_backend: Any) -> None:
    with pytest.raises(CultureProbeError, match="expected one of: generate, logprobs"):
        VLLMBackend.from_parts(None, hf_backend.tokenizer, dict, hf_backend.source, mode="greedy")
