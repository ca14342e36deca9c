"""Batched generation on the embedded model: the same answers as one prompt at a time, faster.

The reference is transformers' own ``generate`` on one prompt at a time, float32, which the
``generate`` mode used before prompts were batched. Tests that refill batches (a waiting prompt
takes a finished row's place) say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import torch

from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.generation import GenerationSettings, hf_generate
from culture_probe.engine.generate import (
    Decoding,
    GenerationCounts,
    common_length,
    generate,
    stop_token_ids,
)

SYSTEM = "You are an average person from {}."
QUESTION = (
    "How important is family in your life?\nA. Very important\nB. Rather important\n"
    "C. Not very important\nD. Not at all important\nAnswer with one letter."
)
# personas share the chat header and most of the system message; two questions differ further on
PROMPTS = [
    (SYSTEM.format(country), question)
    for country in ("Japan", "Brazil", "Nigeria")
    for question in (QUESTION, "Name a typical breakfast food where you live, in two words.")
]


def token_ids(backend: Any, system: str, user: str) -> list[int]:
    request = ScoringRequest("p", system, user, ())
    return list(backend.tokenizer.encode(backend.prompt_text(request), add_special_tokens=False))


@pytest.fixture(scope="module")
def prompts(hf_backend: Any) -> list[list[int]]:
    return [token_ids(hf_backend, system, user) for system, user in PROMPTS]


def one_at_a_time(backend: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """transformers' ``generate`` on one prompt, the stop token and what follows it left out."""
    with torch.inference_mode():
        output = backend.model.generate(
            torch.tensor([prompt]),
            max_new_tokens=new_tokens,
            pad_token_id=backend.tokenizer.pad_token_id,
            do_sample=False,
        )
    written = output[0, len(prompt) :].tolist()
    stops = stop_token_ids(backend.model, backend.tokenizer)
    ends = [index for index, token in enumerate(written) if token in stops]
    return written[: ends[0]] if ends else written


@pytest.fixture(scope="module")
def greedy_reference(hf_backend: Any, prompts: list[list[int]]) -> list[list[int]]:
    return [one_at_a_time(hf_backend, prompt, 20) for prompt in prompts]


class StepRecorder:
    """Records the rows and width of every forward call of the real model."""

    def __init__(self, model: Any) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.handle = model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self.shapes.append(tuple(kwargs["input_ids"].shape))


@pytest.fixture
def recorder(hf_backend: Any) -> Iterator[StepRecorder]:
    recording = StepRecorder(hf_backend.model)
    yield recording
    recording.handle.remove()


