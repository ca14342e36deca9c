"""Reading exact label scores out of server replies, and rendering chat templates, without a server.

The replies are shaped as llama.cpp's ``llama_cpp.server`` and vLLM's ``vllm serve`` answer
(``/v1/completions`` with ``echo`` and ``logprobs``; a chat completion with ``logprobs``); the
end-to-end checks against the real server are in ``test_openai_exact.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from culture_probe.backends._server_exact import (
    NotALabelToken,
    Unavailable,
    chat_template_from,
    constraint_fields,
    echo_continuation_logprob,
    first_token_probabilities,
    forced_continuation_logprob,
    labels_outside,
)
from culture_probe.models import converted_copy, embedded_gguf, resolve_model

MESSAGES = [
    [{"role": "user", "content": "Pick one.\nA. tea\nB. coffee"}],
    [{"role": "system", "content": "You live in Japan."}, {"role": "user", "content": "Pick."}],
]


def echo_reply(tokens: list[str], logprobs: list[float | None], written: int = 1) -> dict:
    return {
        "choices": [
            {"text": "".join(tokens), "logprobs": {"tokens": tokens, "token_logprobs": logprobs}}
        ],
        "usage": {"prompt_tokens": len(tokens) - written, "completion_tokens": written},
    }


def chat_reply(tokens: list[tuple[str, float]]) -> dict:
    content = [{"token": t, "logprob": v, "top_logprobs": []} for t, v in tokens]
    text = "".join(t for t, _ in tokens)
    return {"choices": [{"message": {"content": text}, "logprobs": {"content": content}}]}


def test_an_echoed_label_of_several_tokens_is_the_sum_of_its_tokens() -> None:
    reply = echo_reply(
        ["<|im_start|>", "assistant", "\n", "Z", "ebra", ","], [None, -0.1, -0.01, -6.0, -3.5, -2.0]
    )
    # the written token (",") is not part of the label
    assert echo_continuation_logprob(reply, "Zebra") == pytest.approx(-9.5)


def test_a_label_that_joins_the_prompts_last_token_is_no_token_of_its_own() -> None:
    reply = echo_reply(["assistant", "\n ", "1", "."], [-0.1, -9.0, -1.0, -0.5])
    with pytest.raises(NotALabelToken, match="joins the prompt's last"):
        echo_continuation_logprob(reply, " 1")


def test_an_echo_without_prompt_log_probabilities_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="no prompt log-probabilities"):
        echo_continuation_logprob({"choices": [{"text": "x", "logprobs": None}]}, "A")


def test_a_forced_label_is_the_sum_of_what_the_server_was_made_to_write() -> None:
    assert forced_continuation_logprob(chat_reply([("Z", -6.0), ("ebra", -3.5)]), "Zebra") == -9.5
    with pytest.raises(NotALabelToken):
        forced_continuation_logprob(chat_reply([(" ", -2.0), ("1", -0.3)]), " 1")
    with pytest.raises(Unavailable, match="ignored the constraint"):
        forced_continuation_logprob(chat_reply([("A", -0.1), (".", -0.2)]), "A")


def test_labels_are_outside_only_when_no_spelling_is_in_the_top_k() -> None:
    assert labels_outside({"A": -1.0, " B": -4.0, "The": -2.0}, ["A", "B", "C", "D"]) == ["C", "D"]


def test_probabilities_add_a_labels_spellings_and_renormalise() -> None:
    table = {"A": math.log(0.3), " A": math.log(0.1), "B": math.log(0.02)}
    probs, mass = first_token_probabilities(table, ["A", "B"])
    assert probs == pytest.approx((0.4 / 0.42, 0.02 / 0.42))
    assert mass == pytest.approx(0.42)


def test_the_constraint_admits_exactly_the_labels_for_both_servers() -> None:
    fields = constraint_fields(["A", 'say "B"', "A"])
    assert fields == {"grammar": 'root ::= "A" | "say \\"B\\""', "guided_choice": ["A", 'say "B"']}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(converted_copy(resolve_model("embedded")))


@pytest.mark.parametrize("messages", MESSAGES)
def test_the_gguf_files_chat_template_renders_as_transformers_does(
    tokenizer: Any, messages: list
) -> None:
    template = chat_template_from(str(embedded_gguf()))
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert template.render(messages) == expected
    assert template.bos_token == "<|im_start|>"


def test_a_model_folders_chat_template_renders_as_transformers_does(tokenizer: Any) -> None:
    folder = converted_copy(resolve_model("embedded"))
    expected = tokenizer.apply_chat_template(
        MESSAGES[1], tokenize=False, add_generation_prompt=True
    )
    assert chat_template_from(str(folder)).render(MESSAGES[1]) == expected


def test_a_source_without_a_template_says_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match=r"expected a \.gguf file, a model folder"):
        chat_template_from(str(tmp_path / "missing"))
