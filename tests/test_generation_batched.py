"""Batched generation on the embedded model: the same answers as one prompt at a time, faster.

The reference is transformers' own ``generate`` on one prompt at a time, float32, which the
``generate`` mode used before prompts were batched. Tests that refill batches (a waiting prompt
takes a finished row's place) say so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch

from culture_probe.backends.base import ScoringRequest
from culture_probe.backends.generation import GenerationSettings, hf_generate
from culture_probe.engine.generate import (
    Decoding,
    GenerationCounts,
    compacted_order,
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


def tree_nodes(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens a prefix tree of the prompts holds: each distinct prefix once."""
    return len({tuple(prompt[: end + 1]) for prompt in prompts for end in range(len(prompt))})


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


def test_shared_prefixes_run_once_and_finished_rows_leave_the_batch(
    hf_backend: Any,
    prompts: list[list[int]],
    greedy_reference: list[list[int]],
    recorder: StepRecorder,
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    counts = GenerationCounts()
    generate(hf_backend.model, prompts, [0] * len(prompts), Decoding(20, 6), stops, counts=counts)
    # one pass for every prompt as one prefix tree: each shared token once, no padding
    nodes = tree_nodes(prompts)
    assert nodes < sum(map(len, prompts))
    assert recorder.shapes[0] == (1, nodes) and counts.prefill_tokens == nodes
    steps = [rows for rows, width in recorder.shapes[1:]]
    assert all(width == 1 for _, width in recorder.shapes[1:])
    # a row leaves after its last token: the step that writes the k-th token holds the rows
    # whose answers are longer than k - 1 tokens (a row that stops writes no further token)
    lengths = [len(tokens) for tokens in greedy_reference]
    ended = [len(tokens) + (len(tokens) < 20) for tokens in greedy_reference]
    assert steps == [sum(end > k for end in ended) for k in range(1, max(ended))]
    assert steps[-1] < 6 and len(steps) == max(ended) - 1
    assert min(lengths) < max(lengths)


def test_a_finished_row_takes_the_place_of_the_last_row() -> None:
    assert compacted_order([0, 2, 4, 5], 6) == [0, 4, 2, 5]
    assert compacted_order([0, 1, 2], 5) == [0, 1, 2]  # the last rows left: nothing moves
    assert compacted_order([3, 4], 5) == [3, 4]
    assert compacted_order([], 3) == []


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


def test_waiting_prompts_join_in_one_pass_once_half_the_rows_are_free(
    hf_backend: Any,
    prompts: list[list[int]],
    greedy_reference: list[list[int]],
    recorder: StepRecorder,
) -> None:
    stops = stop_token_ids(hf_backend.model, hf_backend.tokenizer)
    counts = GenerationCounts()
    # four rows: the first four prompts, then the last two together once two rows are free
    written = generate(hf_backend.model, prompts, [0] * 6, Decoding(20, 4), stops, counts=counts)
    assert written == greedy_reference
    passes = [rows for rows, width in recorder.shapes if width > 1]
    assert passes == [1, 1] and (counts.prefills, counts.batches, counts.refilled) == (2, 1, 2)
    order = sorted(prompts)
    assert counts.prefill_tokens == tree_nodes(order[:4]) + tree_nodes(order[4:])
    assert max(rows for rows, width in recorder.shapes if width == 1) <= 4


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