def test_greedy_batches_write_what_one_prompt_at_a_time_writes(
    hf_backend: Any, prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    for rows in (6, 4):
        written = generate(
            hf_backend.model, prompts, [0] * len(prompts), Decoding(20, rows, refill=False), stops
        )
        assert written == greedy_reference, f"{rows} rows a batch"
    # not a vacuous comparison: the answers differ, and some end before the limit
    assert len({tuple(tokens) for tokens in greedy_reference}) >= 3
    assert min(map(len, greedy_reference)) < 20


def test_the_shared_prefix_runs_once_and_finished_rows_leave_the_batch(
    hf_backend: Any,
    prompts: list[list[int]],
    greedy_reference: list[list[int]],
    recorder: StepRecorder,
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    generate(hf_backend.model, prompts, [0] * len(prompts), Decoding(20, 6), stops)
    shared = 0
    while all(prompt[shared] == prompts[0][shared] for prompt in prompts):
        shared += 1
    longest = max(len(prompt) for prompt in prompts)
    # one row for the prefix, then every prompt's rest in one padded pass, then a token a step
    assert recorder.shapes[0] == (1, shared)
    assert recorder.shapes[1] == (6, longest - shared)
    steps = [rows for rows, width in recorder.shapes[2:]]
    assert all(width == 1 for _, width in recorder.shapes[2:])
    # a row leaves after its last token: the step that writes the k-th token holds the rows
    # whose answers are longer than k - 1 tokens (a row that stops writes no further token)
    lengths = [len(tokens) for tokens in greedy_reference]
    ended = [len(tokens) + (len(tokens) < 20) for tokens in greedy_reference]
    assert steps == [sum(end > k for end in ended) for k in range(1, max(ended))]
    assert steps[-1] < 6 and len(steps) == max(ended) - 1
    assert min(lengths) < max(lengths)


def test_each_row_stops_at_its_own_stop_token(
    hf_backend: Any, prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    # a full stop ends an answer here, as an end of turn would: rows stop at different steps
    full_stop = hf_backend.tokenizer.convert_tokens_to_ids(".")
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer) | {full_stop}
    written = generate(hf_backend.model, prompts, [0] * len(prompts), Decoding(20, 6), stops)
    expected = [
        tokens[: tokens.index(full_stop)] if full_stop in tokens else tokens
        for tokens in greedy_reference
    ]
    assert written == expected
    assert any(full_stop in tokens for tokens in greedy_reference)
    assert all(full_stop not in tokens for tokens in written)


def test_max_new_tokens_caps_every_answer(
    hf_backend: Any, prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    written = generate(hf_backend.model, prompts, [0] * len(prompts), Decoding(3, 6), stops)
    assert written == [tokens[:3] for tokens in greedy_reference]
    assert max(map(len, written)) == 3


def test_a_seeded_sample_does_not_depend_on_its_batch(
    hf_backend: Any, prompts: list[list[int]]
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    seeds = [11, 12, 13, 14, 15, 16]
    sampled = [
        generate(hf_backend.model, prompts, seeds, Decoding(12, rows, 1.0, refill=refill), stops)
        for rows, refill in ((1, False), (4, False), (4, True), (6, True))
    ]
    assert sampled[0] == sampled[1] == sampled[2] == sampled[3]
    # alone in a batch, with other seeds beside it: the first prompt still draws the same answer
    alone = generate(hf_backend.model, prompts[:1], seeds[:1], Decoding(12, 1, 1.0), stops)
    assert alone[0] == sampled[0][0]
    # and the seed matters: other seeds draw other answers
    others = generate(
        hf_backend.model, prompts, [21, 22, 23, 24, 25, 26], Decoding(12, 6, 1.0), stops
    )
    assert others != sampled[0]


def test_identical_prompts_and_a_prompt_inside_another_share_one_batch(
    hf_backend: Any, prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    inside = prompts[0][:-3]  # a prompt that is the start of another
    batch = [prompts[0], inside, prompts[0]]
    written = generate(hf_backend.model, batch, [0, 0, 0], Decoding(8, 3), stops)
    assert written[0] == written[2] == greedy_reference[0][:8]
    assert written[1] == one_at_a_time(hf_backend, inside, 8)


def test_hf_generate_reads_each_answer_back_in_request_order(hf_backend: Any) -> None:
    requests = [
        ScoringRequest(f"p{index}", system, QUESTION, ("A", "B", "C", "D"), seed=index)
        for index, (system, _) in enumerate(PROMPTS[::2])
    ]
    settings = GenerationSettings(temperature=0.0, max_new_tokens=12, batch_rows=2)
    results = hf_generate(hf_backend.model, hf_backend.tokenizer, requests, settings)
    assert [result.prompt_id for result in results] == ["p0", "p1", "p2"]
    for request, result in zip(requests, results, strict=True):
        prompt = token_ids(hf_backend, request.system, request.user)
        expected = one_at_a_time(hf_backend, prompt, 12)
        assert result.generated == hf_backend.tokenizer.decode(expected, skip_special_tokens=True)


def test_stop_tokens_are_the_eos_and_the_chat_templates_end_of_turn(hf_backend: Any) -> None:
    tokenizer = hf_backend.tokenizer
    assert stop_token_ids(hf_backend.model, tokenizer) == {
        tokenizer.convert_tokens_to_ids("<|im_end|>")
    }


def test_batches_write_in_the_dtype_the_engine_picks_for_this_cpu(
    prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    from culture_probe.backends import create_backend

    backend = create_backend("hf", model="embedded", dtype="auto")
    try:
        stops = stop_token_ids(backend.model, backend.tokenizer)
        batched = generate(backend.model, prompts, [0] * len(prompts), Decoding(20, 6), stops)
        alone = generate(backend.model, prompts, [0] * len(prompts), Decoding(20, 1), stops)
    finally:
        backend.close()
    # mixed (or bfloat16 on a GPU) rounds otherwise than float32, and a batch's shape can move
    # a near tie; on these prompts neither changed an answer
    assert batched == alone == greedy_reference, backend.dtype


def test_refilled_batches_write_what_one_prompt_at_a_time_writes(
    hf_backend: Any, prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    counts = {refill: GenerationCounts() for refill in (True, False)}
    written = {
        refill: generate(
            hf_backend.model,
            prompts,
            [0] * len(prompts),
            Decoding(20, 2, refill=refill),
            stops,
            counts=counts[refill],
        )
        for refill in (True, False)
    }
    assert written[True] == written[False] == greedy_reference
    # every prompt after the first two took a finished row's place in the one running batch
    assert (counts[True].batches, counts[True].refilled) == (1, 4)
    assert (counts[False].batches, counts[False].refilled) == (3, 0)
    # full rows: fewer steps than batches that only shrink
    assert counts[True].steps < counts[False].steps


def test_an_admitted_prompt_computes_only_what_it_does_not_share_with_the_one_before(
    hf_backend: Any,
    prompts: list[list[int]],
    greedy_reference: list[list[int]],
    recorder: StepRecorder,
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    counts = GenerationCounts()
    # one row: each prompt is admitted alone when the one before it has ended
    written = generate(
        hf_backend.model, prompts, [0] * 6, Decoding(20, 1, refill=True), stops, counts=counts
    )
    assert written == greedy_reference
    order = sorted(prompts)
    new = [len(order[0])] + [
        len(prompt) - common_length(before, prompt) for before, prompt in pairwise(order)
    ]
    assert [width for _, width in recorder.shapes if width > 1] == new
    assert counts.copied_tokens == sum(map(len, order)) - sum(new) > 0
    assert (counts.batches, counts.refilled) == (1, 5)
    # answers of up to 20 tokens after six prompts outgrow the reserved columns: rearranged
    assert counts.rearranged >= 1


def test_rows_of_very_different_lengths_each_end_on_their_own(
    hf_backend: Any, prompts: list[list[int]], greedy_reference: list[list[int]]
) -> None:
    long_user = (
        "Think of the festivals, the meals and the people of your town. " * 6
        + "Which of them matters most to you, in three words?"
    )
    long_prompt = token_ids(hf_backend, SYSTEM.format("Nigeria"), long_user)
    uneven = [*prompts, long_prompt]
    expected = [*greedy_reference, one_at_a_time(hf_backend, long_prompt, 20)]
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    # prompts of 35 to over 100 tokens, answers of a few tokens and of the whole 20
    assert len(long_prompt) > 1.5 * max(map(len, prompts))
    assert min(map(len, expected)) < 6 and max(map(len, expected)) == 20
    counts = GenerationCounts()
    written = generate(
        hf_backend.model, uneven, [0] * 7, Decoding(20, 3, refill=True), stops, counts=counts
    )
    assert written == expected
    # the long prompt came after the first three, longer than the batch's columns: rearranged
    assert counts.refilled == 4 and counts.rearranged >= 1
